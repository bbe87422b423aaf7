"""`rolekeeper plan`'s computation: each manifest's Decision, made by the operator's own `decide`.

Nothing here decides anything itself: `engine.reconcile.observe_and_decide` does, exactly as it
does for the operator, so the calls a review shows are the calls the operator makes. This
module only adds what a review needs around it: where each object came from, names declared
twice, the snapshot's owned entities (renames, prunes), readable document diffs, and the
security findings on what each object asks of IAM (`core.findings`, as the operator writes to
status.findings, with the object's suppression annotation applied).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from controller.core import policy
from controller.core.actions import Action, Ownership, claim
from controller.core.errors import SpecError
from controller.core.findings import SUPPRESS_ANNOTATION, Finding, Severity, findings_for, suppress
from controller.core.guardrails import GuardrailError, parse_guardrail
from controller.core.podidentity import TrustContext
from controller.engine import references
from controller.engine.gate import Gate
from controller.engine.reconcile import Decision, Verb, decide, observe_and_decide
from controller.engine.references import KnownToExist
from controller.kinds import registry
from controller.kinds.base import Desired, Entity, Kind, ObjectRef, PolicyRef
from controller.review.manifests import Input, Problem, Source, meta
from controller.settings import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from controller.aws.clients import Clients
    from controller.kinds.snapshot import AccountSnapshot

ActionKind = Literal[
    "create", "update", "delete", "noop", "denied", "conflict", "refused", "invalid"
]
ACTIONS: tuple[ActionKind, ...] = (
    "create",
    "update",
    "delete",
    "noop",
    "denied",
    "conflict",
    "refused",
    "invalid",
)
CHANGES: frozenset[str] = frozenset({"create", "update", "delete"})
# What the operator would report as Ready=False: the merge would not do what it says.
FAILURES: frozenset[str] = frozenset({"denied", "conflict", "refused", "invalid"})
PLAN_FORMAT = 1  # version of the --format json schema (docs/plan.md)

document_field = registry.document_field


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
    # What the object asks of IAM that is dangerous, worst first; suppressed ones kept, marked.
    # Empty for prunes and invalid objects (nothing parsed to judge).
    findings: tuple[Finding, ...] = ()

    @property
    def entity_kind(self) -> str:
        found = registry.KINDS.get(self.kind)
        return found.noun if found is not None else self.kind


@dataclass(frozen=True)
class Review:
    """A whole plan: one change per object (input order, then prunes), and unreadable input."""

    changes: tuple[Change, ...]
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()  # what the reader must know to trust the plan (shown in output)

    def summary(self) -> dict[str, int]:
        counts = Counter(c.action for c in self.changes)
        return {action: counts[action] for action in ACTIONS}

    def failing_findings(self, threshold: Severity | str) -> list[tuple[Change, Finding]]:
        """Unsuppressed findings at `threshold` or worse, with their change (`--fail-on`)."""
        return [
            (c, f)
            for c in self.changes
            for f in c.findings
            if not f.suppressed and f.severity.at_least(threshold)
        ]

    def exit_code(self, detailed: bool, fail_on: Severity | str | None = None) -> int:
        """terraform plan's convention: 1 error, and with `detailed` 2 when something changes.

        With `fail_on`, an unsuppressed finding that severe or worse is an error too (1).
        """
        if self.problems or any(c.action in FAILURES for c in self.changes):
            return 1
        if fail_on is not None and self.failing_findings(fail_on):
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
    # The account the objects live in: lets findings tell a foreign trusted account (RK-TRUST-003).
    account_id: str | None = None
    # Show the current settings of entities the input's objects neither own nor may adopt
    # (`--show-foreign`, for trusted contexts); by default a plan says only that they exist.
    show_foreign: bool = False
    # The cluster's service-account issuer (`--oidc-issuer`): the IRSA trust of an IAMRole's
    # spec.serviceAccounts names it. None: such roles are invalid in the plan, saying why.
    oidc_issuer: str | None = None

    def __post_init__(self) -> None:
        self._owned = self.snapshot.owned() if self.snapshot is not None else {}
        self._known = KnownToExist()

    @property
    def owned(self) -> Mapping[tuple[str, str], list[Entity]]:
        """Snapshot entities by (kind, owner tag): what each object already manages."""
        return self._owned

    def reader(self, kind: Kind, name: str, *, for_delete: bool = False) -> Any:
        """A read of one entity for `observe_and_decide`, or None when offline."""
        clients = self.clients
        if clients is None:
            return None
        return lambda: kind.read(clients.iam, name, for_delete=for_delete)

    def will_exist(self, what: str, name: str) -> None:
        """Something the input itself creates: a reference to it is not missing."""
        self._known.remember((what, name))

    def missing(self, calls: tuple[Action, ...]) -> list[str]:
        """What the calls attach that AWS lacks, as the operator checks it ([] offline)."""
        if self.clients is None:
            return []
        return references.missing(self.clients.iam, calls, self._known)

    def refine(self, kind: Kind, desired: Desired, calls: tuple[Action, ...]) -> tuple[Action, ...]:
        """What the operator executes of a plan: the kind's refinements that only AWS can
        answer (e.g. a role keeps an instance profile it did not create)."""
        if self.clients is None:
            return calls
        return kind.refine(self.clients.iam, desired, calls)


def compute(
    found: Input,
    world: World,
    prune_scopes: Sequence[str] = (),
    namespace: str = "default",
    cluster_id: str = "",
    limits: Limits = DEFAULT_LIMITS,
) -> Review:
    """The plan for every object read, plus `- delete` for owned entities no longer declared.

    The guardrails are the IAMGuardrail objects of the input (a plan run adds the cluster's
    with --guardrails), judged with the labels of the input's Namespace objects; `cluster_id`
    is the identity of the cluster that will apply the objects ("" when not known); `limits`
    are the operator's (its --ignore-tags, so the plan leaves alone what the operator does).
    """
    gate, problems = _gate(found, world)
    declared: dict[tuple[str, str, str], Source] = {}
    # One slot per object in input order: a finished Change (invalid) or a Desired to plan,
    # with its suppression annotation.
    slots: list[Change | tuple[Desired, Source, str]] = []
    for manifest in found.manifests:
        obj = _with_namespace(manifest.obj, namespace)
        key = (manifest.kind, meta(obj, "namespace"), meta(obj, "name"))
        if key in declared:
            twice = f"{key[0]} {key[1]}/{key[2]} is declared twice (first at {declared[key]})"
            slots.append(_invalid(obj, manifest.source, [twice]))
            continue
        declared[key] = manifest.source
        try:
            desired = registry.parse(obj, limits)
            if cluster_id:
                desired = desired.in_cluster(cluster_id)
            desired = _with_trust(desired, world, limits)
            slots.append((desired, manifest.source, _suppression(obj)))
        except SpecError as exc:
            slots.append(_invalid(obj, manifest.source, exc.errors))
    changes: list[Change] = []
    claimed: dict[tuple[str, str], Desired] = {}
    policies = _Policies(
        [slot[0] for slot in slots if not isinstance(slot, Change)],
        _shares(found, namespace),
        world,
    )
    for arn in policies.declared_arns():  # created by this same input: not "missing"
        world.will_exist("policy", arn)
    for slot in slots:
        if isinstance(slot, Change):
            changes.append(slot)
            continue
        desired, source, suppressions = slot
        first = claimed.setdefault((desired.ref.kind, desired.aws_name), desired)
        desired, missing = references.resolve(desired, partial(policies.arn, desired.ref.namespace))
        if first is not slot[0]:
            change = _name_clash(desired, source, first, declared)
        elif missing:
            message = "\n".join([*missing, "(the operator reports DependencyNotReady until then)"])
            change = _base(desired, source, "invalid", message=message)
        else:
            change = _plan_one(desired, source, world, gate)
        changes.append(replace(change, findings=_findings(desired, suppressions, world)))
    notes = []
    if prune_scopes and (found.problems or problems):
        # Objects in an unreadable file would all look undeclared: deletes nobody asked for.
        notes.append("deletes (--prune-scope) are not listed: some input could not be read")
    elif prune_scopes:
        if world.snapshot is None:
            raise ValueError("pruning needs an account snapshot")  # plan_command always takes one
        owners = {(kind, f"{ns}/{name}") for kind, ns, name in declared}
        changes.extend(_prunes(world, set(prune_scopes), owners))
    return Review(tuple(changes), (*found.problems, *problems), tuple(notes))


def _with_trust(desired: Desired, world: World, limits: Limits) -> Desired:
    """The trust statements spec.serviceAccounts asks for, generated as the operator does."""
    if desired.pod_identity is None:
        return desired
    context = TrustContext(
        issuer=world.oidc_issuer,
        account_id=world.account_id or "<account-id>",
        partition=world.partition,
        trust_policy_size=limits.trust_policy_size,
        missing_issuer=(
            "spec.serviceAccounts: the IRSA trust statement names the cluster's OIDC issuer: "
            "pass --oidc-issuer URL (kubectl get --raw /.well-known/openid-configuration "
            "shows it; on EKS it is the cluster's OpenID Connect provider URL)"
        ),
    )
    return registry.of(desired).bind_trust(desired, context)


def _gate(found: Input, world: World) -> tuple[Gate, list[Problem]]:
    """The guardrails of the input, and a problem for each one that cannot be read (a plan
    with a broken guardrail would judge nothing it is meant to judge)."""
    rules, problems = [], []
    for manifest in found.guardrails:
        try:
            rules.append(parse_guardrail(manifest.obj))
        except GuardrailError as exc:
            problems.append(Problem(manifest.source, f"IAMGuardrail: {exc}"))
    gate = Gate(
        guardrails=tuple(sorted(rules, key=lambda g: g.name)),
        labels=found.namespaces,
        account_id=world.account_id,
    )
    return gate, problems


class _Policies:
    """Where a plan finds the ARN of an IAMPolicy a role or user references: a policy object of
    the input (the ARN it will have once created), else one the account already has for that
    object (its owner tag)."""

    def __init__(
        self, objects: list[Desired], shares: Mapping[tuple[str, str], str], world: World
    ) -> None:
        account = world.account_id or "<account-id>"
        self._declared: dict[tuple[str, str], tuple[str, str]] = {}
        for desired in objects:
            if desired.ref.kind != registry.REFERENCED.name:
                continue
            where = (desired.ref.namespace, desired.ref.name)
            path = desired.entity.path
            arn = f"arn:{world.partition}:iam::{account}:policy{path}{desired.aws_name}"
            self._declared[where] = (arn, shares.get(where, ""))
        self._world = world

    def declared_arns(self) -> list[str]:
        return [arn for arn, _ in self._declared.values()]

    def arn(self, namespace: str, ref: PolicyRef) -> tuple[str, str]:
        declared = self._declared.get((ref.namespace, ref.name))
        if declared is not None:
            arn, share = declared
            if ref.namespace != namespace and not references.shared_with(share, namespace):
                return "", f"is not shared with namespace {namespace}"
            return arn, ""
        owner = f"{ref.namespace}/{ref.name}"
        for entity in self._world.owned.get((registry.REFERENCED.name, owner), []):
            return entity.arn, ""
        return "", "is neither in the input nor in the account"


def _shares(found: Input, namespace: str) -> dict[tuple[str, str], str]:
    """The shared-with annotations of the input's referenced objects, by (namespace, name)."""
    shares = {}
    for manifest in found.manifests:
        metadata = manifest.obj.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
        if manifest.kind == registry.REFERENCED.name and isinstance(annotations, Mapping):
            where = (meta(manifest.obj, "namespace") or namespace, meta(manifest.obj, "name"))
            shares[where] = str(annotations.get(references.SHARE_ANNOTATION, ""))
    return shares


