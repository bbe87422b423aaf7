"""`rolekeeper import`: manifests for existing IAM entities, as a person would have written them.

Pure given an account snapshot (`kinds.snapshot.AccountSnapshot`, live or from a `rolekeeper
snapshot` file): select entities, name the objects, and ask each kind for its manifest
(`Kind.to_manifest`: AWS defaults left out, policies as canonical YAML objects,
`managementPolicy: Observe` and `adopt: true`). The promise, proved by tests/unit/test_import.py
and tests/aws/test_import.py: planning the output against the same account changes nothing
(docs/onboarding.md).

Selection: an entity is written when it matches any `names`/`patterns` (all entities when
neither is given), starts with `path_prefix`, carries every `tags` pair and is of one of
`kinds` (every kind when none is given). An entity already tagged as owned by another object
is skipped with a note; one owned by an object of the target namespace is written under that
object's name (its manifest, regenerated: planning it is a noop without adoption).

metadata.name is the AWS name as a DNS-1123 label (lowercase, runs of other characters as one
'-', at most 63 characters). A name cut short, or one that another entity of the same kind also
maps to, gets '-' and 8 hex digits of the SHA-256 of the AWS name, so it is the same on every
run over the same entities; an AWS name that already is a valid label keeps it. spec.roleName /
spec.userName always carries the AWS name.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from controller.core.actions import claim
from controller.core.foreigntags import ForeignTags
from controller.kinds import registry
from controller.kinds.base import NO_FOREIGN_TAGS

if TYPE_CHECKING:
    from controller.kinds.base import Entity, Kind
    from controller.kinds.snapshot import AccountSnapshot

MAX_NAME = 63  # a DNS-1123 label
HASH_DIGITS = 8
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class Selector:
    """Which entities to import (see the module docstring for how the parts combine)."""

    names: tuple[str, ...] = ()  # exact AWS names
    patterns: tuple[str, ...] = ()  # globs over AWS names (fnmatch, case-sensitive)
    path_prefix: str = ""
    tags: tuple[tuple[str, str | None], ...] = ()  # (key, value); value None: key present
    kinds: tuple[str, ...] = ()  # Kubernetes kind names; empty: every kind

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in registry.KINDS]
        if unknown:
            raise ValueError(
                f"unknown kind {', '.join(unknown)}: expected {', '.join(registry.KIND_NAMES)}"
            )

    def matches(self, entity: Entity) -> bool:
        if (self.names or self.patterns) and not (
            entity.name in self.names
            or any(fnmatch.fnmatchcase(entity.name, p) for p in self.patterns)
        ):
            return False
        if not entity.path.startswith(self.path_prefix):
            return False
        # IAM compares tag keys ignoring case (a key can only be there once, in one spelling).
        folded = {k.lower(): v for k, v in entity.tags.items()}
        return all(
            key.lower() in folded and (value is None or folded[key.lower()] == value)
            for key, value in self.tags
        )


def parse_tag(text: str) -> tuple[str, str | None]:
    """`--tag KEY=VALUE` (or `KEY`: any value); ValueError for an empty key."""
    key, equals, value = text.partition("=")
    if not key:
        raise ValueError(f"--tag {text!r}: expected KEY=VALUE or KEY")
    return key, value if equals else None


@dataclass(frozen=True)
class Imported:
    """One object written: its kind, the entity's AWS name and ARN, the manifest."""

    kind: str
    aws_name: str
    arn: str
    obj: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


@dataclass(frozen=True)
class Result:
    """What `import` writes (objects in kind order, then by AWS name) and says (notes)."""

    objects: tuple[Imported, ...]
    notes: tuple[str, ...] = ()

    def yaml(self) -> str:
        return to_yaml(self.objects)


def run(
    snapshot: AccountSnapshot,
    selector: Selector,
    namespace: str,
    others: ForeignTags = NO_FOREIGN_TAGS,
) -> Result:
    """The manifests for every selected entity of the snapshot, in namespace `namespace`;
    tags `others` own (the operator's --ignore-tags) left out of spec.tags, where the operator
    would refuse them."""
    if not LABEL.fullmatch(namespace) or len(namespace) > MAX_NAME:
        raise ValueError(
            f"--namespace {namespace!r} is not a Kubernetes namespace name "
            "(lowercase letters, digits and '-', at most 63 characters)"
        )
    objects: list[Imported] = []
    notes: list[str] = []
    for kind_name in selector.kinds or registry.KIND_NAMES:
        kind = registry.get(kind_name)
        entities = sorted(
            (e for e in snapshot.of_kind(kind_name).values() if selector.matches(e)),
            key=lambda e: e.name,
        )
        names, kind_notes = _object_names(kind, entities, namespace)
        notes += kind_notes
        objects += [
            Imported(
                kind.name,
                e.name,
                e.arn,
                _without(others, kind.to_manifest(e, namespace, names[e.name])),
            )
            for e in entities
            if e.name in names
        ]
    if not objects:
        notes.append("no entity matched the selection: nothing written")
    return Result(tuple(objects), tuple(notes))


