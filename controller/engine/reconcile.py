"""The one decision path: `decide` (pure), then `reconcile` (observe, decide, execute), `finalize`.

Every trigger — a create/update/resume, a drift check, `rolekeeper plan` — makes its decision
with `decide`, so the plan a reviewer reads is, by construction, what the operator does.

Contract (what callers — the Kopf handlers, `plan`, tests, benchmarks — may rely on):

- **Pure decision.** `decide(kind, desired, observed)` reads nothing and writes nothing: what
  exists, whose it is, which calls make it match, or why nothing may be done.
- **Idempotent.** Calling `reconcile` again after any outcome, or after a crash at any point,
  converges to the same AWS state; a second call on a converged object makes only read calls.
- **Level-based.** The decision uses the spec and what AWS holds now, never the event or diff
  that triggered the call.
- **Concurrency.** Safe to run concurrently for *different* objects. The caller serialises calls
  for the same object (Kopf does, per object).
- **Ownership.** Never writes to an entity that does not carry this object's owner tag, unless
  the entity is absent (create) or untagged with `adopt: true` (tag, then manage). `finalize`
  never deletes an entity it does not own; an entity owned by someone else is left untouched.
- **Errors.** Transient AWS errors are raised (`RetryableError`) for the caller to back off;
  terminal ones are returned as an `Outcome` with `Ready=False` and AWS's message. `finalize`
  never reports success while AWS still holds what it should delete.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from controller.aws.clients import Clients
from controller.core.actions import CLUSTER_TAG, Action, Ownership, claim, ownership
from controller.core.errors import DeleteConflict, RetryableError, SpecError, TerminalError
from controller.core.status import Reason, Verdict
from controller.engine import apply, references
from controller.engine.gate import Gate
from controller.engine.references import KnownToExist
from controller.kinds import registry
from controller.kinds.base import Desired, Entity, Kind, Usage

log = logging.getLogger(__name__)

OnApplied = Callable[[Action], None]
# Manifests from Git carry no metadata.uid: Kubernetes assigns it when the object is created.
UID_PLACEHOLDER = "<metadata.uid>"
# ... and a plan made without --cluster-id does not know the cluster that will create it.
CLUSTER_PLACEHOLDER = "<cluster-id>"


class Verb(enum.StrEnum):
    """What a decision does with an object's entity (the words `rolekeeper plan` prints)."""

    CREATE = "create"
    UPDATE = "update"
    NOOP = "noop"
    DENIED = "denied"  # a guardrail forbids what the spec asks for
    CONFLICT = "conflict"  # owned by another object (or by another cluster)
    REFUSED = "refused"  # exists, not ours, and adoption was not asked for
    INVALID = "invalid"  # the spec asks for something that cannot be done


@dataclass(frozen=True)
class Decision:
    """What to do about one object, decided before anything is done."""

    verb: Verb
    calls: tuple[Action, ...] = ()
    errors: tuple[str, ...] = ()  # why nothing may be done (conflict, refused, invalid)
    notes: tuple[str, ...] = ()  # what a reviewer must know to trust the calls (adoption)
    ownership: Ownership | None = None
    warnings: tuple[str, ...] = ()  # guardrails in `warn` enforcement that this object breaks

    @property
    def allowed(self) -> bool:
        return self.verb in (Verb.CREATE, Verb.UPDATE, Verb.NOOP)

    @property
    def message(self) -> str:
        return "; ".join(self.errors)