def aws_names(found: Input) -> set[str]:
    """The AWS names the input's objects ask for (a spec's name field, else metadata.name)."""
    names = set()
    for manifest in found.manifests:
        kind = registry.KINDS.get(manifest.kind)
        spec = manifest.obj.get("spec")
        name = spec.get(kind.name_field) if kind and isinstance(spec, Mapping) else None
        names.add(name if isinstance(name, str) and name else meta(manifest.obj, "name"))
    return names


def _plan_one(desired: Desired, source: Source, world: World, gate: Gate) -> Change:
    """The operator's decision for one object, on the snapshot when it needs no call, else on a
    fresh read (when AWS can be read), exactly as the operator makes it."""
    kind = registry.of(desired)
    read = world.reader(kind, desired.aws_name)
    if world.snapshot is not None:
        decision, observed = observe_and_decide(
            kind,
            desired,
            read=read,
            hint=world.snapshot.find(desired),
            hinted=True,
            partition=world.partition,
            known_arn=_known_arn(desired, world),
            gate=gate,
        )
    else:
        decision, observed = observe_and_decide(
            kind, desired, read=read, partition=world.partition, gate=gate
        )
    return _change(kind, desired, source, decision, observed, world)


def _findings(desired: Desired, suppressions: str, world: World) -> tuple[Finding, ...]:
    """The object's findings as the operator writes them to status.findings."""
    view = registry.of(desired).view(desired)
    return suppress(findings_for(view, account_id=world.account_id), suppressions)


