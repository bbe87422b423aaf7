"""`rolekeeper plan` and `rolekeeper snapshot`: what merging IAM manifests will do to AWS."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import yaml

# cli.py imports this module for every command, and the core (policy -> deepdiff) and boto3 take
# ~0.3 s to import: they are imported inside the functions that use them (the `noqa: PLC0415`
# below), so `rolekeeper crds` and `version` stay fast.
if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from controller.aws import Clients
    from controller.model import Desired, Entity
    from controller.observe import AccountSnapshot
    from controller.plan import Action

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = [
    "ACTIONS",
    "Change",
    "DocumentDiff",
    "Input",
    "Manifest",
    "Problem",
    "Review",
    "Source",
    "World",
    "add_plan",
    "add_snapshot",
    "compute",
    "document_field",
    "load",
    "load_snapshot",
    "plan_command",
    "read_only",
    "snapshot_command",
    "snapshot_json",
]

ActionKind = Literal["create", "update", "delete", "noop", "conflict", "refused", "invalid"]
ACTIONS: tuple[ActionKind, ...] = (
    "create",
    "update",
    "delete",
    "noop",
    "conflict",
    "refused",
    "invalid",
)
CHANGES: frozenset[str] = frozenset({"create", "update", "delete"})
# What the operator would report as Ready=False: the merge would not do what it says.
FAILURES: frozenset[str] = frozenset({"conflict", "refused", "invalid"})

GROUP = "iam.rolekeeper.dev"
KINDS = ("IAMRole", "IAMUser")
SUFFIXES = (".yaml", ".yml", ".json")
PLAN_FORMAT = 1  # version of the --format json schema (docs/plan.md)
SNAPSHOT_FORMAT = 1  # version of the `rolekeeper snapshot` file
# Per-entity reads cost ~5 calls per object; one account snapshot costs a few pages for most
# accounts. Past this many objects the snapshot is the cheaper (and faster) read.
SNAPSHOT_THRESHOLD = 20
# Manifests from Git carry no metadata.uid: Kubernetes assigns it when the object is created.
UID_PLACEHOLDER = "<metadata.uid>"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --- input ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where an object was read: file (or "-" for stdin), 1-based document and line, List item."""

    file: str
    document: int
    line: int
    item: int | None = None

    def __str__(self) -> str:
        name = "<stdin>" if self.file == "-" else self.file
        if not self.document:
            return name  # the file as a whole (it could not be read)
        where = f"document {self.document}" + (
            f", items[{self.item}]" if self.item is not None else ""
        )
        return f"{name}:{self.line} ({where})"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "document": self.document, "line": self.line, "item": self.item}


@dataclass(frozen=True)
class Manifest:
    """One IAMRole or IAMUser object as written, with where it came from."""

    source: Source
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))


@dataclass(frozen=True)
class Problem:
    """Input that could not be read as objects at all (unreadable file, malformed YAML)."""

    source: Source
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass
class Input:
    """Everything read from the paths: our objects, unreadable input, other kinds skipped."""

    manifests: list[Manifest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[tuple[Source, str]] = field(default_factory=list)  # (where, "Kind ns/name")


def load(paths: Sequence[str], stdin: TextIO | None = None) -> Input:
    """Read IAMRole/IAMUser objects from files, directories (recursive) and "-" (stdin)."""
    found = Input()
    for path in paths:
        if path == "-":
            _load_text((stdin or sys.stdin).read(), "-", found)
            continue
        target = Path(path)
        if target.is_dir():
            files = sorted(
                p
                for p in target.rglob("*")
                if p.suffix in SUFFIXES
                and p.is_file()
                # .git, .github and friends hold no manifests, but may hold workflow YAML.
                and not any(part.startswith(".") for part in p.relative_to(target).parts)
            )
        else:
            files = [target]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                found.problems.append(Problem(Source(str(file), 0, 0), f"cannot read: {reason}"))
                continue
            _load_text(text, str(file), found)
    return found


def _load_text(text: str, file: str, found: Input) -> None:
    loader = _Loader(text)
    loaded = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            loaded += 1
            line = node.start_mark.line + 1 if node is not None else 1
            data = loader.construct_document(node) if node is not None else None
            _collect(data, Source(file, loaded, line), node, found)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # The error is in the document after the last one read; the parser cannot resynchronise
        # after it, so the rest of the file is lost (and reported as this one error).
        source = Source(file, loaded + 1, mark.line + 1 if mark else 1)
        problem = getattr(exc, "problem", None) or str(exc)
        column = f" column {mark.column + 1}" if mark else ""
        found.problems.append(Problem(source, f"malformed YAML{column}: {problem}"))
    finally:
        loader.dispose()


def _collect(data: Any, source: Source, node: Any, found: Input) -> None:
    if data is None:
        return  # an empty document (a trailing ---)
    if not isinstance(data, Mapping):
        found.problems.append(
            Problem(source, f"expected a Kubernetes object, got a {type(data).__name__}")
        )
        return
    kind = data.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list):
        lines = _item_lines(node)
        for index, item in enumerate(data["items"]):
            line = lines[index] if index < len(lines) else source.line
            _collect_one(item, replace(source, line=line, item=index), found)
        return
    _collect_one(data, source, found)