def decide(
    kind: Kind,
    desired: Desired,
    observed: Entity | None,
    *,
    partition: str = "aws",
    known_arn: str = "",
    gate: Gate | None = None,
) -> Decision:
    """The calls that make AWS match `desired`, or why none may be made.

    `observed` is what AWS holds under the desired name (None: nothing). `known_arn` is the ARN
    the object already manages (its status, or for a plan the snapshot's owned entity): a spec
    naming a different entity is refused, never a silent delete and re-create. `gate` holds
    the guardrails (None: none are judged — only tests and tools that enforce nothing).
    """
    refused = refuse_early(kind, desired, known_arn=known_arn, gate=gate)
    if refused is not None and refused.verb is not Verb.NOOP:
        return refused
    warnings = refused.warnings if refused is not None else ()
    tags = None if observed is None else observed.tags
    verdict = ownership(desired.ref.owner, desired.adopt, tags, desired.ref.cluster)
    if not verdict.allowed and not desired.observe_only:  # observing needs no ownership
        assert observed is not None
        verb = Verb.CONFLICT if verdict is Ownership.CONFLICT else Verb.REFUSED
        message = refusal_message(kind, observed, verdict, desired.ref.owner)
        return Decision(verb, errors=(message,), ownership=verdict, warnings=warnings)
    if (
        verdict is Ownership.ADOPT
        and not desired.observe_only
        and gate is not None
        and gate.protects(_present(observed))
    ):
        message = (
            f"IAM {kind.noun} {desired.aws_name!r} is the identity Rolekeeper itself runs as; "
            "it is never adopted"
        )
        return Decision(Verb.REFUSED, errors=(message,), ownership=verdict, warnings=warnings)
    desired = _with_identity(desired, observed)
    try:
        calls = kind.plan(desired, observed, partition)
    except SpecError as exc:
        return Decision(
            Verb.INVALID, errors=tuple(exc.errors), ownership=verdict, warnings=warnings
        )
    notes: tuple[str, ...] = ()
    if verdict is Ownership.ADOPT:
        notes = (
            f"adopts the existing IAM {kind.noun} {desired.aws_name!r} "
            "(spec.adopt: true): its settings are replaced by this spec",
        )
    verb = Verb.CREATE if observed is None else Verb.UPDATE if calls else Verb.NOOP
    return Decision(verb, calls=calls, notes=notes, ownership=verdict, warnings=warnings)


def refuse_early(
    kind: Kind, desired: Desired, *, known_arn: str = "", gate: Gate | None = None
) -> Decision | None:
    """What is decided without looking at AWS: a rename, or a guardrail's denial. A NOOP
    decision carries only the guardrail warnings; None: nothing to say."""
    renamed = renamed_message(kind, desired, known_arn)
    if renamed:
        return Decision(Verb.INVALID, errors=(renamed,))
    if desired.references:  # the caller resolves them first (engine.references.resolve)
        unresolved = ", ".join(str(r) for r in desired.references)
        return Decision(Verb.INVALID, errors=(f"references not resolved: {unresolved}",))
    if gate is None:
        return None
    judged = gate.judge(kind, desired)
    if judged.denied:
        errors = tuple(v.message for v in judged.denied)
        return Decision(Verb.DENIED, errors=errors, warnings=judged.warnings)
    return Decision(Verb.NOOP, warnings=judged.warnings) if judged.warnings else None


def _present(observed: Entity | None) -> Entity:
    assert observed is not None, "only an existing entity is adopted"
    return observed


def renamed_message(kind: Kind, desired: Desired, known_arn: str) -> str:
    """Why a changed roleName/userName is refused ("" when the name is unchanged)."""
    if not known_arn:
        return ""
    known_name = known_arn.rsplit("/", 1)[-1]
    if known_name == desired.aws_name:
        return ""
    return (
        f"spec.{kind.name_field}: is immutable; this object manages {known_name!r} "
        f"(status.arn {known_arn}), not {desired.aws_name!r}. Create a new object to rename"
    )


def refusal_message(kind: Kind, observed: Entity, verdict: Ownership, owner: str = "") -> str:
    """The words a user sees when Rolekeeper will not touch an existing entity."""
    if verdict is Ownership.CONFLICT:
        found = claim(observed.tags)
        other = found[0] if found else "?"
        if other == owner:
            cluster = observed.tags.get(CLUSTER_TAG, "?")
            return (
                f"IAM {kind.noun} {observed.name!r} is managed by {other} in another cluster "
                f"({CLUSTER_TAG}={cluster}); Rolekeeper never takes over another cluster's "
                f"entity: choose another spec.{kind.name_field}, or delete the object there"
            )
        return (
            f"IAM {kind.noun} {observed.name!r} is already managed by {other}; "
            f"two objects cannot own one AWS name: choose another spec.{kind.name_field}"
        )
    return (
        f"IAM {kind.noun} {observed.name!r} already exists and was not created by Rolekeeper; "
        "set spec.adopt: true to take it over (its settings will be replaced by this spec)"
    )