def _suppression(obj: Mapping[str, Any]) -> str:
    """The object's suppress-findings annotation ("" when it has none)."""
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    value = annotations.get(SUPPRESS_ANNOTATION) if isinstance(annotations, Mapping) else None
    return value if isinstance(value, str) else ""


def _known_arn(desired: Desired, world: World) -> str:
    """The ARN this object already manages under another name, as status.arn would say: a
    snapshot shows a rename as an entity owned by this object under another name."""
    for entity in world.owned.get((desired.ref.kind, desired.ref.owner), []):
        if entity.name != desired.aws_name:
            return entity.arn
    return ""


def _change(
    kind: Kind,
    desired: Desired,
    source: Source,
    decision: Decision,
    observed: Entity | None,
    world: World,
) -> Change:
    warned = [f"guardrail warning: {w}" for w in decision.warnings]
    if not world.show_foreign and _foreign(desired, decision, observed):
        return _withheld(kind, desired, source, decision, warned)
    if not decision.allowed:
        separator = "; " if decision.verb in (Verb.CONFLICT, Verb.REFUSED) else "\n"
        message = separator.join(decision.errors)
        return _base(desired, source, decision.verb.value, message="\n".join([message, *warned]))
    if desired.observe_only:
        return _base(
            desired,
            source,
            "noop",
            message="\n".join([_observing(kind, desired, decision, observed), *warned]),
        )
    calls = world.refine(kind, desired, decision.calls)
    absent = world.missing(calls)
    if absent:
        nothing = "nothing would be created" if observed is None else "nothing would change"
        message = f"{'; '.join(absent)}: {nothing} (the operator reports DependencyNotReady)"
        return _base(desired, source, "invalid", message="\n".join([message, *warned]))
    notes = list(decision.notes) + warned
    if world.clients is None:
        notes += kind.offline_notes(observed, calls)
    diff = _document_diffs(kind, desired.entity, observed, calls) if observed else ()
    return _base(
        desired, source, decision.verb.value, calls=calls, diff=diff, message="\n".join(notes)
    )


