"""Actions (one AWS call each, planned before anything runs) and the ownership of AWS entities.

A kind never calls AWS to change it: it returns `Action`s, which the engine executes and
`rolekeeper plan` prints, so any decision can be shown before it is made.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OWNER_TAG = "rolekeeper.dev/owner"
UID_TAG = "rolekeeper.dev/uid"
# Which cluster's Rolekeeper owns the entity: two clusters pointed at one account, each with an
# object of the same namespace/name, must not both own (and rewrite) one role.
CLUSTER_TAG = "rolekeeper.dev/cluster"
OWNERSHIP_TAGS = (OWNER_TAG, UID_TAG, CLUSTER_TAG)
RESERVED_TAG_PREFIX = "rolekeeper.dev/"
READ_PREFIXES = ("Get", "List")


@dataclass(frozen=True)
class Action:
    """One AWS API call: operation name, exact boto3 parameters, a sentence for events and logs."""

    api: str
    params: Mapping[str, Any]
    summary: str

    @property
    def is_write(self) -> bool:
        return not self.api.startswith(READ_PREFIXES)


def act(api: str, summary: str, **params: Any) -> Action:
    """An Action from keyword parameters (the boto3 spelling)."""
    return Action(api, params, summary)


class Ownership(enum.Enum):
    """Whether Rolekeeper may touch the AWS entity a desired object names."""

    ABSENT = "absent"  # nothing there: create it
    OWNED = "owned"  # carries this object's owner tag
    ADOPT = "adopt"  # untagged, and the spec says adopt: true
    REFUSED = "refused"  # untagged and adopt is not set: hands off
    CONFLICT = "conflict"  # tagged as owned by another object, or by another cluster

    @property
    def allowed(self) -> bool:
        return self in (Ownership.ABSENT, Ownership.OWNED, Ownership.ADOPT)


def claim(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The (owner, uid) an entity's tags record, or None when nobody claims it."""
    owner = tags.get(OWNER_TAG)
    if owner is None:
        return None
    return owner, tags.get(UID_TAG, "")


def ownership(
    owner: str, adopt: bool, observed_tags: Mapping[str, str] | None, cluster: str = ""
) -> Ownership:
    """Decide from the observed tags (None: the entity is absent). The same namespace/name keeps
    ownership across a new uid (an object restored from backup is the same Git object); any
    other owner is a conflict, and so is the same owner in another cluster. An entity tagged
    before clusters were recorded (no cluster tag) stays its owner's and gets the tag.
    `cluster` "" (a tool that knows no cluster) accepts any cluster tag."""
    if observed_tags is None:
        return Ownership.ABSENT
    found = claim(observed_tags)
    if found is None:
        return Ownership.ADOPT if adopt else Ownership.REFUSED
    if found[0] != owner:
        return Ownership.CONFLICT
    tagged = observed_tags.get(CLUSTER_TAG)
    if cluster and tagged and tagged != cluster:
        return Ownership.CONFLICT
    return Ownership.OWNED