def _with_identity(desired: Desired, observed: Entity | None) -> Desired:
    """Fill in what a manifest from Git lacks (only `plan` sees those): the uid and cluster an
    owned entity records (the object in the cluster is the one that created it), else
    placeholders for the values-to-be."""
    ref = desired.ref
    if ref.uid and ref.cluster:
        return desired
    found = claim(observed.tags) if observed is not None else None
    owned = found is not None and found[0] == ref.owner
    tags = observed.tags if observed is not None and owned else {}
    uid = ref.uid or (found[1] if found is not None and owned else UID_PLACEHOLDER)
    cluster = ref.cluster or tags.get(CLUSTER_TAG, "" if ref.uid else CLUSTER_PLACEHOLDER)
    return replace(desired, ref=replace(ref, uid=uid, cluster=cluster))


def observe_and_decide(
    kind: Kind,
    desired: Desired,
    *,
    read: Callable[[], Entity | None] | None,
    hint: Entity | None = None,
    hinted: bool = False,
    partition: str = "aws",
    known_arn: str = "",
    gate: Gate | None = None,
) -> tuple[Decision, Entity | None]:
    """Decide from a snapshot's `hint` when it needs no call (hinted=True; None = absent there),
    else from a fresh `read()` (the snapshot may be stale: a stale one can cost a read, never a
    wrong write). Without `read` (an offline plan) the hint is the answer."""
    early = refuse_early(kind, desired, known_arn=known_arn, gate=gate)
    if early is not None and early.verb is not Verb.NOOP:  # whatever AWS holds: read nothing
        return early, hint

    def on(observed: Entity | None) -> Decision:
        return decide(kind, desired, observed, partition=partition, known_arn=known_arn, gate=gate)

    if hinted:
        decision = on(hint)
        if decision.verb is Verb.NOOP or read is None:
            return decision, hint
    observed = read() if read is not None else None
    return on(observed), observed


# --- the operator's loop ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one reconcile or finalize concluded (Crossplane's ExternalObservation, plus effects)."""

    verdict: Verdict
    exists: bool
    up_to_date: bool
    applied: tuple[Action, ...] = ()
    drift: tuple[str, ...] = ()  # what differed from the spec before applying, in words
    warnings: tuple[str, ...] = ()  # guardrails in `warn` enforcement this object breaks
    observe_only: bool = False  # managementPolicy: Observe: `drift` is reported, never applied
    usage: Usage | None = None  # when the entity was last used, where the kind tracks it

    @property
    def ready(self) -> bool:
        return self.verdict.ready