def _collect_one(data: Any, source: Source, found: Input) -> None:
    if not isinstance(data, Mapping):
        found.problems.append(Problem(source, f"expected an object, got a {type(data).__name__}"))
        return
    kind = data.get("kind")
    group = str(data.get("apiVersion") or "").split("/")[0]
    if kind in KINDS and group == GROUP:
        found.manifests.append(Manifest(source, data))
        return
    name = "/".join(v for v in (_meta(data, "namespace"), _meta(data, "name")) if v)
    found.ignored.append((source, f"{data.get('apiVersion')} {kind} {name}".strip()))


def _item_lines(node: Any) -> list[int]:
    """1-based start line of each element of a List's `items`, from the parsed YAML node."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "items" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentDiff:
    """What changes in meaning in one policy document (`policy.describe_diff` lines)."""

    field: str  # spec.assumeRolePolicy, spec.inlinePolicies.<name>
    changes: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """The plan for one object: what the operator will do with its AWS entity, call by call."""

    kind: str
    namespace: str
    name: str
    aws_name: str
    action: ActionKind
    calls: tuple[Action, ...] = ()
    diff: tuple[DocumentDiff, ...] = ()
    message: str = ""
    source: Source | None = None  # None for a prune (declared nowhere in the input)

    @property
    def entity_kind(self) -> str:
        return _noun(self.kind)


@dataclass(frozen=True)
class Review:
    """A whole plan: one change per object (input order, then prunes), and unreadable input."""

    changes: tuple[Change, ...]
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()  # what the reader must know to trust the plan (shown in output)

    def summary(self) -> dict[str, int]:
        counts = Counter(c.action for c in self.changes)
        return {action: counts[action] for action in ACTIONS}

    def exit_code(self, detailed: bool) -> int:
        """terraform plan's convention: 1 error, and with `detailed` 2 when something changes."""
        if self.problems or any(c.action in FAILURES for c in self.changes):
            return 1
        if detailed and any(c.action in CHANGES for c in self.changes):
            return 2
        return 0


@dataclass
class World:
    """Where AWS state comes from: live reads (`clients`), a snapshot, or a live snapshot (both).

    Without `clients` nothing is ever sent to AWS: the plan is made from the snapshot alone.
    """

    clients: Clients | None = None
    snapshot: AccountSnapshot | None = None
    partition: str = "aws"  # bare account ids in policies become root ARNs of this partition

    @functools.cached_property
    def owned(self) -> Mapping[tuple[str, str], list[Entity]]:
        """Snapshot entities by (kind, owner tag): what each object already manages."""
        from controller import model  # noqa: PLC0415

        table: dict[tuple[str, str], list[Entity]] = {}
        if self.snapshot is not None:
            for kind, entities in (
                ("IAMRole", self.snapshot.roles.values()),
                ("IAMUser", self.snapshot.users.values()),
            ):
                for entity in entities:
                    claim = model.owner_of(entity)
                    if claim is not None:
                        table.setdefault((kind, claim[0]), []).append(entity)
        return table

    def read(self, entity: Entity, credentials: bool = False) -> Entity | None:
        from controller import observe  # noqa: PLC0415

        assert self.clients is not None
        return observe.read(self.clients.iam, entity, credentials=credentials)

    def operator_calls(self, desired: Desired, actions: tuple[Action, ...]) -> tuple[Action, ...]:
        """What the operator executes of a plan: it keeps instance profiles it did not create,
        which it learns from the profile's tags (a read only AWS can answer)."""
        if self.clients is None:
            return actions
        from controller import reconcile  # noqa: PLC0415

        # reconcile owns this rule and applies it to every plan it executes; reuse it as is.
        return reconcile.keep_foreign_profiles(self.clients, desired, actions)