def _foreign(desired: Desired, decision: Decision, observed: Entity | None) -> bool:
    """Whether `observed` exists and is neither this object's (its owner tag names another
    object, or none) nor one a guardrail lets it adopt: its settings are not the input's to see.

    A decision made before AWS was looked at (a guardrail's denial, a rename) quotes nothing
    of the entity, and an adoption the guardrails allow is the object's to see."""
    if observed is None or decision.ownership not in (Ownership.CONFLICT, Ownership.REFUSED):
        return False
    found = claim(observed.tags)
    return found is None or found[0] != desired.ref.owner  # same owner, other cluster: theirs


WITHHELD = (
    "its owner, settings and documents are not shown: a plan shows only the entities the "
    "input's objects own or may adopt (--show-foreign shows them, for trusted contexts)"
)


def _withheld(
    kind: Kind, desired: Desired, source: Source, decision: Decision, warned: list[str]
) -> Change:
    """What a plan says about an entity that is not the object's: that it exists, nothing more
    (no calls, no diff, no tags, no owner, no ARN; refusal_message names the other owner)."""
    name = desired.aws_name
    exists = f"IAM {kind.noun} {name!r} already exists and is not managed by this object"
    if desired.observe_only:
        head = "observe-only (spec.managementPolicy: Observe): nothing is written"
        verb = "invalid" if decision.verb is Verb.INVALID else "noop"
        fits = "the spec cannot describe it" if verb == "invalid" else "what differs"
        message = f"{head}; {exists}; {fits}: {WITHHELD}"
    elif decision.ownership is Ownership.CONFLICT:
        verb = "conflict"
        message = (
            f"{exists} (another object manages it); two objects cannot own one AWS name: "
            f"choose another spec.{kind.name_field}; {WITHHELD}"
        )
    else:  # REFUSED: untagged, and adoption was not asked for
        verb = decision.verb.value
        message = "; ".join(decision.errors)  # refusal_message: the name, nothing of the entity
    return _base(desired, source, verb, message="\n".join([message, *warned]))