def reconcile(
    clients: Clients,
    desired: Desired,
    observed: Entity | None = None,
    *,
    known_arn: str = "",
    likely_absent: bool = False,
    on_applied: OnApplied | None = None,
    gate: Gate | None = None,
    known: KnownToExist | None = None,
) -> Outcome:
    """Make AWS match `desired`.

    `observed` may come from an account snapshot: when it already matches, no further call is
    made; when it differs, the entity is re-read before anything is written (None: read it).
    `known_arn` is the ARN recorded in status: a spec naming a different entity is refused.
    `likely_absent` (a new object that never created anything) skips the read before the
    create: CreateRole/CreateUser itself refuses an existing name, and only then is the entity
    read and ownership decided as usual — the same safety, one call less per create.
    `gate` holds the guardrails; `known` remembers references already seen to exist.
    """
    kind = registry.of(desired)
    known = known if known is not None else KnownToExist()
    hinted = observed is not None
    if likely_absent and not hinted and not desired.observe_only:
        decision = decide(
            kind, desired, None, partition=clients.partition, known_arn=known_arn, gate=gate
        )
        if decision.verb is Verb.CREATE:
            try:
                return _write(clients, kind, desired, None, decision, on_applied, known)
            except RetryableError as exc:
                if exc.code != "EntityAlreadyExists" or exc.applied:
                    raise
                log.info("%s: %s exists already; reading it", desired.ref.owner, desired.aws_name)

    def read() -> Entity | None:
        return kind.read(clients.iam, desired.aws_name, arn=known_arn)

    try:
        decision, observed = observe_and_decide(
            kind,
            desired,
            read=read,
            hint=observed,
            hinted=hinted,
            partition=clients.partition,
            known_arn=known_arn,
            gate=gate,
        )
    except TerminalError as exc:  # e.g. AccessDenied on the read: say so; transient propagate
        return Outcome(
            Verdict(False, Reason.AWS_ERROR, exc.explain()), exists=False, up_to_date=False
        )
    exists = observed is not None or bool(known_arn)
    if desired.observe_only and decision.verb not in (Verb.INVALID, Verb.DENIED):
        return _observation(kind, desired, decision, observed)
    if not decision.allowed:
        reason = REFUSAL_REASONS[decision.verb]
        return Outcome(
            Verdict(False, reason, decision.message),
            exists=exists if decision.verb is not Verb.CONFLICT else True,
            up_to_date=False,
            warnings=decision.warnings,
        )
    if decision.verb is Verb.NOOP:
        assert observed is not None
        return Outcome(
            Verdict(
                True,
                Reason.SYNCED,
                _synced_message(kind),
                *_ids(observed),
                fields=kind.status_fields(observed, ()),
            ),
            exists=True,
            up_to_date=True,
            warnings=decision.warnings,
            usage=kind.usage(observed),
        )
    return _write(clients, kind, desired, observed, decision, on_applied, known)


def _observation(
    kind: Kind, desired: Desired, decision: Decision, observed: Entity | None
) -> Outcome:
    """managementPolicy: Observe — report what Manage would change; write nothing, ever."""
    if observed is None:
        message = (
            f"IAM {kind.noun} {desired.aws_name} does not exist "
            "(managementPolicy: Observe never creates it)"
        )
        return Outcome(
            Verdict(False, Reason.NOT_FOUND, message),
            exists=False,
            up_to_date=False,
            warnings=decision.warnings,
            observe_only=True,
        )
    differences = tuple(call.summary for call in decision.calls)
    state = f"{len(differences)} difference(s) with the spec" if differences else "in sync"
    return Outcome(
        Verdict(
            True,
            Reason.OBSERVED,
            f"IAM {kind.noun} exists; observe-only: {state}",
            *_ids(observed),
            fields=kind.status_fields(observed, ()),
        ),
        exists=True,
        up_to_date=not differences,
        drift=differences,
        warnings=decision.warnings,
        observe_only=True,
        usage=kind.usage(observed),
    )


REFUSAL_REASONS = {
    Verb.INVALID: Reason.INVALID_SPEC,
    Verb.DENIED: Reason.GUARDRAIL_VIOLATION,
    Verb.CONFLICT: Reason.CONFLICT,
    Verb.REFUSED: Reason.CONFLICT,
}


def _write(
    clients: Clients,
    kind: Kind,
    desired: Desired,
    observed: Entity | None,
    decision: Decision,
    on_applied: OnApplied | None,
    known: KnownToExist,
) -> Outcome:
    """Check what the calls reference, then execute them (nothing when a reference is missing)."""
    calls = kind.refine(clients.iam, desired, decision.calls)
    absent = references.missing(clients.iam, calls, known)
    if absent:
        nothing = "nothing was created" if observed is None else "nothing was changed"
        return Outcome(
            Verdict(
                False,
                Reason.DEPENDENCY_NOT_READY,
                f"{'; '.join(absent)}: {nothing}; create it or fix the spec",
                *_ids(observed),
            ),
            exists=observed is not None,
            up_to_date=False,
            warnings=decision.warnings,
        )
    outcome = _execute(clients, kind, desired, observed, calls, on_applied)
    return replace(outcome, warnings=decision.warnings)