PROFILE_UNKNOWN = (
    "the snapshot does not say who created instance profile {}: the operator deletes it "
    "only if Rolekeeper created it (else it only removes the role from it)"
)


def document_field(action: Action) -> str | None:
    """The spec field whose policy document a call sends, if any (to place a diff by its call)."""
    if action.api in ("CreateRole", "UpdateAssumeRolePolicy"):
        return "spec.assumeRolePolicy"
    if action.api in ("PutRolePolicy", "PutUserPolicy"):
        return f"spec.inlinePolicies.{action.params['PolicyName']}"
    return None


def compute(
    found: Input, world: World, prune_scopes: Sequence[str] = (), namespace: str = "default"
) -> Review:
    """The plan for every object read, plus `- delete` for owned entities no longer declared."""
    from controller import model  # noqa: PLC0415

    declared: dict[tuple[str, str, str], Source] = {}
    # One slot per object in input order: a finished Change (invalid) or a Desired to plan.
    slots: list[Change | tuple[Desired, Source]] = []
    for manifest in found.manifests:
        obj = _with_namespace(manifest.obj, namespace)
        key = (manifest.kind, _meta(obj, "namespace"), _meta(obj, "name"))
        if key in declared:
            twice = f"{key[0]} {key[1]}/{key[2]} is declared twice (first at {declared[key]})"
            slots.append(_invalid(obj, manifest.source, [twice]))
            continue
        declared[key] = manifest.source
        try:
            slots.append((model.parse(obj), manifest.source))
        except model.SpecError as exc:
            slots.append(_invalid(obj, manifest.source, exc.errors))
    changes: list[Change] = []
    claimed: dict[tuple[str, str], Desired] = {}
    for slot in slots:
        if isinstance(slot, Change):
            changes.append(slot)
            continue
        desired, source = slot
        first = claimed.setdefault((desired.ref.kind, desired.aws_name), desired)
        if first is not desired:
            changes.append(_name_clash(desired, source, first, declared))
        else:
            changes.append(_observe_and_decide(desired, source, world))
    notes = []
    if prune_scopes and found.problems:
        # Objects in an unreadable file would all look undeclared: deletes nobody asked for.
        notes.append("deletes (--prune-scope) are not listed: some input could not be read")
    elif prune_scopes:
        if world.snapshot is None:
            raise ValueError("pruning needs an account snapshot")  # plan_command always takes one
        owners = {(kind, f"{ns}/{name}") for kind, ns, name in declared}
        changes.extend(_prunes(world, set(prune_scopes), owners))
    return Review(tuple(changes), tuple(found.problems), tuple(notes))


def _meta(obj: Mapping[str, Any], key: str) -> str:
    meta = obj.get("metadata")
    value = meta.get(key) if isinstance(meta, Mapping) else None
    return str(value) if value else ""


