"""The account snapshot as entities of every kind, and the `rolekeeper snapshot` file format."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.aws import snapshot as raw_snapshot
from controller.core.actions import claim
from controller.kinds import registry
from controller.kinds.base import Desired, Entity

FORMAT = 1  # version of the `rolekeeper snapshot` file
GAAD_PAGE = 100
LIST_PAGE = 1000


@dataclass(frozen=True)
class AccountSnapshot:
    """Every entity of an account by kind name and AWS name, read in a handful of pages."""

    entities: Mapping[str, Mapping[str, Entity]] = field(default_factory=dict)
    taken_at: float = 0.0  # time.monotonic() when the read finished
    pages: int = 0  # API calls the read made
    listed: int = 0  # items read by the supplementary list call (ListRoles)
    policy_tags: Mapping[str, dict[str, str]] = field(default_factory=dict)  # as read, by ARN

    def find(self, desired: Desired) -> Entity | None:
        return registry.find(self.entities, desired)

    def of_kind(self, kind: str) -> Mapping[str, Entity]:
        return self.entities.get(kind, {})

    @property
    def size(self) -> int:
        return sum(len(e) for e in self.entities.values())

    def real_aws_pages(self) -> int:
        """Calls the same read costs on real AWS, which pages GetAccountAuthorizationDetails at
        100 items (moto returns everything in one page) and ListRoles at 1,000."""
        return max(1, math.ceil(self.size / GAAD_PAGE)) + math.ceil(self.listed / LIST_PAGE)

    def owned(self) -> dict[tuple[str, str], list[Entity]]:
        """Entities by (kind, owner tag): what each object already manages."""
        table: dict[tuple[str, str], list[Entity]] = {}
        for kind, entities in self.entities.items():
            for entity in entities.values():
                found = claim(entity.tags)
                if found is not None:
                    table.setdefault((kind, found[0]), []).append(entity)
        return table

    def to_json(self) -> dict[str, Any]:
        """A serialisable form for `rolekeeper snapshot` (plan without AWS credentials)."""
        return {
            kind.snapshot_key: [kind.to_json(e) for e in self.of_kind(name).values()]
            for name, kind in registry.KINDS.items()
        }


def take(
    iam: Any,
    names: Collection[str] | None = (),
    known_tags: Mapping[str, dict[str, str]] | None = None,
) -> AccountSnapshot:
    """Read the whole account (a few paginated calls) as entities of every kind.

    Customer managed policies come without their tags (GetAccountAuthorizationDetails has
    none), and ownership needs them: one ListPolicyTags per policy among `names` (the AWS names
    of the objects the caller manages or plans), or per policy in the account when `names` is
    None (`rolekeeper snapshot`, which cannot know which will be asked about).
    """
    raw = raw_snapshot.read_raw(
        iam, policy_tags=None if names is None else set(names), known_tags=known_tags
    )
    entities = {name: kind.from_snapshot(raw) for name, kind in registry.KINDS.items()}
    return AccountSnapshot(
        entities=entities,
        taken_at=raw.taken_at,
        pages=raw.pages,
        listed=len(raw.listed_roles),
        policy_tags=raw.policy_tags,
    )


def from_json(data: Mapping[str, Any]) -> AccountSnapshot:
    """Inverse of AccountSnapshot.to_json."""
    entities: dict[str, dict[str, Entity]] = {}
    for name, kind in registry.KINDS.items():
        table: dict[str, Entity] = {}
        for item in data.get(kind.snapshot_key, []):
            entity = kind.from_json(item)
            table[entity.name] = entity
        entities[name] = table
    return AccountSnapshot(entities=entities)


def file_json(
    snapshot: AccountSnapshot, account: str = "", partition: str = "aws", taken: str = ""
) -> dict[str, Any]:
    """The `rolekeeper snapshot` file: the entities plus a format version and the account it
    describes (a plan sends bare account ids as root ARNs of its partition)."""
    data = snapshot.to_json()
    return {
        "formatVersion": FORMAT,
        "account": account,
        "partition": partition,
        "takenAt": taken,
        # Sorted, so two snapshots of one account diff cleanly.
        **{key: sorted(items, key=lambda e: str(e["name"])) for key, items in data.items()},
    }


def from_file_json(data: Any, where: str) -> tuple[AccountSnapshot, str, str]:
    """Read a parsed `rolekeeper snapshot` file: (snapshot, partition, "account X, taken T").
    ValueError says what is wrong with it."""
    if not isinstance(data, dict) or "formatVersion" not in data:
        raise ValueError(f"{where}: not a rolekeeper snapshot (no formatVersion)")
    if data["formatVersion"] != FORMAT:
        raise ValueError(
            f"{where}: snapshot format {data['formatVersion']!r} is not supported "
            f"(this rolekeeper reads format {FORMAT}); take a new one"
        )
    try:
        snapshot = from_json(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{where}: damaged snapshot: missing or wrong {exc}") from exc
    account = data.get("account") or "unknown"
    taken = data.get("takenAt") or "at an unknown time"
    return snapshot, str(data.get("partition") or "aws"), f"account {account}, taken {taken}"