def _execute(
    clients: Clients,
    kind: Kind,
    desired: Desired,
    observed: Entity | None,
    actions: tuple[Action, ...],
    on_applied: OnApplied | None,
) -> Outcome:
    """Execute a decision's calls and turn the result (or a terminal error) into an Outcome."""
    drift = tuple(a.summary for a in actions) if observed is not None else ()
    arn, entity_id = _ids(observed)
    try:
        done = apply.execute(clients.iam, kind, actions, on_applied)
    except TerminalError as exc:
        # A create that failed partway (the 11th policy refused by the account quota) still
        # made the entity: its ARN and id belong in status now, not after the next drift check.
        for made in exc.created:
            arn, entity_id = made
        return Outcome(
            Verdict(False, Reason.AWS_ERROR, exc.explain(), arn, entity_id),
            exists=observed is not None or bool(arn),
            up_to_date=False,
            applied=exc.applied,
            drift=drift,
        )
    for result in done:
        created = kind.created(result.action, result.response)
        if created is not None:
            arn, entity_id = created
    fields = kind.status_fields(observed, [(a.action, a.response) for a in done])
    return Outcome(
        # Same words as a check that found nothing to do: "created"/"updated" would be history
        # (the Events keep it), and rewording it on the next drift check costs every object a
        # status write for nothing.
        Verdict(True, Reason.SYNCED, _synced_message(kind), arn, entity_id, fields=fields),
        exists=True,
        up_to_date=True,
        applied=tuple(a.action for a in done),
        drift=drift,
        usage=None if observed is None else kind.usage(observed),
    )


def finalize(
    clients: Clients,
    desired: Desired,
    on_applied: OnApplied | None = None,
    known_arn: str = "",
) -> Outcome:
    """Delete (or, with Retain, release) what `desired` owns in AWS; success only once clean.

    One DeleteConflict (something attached between our read and our delete) is answered by a
    re-read and a re-plan; a second one is raised for the caller to retry later.
    """
    kind = registry.of(desired)
    applied: list[Action] = []
    if desired.observe_only:  # never deletes anything in AWS, and reads nothing to know it
        return _gone(kind, desired, applied, left=True)

    def record(action: Action) -> None:
        applied.append(action)
        if on_applied is not None:
            on_applied(action)

    for attempt in range(2):
        observed = kind.read(
            clients.iam, desired.aws_name, for_delete=True, rare=attempt > 0, arn=known_arn
        )
        if observed is None:
            orphans = kind.cleanup_orphans(clients.iam, desired, None)
            apply.execute(clients.iam, kind, orphans, record)
            return _gone(kind, desired, applied)
        verdict = ownership(desired.ref.owner, desired.adopt, observed.tags, desired.ref.cluster)
        if verdict is not Ownership.OWNED:
            log.info(
                "%s: leaving %s %s in AWS: not owned by this object",
                desired.ref.owner,
                kind.noun,
                observed.name,
            )
            return _gone(kind, desired, applied, left=True)
        if desired.deletion_policy == "Retain":
            apply.execute(clients.iam, kind, kind.plan_release(observed), record)
            return _gone(kind, desired, applied, left=True)
        try:
            actions = kind.refine(clients.iam, desired, kind.plan_delete(observed))
            actions += kind.cleanup_orphans(clients.iam, desired, observed)
            apply.execute(clients.iam, kind, actions, record)
            return _gone(kind, desired, applied)
        except DeleteConflict:
            if attempt:
                raise
            log.info("%s: DeleteConflict, re-reading %s", desired.ref.owner, observed.name)
    raise AssertionError("unreachable")


# --- outcomes ---------------------------------------------------------------------------------


def _ids(entity: Entity | None) -> tuple[str, str]:
    return ("", "") if entity is None else (entity.arn, entity.entity_id)


def _synced_message(kind: Kind) -> str:
    return f"IAM {kind.noun} is in sync"


def _gone(kind: Kind, desired: Desired, applied: list[Action], left: bool = False) -> Outcome:
    what = "left in AWS" if left else "deleted"
    return Outcome(
        Verdict(False, Reason.DELETING, f"IAM {kind.noun} {desired.aws_name} {what}"),
        exists=False,
        up_to_date=True,
        applied=tuple(applied),
    )