def _with_namespace(obj: Mapping[str, Any], namespace: str) -> Mapping[str, Any]:
    """As `kubectl apply -n`: objects that name no namespace land in the given one."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or meta.get("namespace"):
        return obj
    return {**obj, "metadata": {**meta, "namespace": namespace}}


def _invalid(obj: Mapping[str, Any], source: Source, errors: Sequence[str]) -> Change:
    kind = str(obj.get("kind"))
    spec = obj.get("spec")
    name_key = "roleName" if kind == "IAMRole" else "userName"
    aws_name = spec.get(name_key) if isinstance(spec, Mapping) else None
    if not isinstance(aws_name, str) or not aws_name:
        aws_name = _meta(obj, "name")
    return Change(
        kind=kind,
        namespace=_meta(obj, "namespace"),
        name=_meta(obj, "name"),
        aws_name=str(aws_name or ""),
        action="invalid",
        message="\n".join(errors),
        source=source,
    )


def _base(desired: Desired, source: Source | None, action: ActionKind, **rest: Any) -> Change:
    return Change(
        kind=desired.ref.kind,
        namespace=desired.ref.namespace,
        name=desired.ref.name,
        aws_name=desired.aws_name,
        action=action,
        source=source,
        **rest,
    )


def _name_clash(
    desired: Desired,
    source: Source,
    first: Desired,
    declared: Mapping[tuple[str, str, str], Source],
) -> Change:
    kind = _noun(desired.ref.kind)
    where = declared[(first.ref.kind, first.ref.namespace, first.ref.name)]
    return _base(
        desired,
        source,
        "conflict",
        message=(
            f"IAM {kind} {desired.aws_name!r} is also declared by {first.ref.kind} "
            f"{first.ref.owner} at {where}; two objects cannot own one AWS name: "
            f"choose another spec.{kind}Name"
        ),
    )


def _observe_and_decide(desired: Desired, source: Source, world: World) -> Change:
    """Mirror `reconcile.reconcile`: a snapshot entry that needs no call is trusted; anything
    else is decided on a fresh read (when AWS can be read), exactly as the operator does."""
    if world.snapshot is not None:
        renamed = _renamed(desired, world)
        if renamed:
            return _base(desired, source, "invalid", message=renamed)
        change = _decide(desired, source, world.snapshot.find(desired.entity), world)
        if change.action == "noop" or world.clients is None:
            return change
    return _decide(desired, source, world.read(desired.entity), world)


def _renamed(desired: Desired, world: World) -> str:
    """The operator refuses a changed roleName/userName (status.arn names the old entity); a
    snapshot shows that case as an entity owned by this object under another name."""
    from controller import reconcile  # noqa: PLC0415

    for entity in world.owned.get((desired.ref.kind, desired.ref.owner), []):
        if entity.name != desired.aws_name:
            # reconcile owns the wording; it says the same in the object's status.
            return reconcile.renamed_message(desired, entity.arn)
    return ""


def _decide(desired: Desired, source: Source, observed: Entity | None, world: World) -> Change:
    from controller import model, plan  # noqa: PLC0415

    verdict = plan.ownership(desired, observed)
    if not verdict.allowed:
        assert observed is not None
        action: ActionKind = "conflict" if verdict is plan.Ownership.CONFLICT else "refused"
        return _base(
            desired, source, action, message=plan.refusal_message(desired, observed, verdict)
        )
    desired = _with_uid(desired, observed)
    try:
        calls = plan.plan(desired, observed, world.partition)
    except model.SpecError as exc:
        return _base(desired, source, "invalid", message="\n".join(exc.errors))
    calls = world.operator_calls(desired, calls)
    notes = []
    if verdict is plan.Ownership.ADOPT:
        notes.append(
            f"adopts the existing IAM {_noun(desired.ref.kind)} {desired.aws_name!r} "
            "(spec.adopt: true): its settings are replaced by this spec"
        )
    if world.clients is None:
        notes += _unknown_profiles(calls)
    message = "\n".join(notes)
    if observed is None:
        return _base(desired, source, "create", calls=calls, message=message)
    return _base(
        desired,
        source,
        "update" if calls else "noop",
        calls=calls,
        diff=_document_diffs(desired.entity, observed, calls),
        message=message,
    )


def _with_uid(desired: Desired, observed: Entity | None) -> Desired:
    """Fill in the uid a manifest from Git lacks: an owned entity's recorded uid (the object in
    the cluster is the one that created it), else a placeholder for the uid-to-be."""
    from controller import model  # noqa: PLC0415

    if desired.ref.uid:
        return desired
    claim = model.owner_of(observed) if observed is not None else None
    uid = claim[1] if claim is not None and claim[0] == desired.ref.owner else UID_PLACEHOLDER
    return replace(desired, ref=replace(desired.ref, uid=uid))


def _document_diffs(
    entity: Entity, observed: Entity, calls: Sequence[Action]
) -> tuple[DocumentDiff, ...]:
    """Semantic diffs for the documents the calls replace (an equivalent one is never sent)."""
    from controller import model, policy  # noqa: PLC0415

    diffs = []
    for call in calls:
        old: Mapping[str, Any] | None = None
        new: Mapping[str, Any] | None = None
        if call.api == "UpdateAssumeRolePolicy":
            assert isinstance(entity, model.Role) and isinstance(observed, model.Role)
            old, new = observed.assume_role_policy, entity.assume_role_policy
        elif call.api in ("PutRolePolicy", "PutUserPolicy"):
            name = str(call.params["PolicyName"])
            old, new = observed.inline_policies.get(name), entity.inline_policies[name]
        where = document_field(call)
        if old is not None and new is not None and where is not None:
            diffs.append(DocumentDiff(where, tuple(policy.describe_diff(old, new))))
    return tuple(diffs)


def _prunes(world: World, scopes: set[str], declared: set[tuple[str, str]]) -> list[Change]:
    """`- delete` for every entity our tag says belongs to an object of a scoped namespace that
    the input no longer declares: what `finalize` does once the object leaves the cluster."""
    changes = []
    for (kind, owner), entities in sorted(world.owned.items(), key=lambda i: (i[0][1], i[0][0])):
        namespace, _, name = owner.partition("/")
        if namespace not in scopes or not name or (kind, owner) in declared:
            continue
        for entity in sorted(entities, key=lambda e: e.name):
            changes.extend(_prune(world, kind, owner, entity))
    return changes


def _prune(world: World, kind: str, owner: str, entity: Entity) -> list[Change]:
    from controller import model, plan  # noqa: PLC0415

    # finalize re-reads with credentials (keys, MFA, ...): do the same when AWS is at hand.
    seen = world.read(entity, credentials=True) if world.clients is not None else entity
    claim = model.owner_of(seen) if seen is not None else None
    if seen is None or claim is None or claim[0] != owner:
        return []  # gone, or someone else's since the snapshot: finalize leaves it alone
    namespace, _, name = owner.partition("/")
    ref = model.ObjectRef(kind, namespace, name, claim[1])
    calls = world.operator_calls(model.Desired(ref, seen), plan.plan_delete(seen))
    notes = [
        f"{kind} {owner} is no longer declared: the operator deletes this {_noun(kind)} "
        "once the object is removed from the cluster (with deletionPolicy: Retain it only "
        "removes its rolekeeper.dev tags)"
    ]
    if isinstance(seen, model.User) and seen.credentials is None:
        notes.append(
            "the snapshot holds no access keys, login profile, MFA devices or other "
            "credentials: their delete calls, if any, are not listed"
        )
    if world.clients is None:
        notes += _unknown_profiles(calls)
    return [
        Change(
            kind=kind,
            namespace=namespace,
            name=name,
            aws_name=entity.name,
            action="delete",
            calls=calls,
            message="\n".join(notes),
        )
    ]


def _unknown_profiles(calls: Sequence[Action]) -> list[str]:
    return [
        PROFILE_UNKNOWN.format(call.params["InstanceProfileName"])
        for call in calls
        if call.api == "DeleteInstanceProfile"
    ]


def _noun(kind: str) -> str:
    return "role" if kind == "IAMRole" else "user"


# --- snapshots --------------------------------------------------------------------------------


def snapshot_json(
    snapshot: AccountSnapshot, account: str = "", partition: str = "aws", taken: str = ""
) -> dict[str, Any]:
    """The `rolekeeper snapshot` file: AccountSnapshot.to_json plus a format version, and the
    account it describes (a plan sends bare account ids as root ARNs of its partition)."""
    data = snapshot.to_json()
    return {
        "formatVersion": SNAPSHOT_FORMAT,
        "account": account,
        "partition": partition,
        "takenAt": taken,
        # Sorted, so two snapshots of one account diff cleanly.
        "roles": sorted(data["roles"], key=lambda r: str(r["name"])),
        "users": sorted(data["users"], key=lambda u: str(u["name"])),
    }


def load_snapshot(path: str) -> tuple[AccountSnapshot, str, str]:
    """Read a `rolekeeper snapshot` file: (snapshot, partition, "account X, taken T").
    ValueError says what is wrong with the file."""
    from controller import observe  # noqa: PLC0415

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read snapshot: {exc}") from exc
    if not isinstance(data, dict) or "formatVersion" not in data:
        raise ValueError(f"{path}: not a rolekeeper snapshot (no formatVersion)")
    if data["formatVersion"] != SNAPSHOT_FORMAT:
        raise ValueError(
            f"{path}: snapshot format {data['formatVersion']!r} is not supported "
            f"(this rolekeeper reads format {SNAPSHOT_FORMAT}); take a new one"
        )
    try:
        snapshot = observe.snapshot_from_json(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: damaged snapshot: missing or wrong {exc}") from exc
    account = data.get("account") or "unknown"
    taken = data.get("takenAt") or "at an unknown time"
    return snapshot, str(data.get("partition") or "aws"), f"account {account}, taken {taken}"


# --- command line -----------------------------------------------------------------------------


def add_plan(sub: SubParsers) -> None:
    parser = sub.add_parser(
        "plan",
        help="show what applying IAMRole/IAMUser manifests will do to AWS (read-only)",
        description=(
            "Read IAMRole/IAMUser manifests and list, per object, the exact IAM calls the "
            "operator will make once they are applied. Only reads AWS (Get*/List*)."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="a manifest file, a directory (recursive *.yaml, *.yml, *.json) or - for stdin",
    )
    parser.add_argument(
        "-f", "--filename", action="append", default=[], metavar="PATH", help="same as PATH"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace of objects that name none, as kubectl apply -n (default: default)",
    )
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument(
        "--snapshot", metavar="FILE", help="plan against a `rolekeeper snapshot` file: no AWS call"
    )
    parser.add_argument(
        "--prune-scope",
        action="append",
        default=[],
        metavar="NAMESPACE",
        help="the input holds every object of this namespace: list entities owned by objects "
        "of it that are no longer declared as deletes (repeatable)",
    )
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing changes, 2 when something does, 1 on error",
    )


def add_snapshot(sub: SubParsers) -> None:
    parser = sub.add_parser(
        "snapshot",
        help="save the account's IAM roles and users for `plan --snapshot` (read-only)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def plan_command(args: argparse.Namespace) -> int:
    from controller import render  # noqa: PLC0415

    if not args.paths and not args.filename:
        print("rolekeeper plan: give a PATH (file, directory or - for stdin)", file=sys.stderr)
        return 1
    found = load([*args.paths, *args.filename])
    _note_ignored(found)
    try:
        with _aws_errors():
            world = _world(args, len(found.manifests))
            review = compute(found, world, args.prune_scope, args.namespace)
    except _AWSUnavailable as exc:
        print(f"rolekeeper plan: {exc}", file=sys.stderr)
        return 1
    for problem in review.problems:
        print(f"error: {problem}", file=sys.stderr)
    for change in review.changes:
        if change.action == "invalid":
            for line in change.message.splitlines():
                print(f"error: {change.source}: {line}", file=sys.stderr)
    if args.format == "json":
        output = render.json_text(review)
    elif args.format == "markdown":
        output = render.markdown(review)
    else:
        output = render.text(review, color=_color(sys.stdout))
    sys.stdout.write(output)
    return review.exit_code(args.detailed_exitcode)


def snapshot_command(args: argparse.Namespace) -> int:
    from controller import aws, observe  # noqa: PLC0415

    try:
        with _aws_errors():
            clients = aws.connect()
            read_only(clients.iam)
            snapshot = observe.snapshot(clients.iam)
    except _AWSUnavailable as exc:
        print(f"rolekeeper snapshot: {exc}", file=sys.stderr)
        return 1
    taken = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    data = snapshot_json(snapshot, clients.account_id, clients.partition, taken)
    text = json.dumps(data, indent=2, sort_keys=True)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


class _AWSUnavailable(Exception):
    """AWS (or the snapshot file) could not be read: the plan cannot be made."""


@contextlib.contextmanager
def _aws_errors() -> Iterator[None]:
    """Turn boto3/botocore failures into one readable line for the command's user."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        denied = isinstance(exc, ClientError) and "AccessDenied" in str(exc)
        hint = " (docs/plan.md lists the read-only permissions plan needs)" if denied else ""
        raise _AWSUnavailable(f"cannot read AWS: {exc}{hint}") from exc