def _observing(kind: Kind, desired: Desired, decision: Decision, observed: Entity | None) -> str:
    """What an observe-only object reports: no call is ever made for it."""
    head = "observe-only (spec.managementPolicy: Observe): nothing is written"
    if observed is None:
        return f"{head}; IAM {kind.noun} {desired.aws_name} does not exist (it is not created)"
    if not decision.calls:
        return f"{head}; AWS matches the spec"
    listed = "".join(f"\n  - {call.summary}" for call in decision.calls)
    return f"{head}; with Manage these {len(decision.calls)} call(s) would be made:{listed}"


def _with_namespace(obj: Mapping[str, Any], namespace: str) -> Mapping[str, Any]:
    """As `kubectl apply -n`: objects that name no namespace land in the given one."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("namespace"):
        return obj
    return {**obj, "metadata": {**metadata, "namespace": namespace}}


def _invalid(obj: Mapping[str, Any], source: Source, errors: Sequence[str]) -> Change:
    kind_name = str(obj.get("kind"))
    found = registry.KINDS.get(kind_name)
    spec = obj.get("spec")
    aws_name = spec.get(found.name_field) if found and isinstance(spec, Mapping) else None
    if not isinstance(aws_name, str) or not aws_name:
        aws_name = meta(obj, "name")
    return Change(
        kind=kind_name,
        namespace=meta(obj, "namespace"),
        name=meta(obj, "name"),
        aws_name=str(aws_name or ""),
        action="invalid",
        message="\n".join(errors),
        source=source,
    )


def _base(desired: Desired, source: Source | None, action: str, **rest: Any) -> Change:
    return Change(
        kind=desired.ref.kind,
        namespace=desired.ref.namespace,
        name=desired.ref.name,
        aws_name=desired.aws_name,
        action=action,  # type: ignore[arg-type]  # a Verb's value is an ActionKind
        source=source,
        **rest,
    )


def _name_clash(
    desired: Desired,
    source: Source,
    first: Desired,
    declared: Mapping[tuple[str, str, str], Source],
) -> Change:
    kind = registry.of(desired)
    where = declared[(first.ref.kind, first.ref.namespace, first.ref.name)]
    return _base(
        desired,
        source,
        "conflict",
        message=(
            f"IAM {kind.noun} {desired.aws_name!r} is also declared by {first.ref.kind} "
            f"{first.ref.owner} at {where}; two objects cannot own one AWS name: "
            f"choose another spec.{kind.name_field}"
        ),
    )


def _document_diffs(
    kind: Kind, entity: Entity, observed: Entity, calls: Sequence[Action]
) -> tuple[DocumentDiff, ...]:
    """Semantic diffs for the documents the calls replace (an equivalent one is never sent)."""
    new_docs, old_docs = kind.documents(entity), kind.documents(observed)
    diffs = []
    for call in calls:
        where = kind.document_field(call)
        if where is None or call.api.startswith("Create"):
            continue
        old, new = old_docs.get(where), new_docs.get(where)
        if old is not None and new is not None:
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
            changes.extend(_prune(world, registry.get(kind), owner, entity))
    return changes


def _prune(world: World, kind: Kind, owner: str, entity: Entity) -> list[Change]:
    # finalize re-reads with credentials (keys, MFA, ...): do the same when AWS is at hand.
    read = world.reader(kind, entity.name, for_delete=True)
    seen = read() if read is not None else entity
    found = claim(seen.tags) if seen is not None else None
    if seen is None or found is None or found[0] != owner:
        return []  # gone, or someone else's since the snapshot: finalize leaves it alone
    namespace, _, name = owner.partition("/")
    desired = Desired(ObjectRef(kind.name, namespace, name, found[1]), seen)
    calls = world.refine(kind, desired, kind.plan_delete(seen))
    notes = [
        f"{kind.name} {owner} is no longer declared: the operator deletes this {kind.noun} "
        "once the object is removed from the cluster (with deletionPolicy: Retain it only "
        "removes its rolekeeper.dev tags)"
    ]
    if world.clients is None:
        notes += kind.offline_notes(seen, calls)
    return [
        Change(
            kind=kind.name,
            namespace=namespace,
            name=name,
            aws_name=entity.name,
            action="delete",
            calls=calls,
            message="\n".join(notes),
        )
    ]


__all__ = [
    "ACTIONS",
    "PLAN_FORMAT",
    "Change",
    "DocumentDiff",
    "Ownership",
    "Review",
    "World",
    "compute",
    "decide",
    "document_field",
]