def _without(others: ForeignTags, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with the tags others own taken out of its spec.tags."""
    tags = obj["spec"].get("tags")
    if not tags or not others.patterns:
        return obj
    spec = {k: v for k, v in obj["spec"].items() if k != "tags"}
    if kept := others.ours(tags):
        spec = {**obj["spec"], "tags": kept}
    return {**obj, "spec": spec}


def _object_names(
    kind: Kind, entities: Sequence[Entity], namespace: str
) -> tuple[dict[str, str], list[str]]:
    """metadata.name by AWS name for the entities to write, and notes on those skipped."""
    names: dict[str, str] = {}
    notes: list[str] = []
    fresh: list[Entity] = []
    for entity in entities:
        found = claim(entity.tags)
        if found is None:
            fresh.append(entity)
            continue
        owner_namespace, _, owner_name = found[0].partition("/")
        described = f"IAM {kind.noun} {entity.name}: already managed by {kind.name} {found[0]}"
        if owner_namespace != namespace or not _valid(owner_name):
            notes.append(f"skipped {described} (rolekeeper.dev/owner tag)")
        elif owner_name in names.values():
            notes.append(f"skipped {described}, which also manages another {kind.noun} written")
        else:
            names[entity.name] = owner_name
            notes.append(f"{described}: written as that object (no adoption needed)")
    taken = set(names.values())
    bases = {e.name: e.name if _valid(e.name) else dns_label(e.name) for e in fresh}
    counts: dict[str, int] = {}
    for label in bases.values():
        counts[label] = counts.get(label, 0) + 1
    # An AWS name that already is the label keeps it; every other claimant of a shared or
    # taken label (and every name cut short or left empty) gets its hash, the same every run.
    keeps = {e.name for e in fresh if e.name == bases[e.name] and e.name not in taken}
    taken |= keeps
    for entity in fresh:
        label = bases[entity.name]
        if entity.name in keeps:
            names[entity.name] = label
        elif counts[label] == 1 and label not in taken and _valid(label):
            names[entity.name] = label
            taken.add(label)
        else:
            names[entity.name] = _hashed(label, entity.name, taken)
            taken.add(names[entity.name])
    return names, notes


def dns_label(aws_name: str) -> str:
    """The AWS name as lowercase letters, digits and single '-' (possibly too long or empty)."""
    return re.sub(r"[^a-z0-9]+", "-", aws_name.lower()).strip("-")


def _hashed(label: str, aws_name: str, taken: Iterable[str]) -> str:
    digest = hashlib.sha256(aws_name.encode()).hexdigest()
    used = set(taken)
    for digits in range(HASH_DIGITS, len(digest) + 1):
        suffix = digest[:digits]
        stem = label[: MAX_NAME - digits - 1].rstrip("-")
        name = f"{stem}-{suffix}" if stem else suffix
        if name not in used:
            return name
    raise ValueError(f"no unique object name for {aws_name!r}")  # 2^-256: unreachable


def _valid(name: str) -> bool:
    return len(name) <= MAX_NAME and LABEL.fullmatch(name) is not None


# --- YAML as the examples are written -----------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style, no anchors or aliases, lists indented under their key, and double quotes
    (as in examples/) where a string needs quoting at all."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        return '"' if style == "'" else style


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # A description over several lines reads best as a literal block.
    # (PyYAML falls back to a quoted string where a block cannot hold the text exactly.)
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def to_yaml(objects: Iterable[Imported]) -> str:
    """Multi-document YAML, each object preceded by a comment naming the entity's ARN."""
    documents = []
    for imported in objects:
        noun = registry.get(imported.kind).noun
        body = yaml.dump(
            imported.obj,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=1_000_000,
        )
        documents.append(f"# IAM {noun} {imported.arn or imported.aws_name}\n{body}")
    return "---\n".join(documents)