def _world(args: argparse.Namespace, objects: int) -> World:
    from controller import aws, observe  # noqa: PLC0415

    if args.snapshot:
        try:
            snapshot, partition, taken = load_snapshot(args.snapshot)
        except ValueError as exc:
            raise _AWSUnavailable(str(exc)) from exc
        print(f"note: planning against the snapshot {args.snapshot} ({taken})", file=sys.stderr)
        return World(snapshot=snapshot, partition=partition)
    clients = aws.connect()
    read_only(clients.iam)
    # Prunes need every entity's owner tag, which only the account listing gives.
    if args.prune_scope or objects > SNAPSHOT_THRESHOLD:
        snapshot = observe.snapshot(clients.iam)
        return World(clients=clients, snapshot=snapshot, partition=clients.partition)
    return World(clients=clients, partition=clients.partition)


def read_only(iam: IAMClient) -> None:
    """Refuse any IAM call but Get*/List* before it leaves the process: plan never writes."""

    def refuse(model: Any, **_: Any) -> None:
        if not model.name.startswith(("Get", "List")):
            raise RuntimeError(f"rolekeeper plan is read-only: refusing IAM {model.name}")

    iam.meta.events.register("before-call.iam", refuse)


def _note_ignored(found: Input) -> None:
    if not found.ignored:
        return
    shown = ", ".join(f"{what} ({where})" for where, what in found.ignored[:5])
    more = f" and {len(found.ignored) - 5} more" if len(found.ignored) > 5 else ""
    print(
        f"note: ignored {len(found.ignored)} object(s) that are not IAMRole/IAMUser: {shown}{more}",
        file=sys.stderr,
    )


def _color(stream: TextIO) -> bool:
    # https://no-color.org; a pipe or a CI log file gets plain text.
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
