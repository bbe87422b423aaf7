"""One reconcile step for one object: observe AWS, plan against the spec, apply, report.

Contract (what callers — the Kopf handlers, tests, benchmarks — may rely on):

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

import logging
from collections.abc import Callable
from dataclasses import dataclass

from controller import apply, observe, plan
from controller.apply import AWSError, DeleteConflict, RetryableError, TerminalError
from controller.aws import Clients
from controller.model import OWNER_TAG, Desired, Entity, Role, SpecError
from controller.plan import Action, Ownership
from controller.status import Reason, Verdict

log = logging.getLogger(__name__)

OnApplied = Callable[[Action], None]


@dataclass(frozen=True)
class Outcome:
    """What one reconcile or finalize concluded (Crossplane's ExternalObservation, plus effects)."""

    verdict: Verdict
    exists: bool
    up_to_date: bool
    applied: tuple[Action, ...] = ()
    drift: tuple[str, ...] = ()  # what differed from the spec before applying, in words

    @property
    def ready(self) -> bool:
        return self.verdict.ready


def reconcile(
    clients: Clients,
    desired: Desired,
    observed: Entity | None = None,
    *,
    fresh: bool = False,
    known_arn: str = "",
    likely_absent: bool = False,
    on_applied: OnApplied | None = None,
) -> Outcome:
    """Make AWS match `desired`.

    `observed` may come from an account snapshot: when it already matches, no further call is
    made; when it differs, the entity is re-read before anything is written (the snapshot may be
    stale). `fresh=True` says `observed` was just read and can be trusted as is.
    `known_arn` is the ARN recorded in status: a spec naming a different entity is refused.
    `likely_absent` (a new object that never created anything) skips the read before the
    create: CreateRole/CreateUser itself refuses an existing name, and only then is the entity
    read and ownership decided as usual — the same safety, one call less per create.
    """
    renamed = renamed_message(desired, known_arn)
    if renamed:
        return _invalid(renamed, exists=True)
    if observed is None and likely_absent:
        try:
            return _apply(
                clients, desired, None, plan.plan(desired, None, clients.partition), on_applied
            )
        except RetryableError as exc:
            if exc.code != "EntityAlreadyExists" or exc.applied:
                raise
            log.info("%s: %s exists already; reading it", desired.ref.owner, desired.aws_name)
    if observed is not None and not fresh:
        verdict = plan.ownership(desired, observed)
        if verdict.allowed:
            try:
                if not plan.plan(desired, observed, clients.partition):
                    return _synced(observed)
            except SpecError as exc:
                return _invalid(str(exc), exists=True)
        observed = None  # differs or unclear: decide on a fresh read
    if observed is None:
        try:
            with apply.classified("read"):
                observed = observe.read(clients.iam, desired.entity)
        except TerminalError as exc:  # e.g. AccessDenied: say so; transient errors propagate
            return Outcome(
                Verdict(False, Reason.AWS_ERROR, _explain(exc)), exists=False, up_to_date=False
            )
    verdict = plan.ownership(desired, observed)
    if not verdict.allowed:
        assert observed is not None
        message = plan.refusal_message(desired, observed, verdict)
        return Outcome(Verdict(False, Reason.CONFLICT, message), exists=True, up_to_date=False)
    try:
        actions = plan.plan(desired, observed, clients.partition)
    except SpecError as exc:
        return _invalid(str(exc), exists=observed is not None)
    if not actions:
        assert observed is not None
        return _synced(observed)
    return _apply(
        clients, desired, observed, keep_foreign_profiles(clients, desired, actions), on_applied
    )


def _apply(
    clients: Clients,
    desired: Desired,
    observed: Entity | None,
    actions: tuple[Action, ...],
    on_applied: OnApplied | None,
) -> Outcome:
    """Execute a plan and turn the result (or a terminal error) into an Outcome."""
    drift = tuple(a.summary for a in actions) if observed is not None else ()
    try:
        done = apply.execute(clients.iam, actions, on_applied)
    except TerminalError as exc:
        return Outcome(
            Verdict(False, Reason.AWS_ERROR, _explain(exc), *_ids(observed)),
            exists=observed is not None or any(a.api.startswith("Create") for a in exc.applied),
            up_to_date=False,
            applied=exc.applied,
            drift=drift,
        )
    arn, entity_id = _ids(observed)
    for result in done:
        created = result.response.get("Role") or result.response.get("User")
        if result.action.api in ("CreateRole", "CreateUser") and created:
            arn = created["Arn"]
            entity_id = created.get("RoleId") or created.get("UserId", "")
    return Outcome(
        # Same words as a check that found nothing to do: "created"/"updated" would be history
        # (the Events keep it), and rewording it on the next drift check costs every object a
        # status write for nothing.
        Verdict(True, Reason.SYNCED, _synced_message(desired), arn, entity_id),
        exists=True,
        up_to_date=True,
        applied=tuple(a.action for a in done),
        drift=drift,
    )


def finalize(clients: Clients, desired: Desired, on_applied: OnApplied | None = None) -> Outcome:
    """Delete (or, with Retain, release) what `desired` owns in AWS; success only once clean.

    One DeleteConflict (something attached between our read and our delete) is answered by a
    re-read and a re-plan; a second one is raised for the caller to retry later.
    """
    applied: list[Action] = []

    def record(action: Action) -> None:
        applied.append(action)
        if on_applied is not None:
            on_applied(action)

    for attempt in range(2):
        with apply.classified("read"):
            observed = observe.read(
                clients.iam, desired.entity, credentials=True, rare_credentials=attempt > 0
            )
        if observed is None:
            apply.execute(clients.iam, _orphaned_profile(clients, desired, None), record)
            return _gone(desired, applied)
        verdict = plan.ownership(desired, observed)
        if verdict is not Ownership.OWNED:
            log.info(
                "%s: leaving %s %s in AWS: %s",
                desired.ref.owner,
                _kind(observed),
                observed.name,
                "not owned by this object",
            )
            return _gone(desired, applied, left=True)
        if desired.deletion_policy == "Retain":
            apply.execute(clients.iam, plan.plan_release(observed), record)
            return _gone(desired, applied, left=True)
        try:
            actions = keep_foreign_profiles(clients, desired, plan.plan_delete(observed))
            actions += _orphaned_profile(clients, desired, observed)
            apply.execute(clients.iam, actions, record)
            return _gone(desired, applied)
        except DeleteConflict:
            if attempt:
                raise
            log.info("%s: DeleteConflict, re-reading %s", desired.ref.owner, observed.name)
    raise AssertionError("unreachable")


def keep_foreign_profiles(
    clients: Clients, desired: Desired, actions: tuple[Action, ...]
) -> tuple[Action, ...]:
    """Drop DeleteInstanceProfile for a profile we did not create (e.g. the console's
    same-named profile of an adopted EC2 role): the role leaves it, the profile stays."""
    kept = []
    for action in actions:
        if action.api == "DeleteInstanceProfile":
            with apply.classified("GetInstanceProfile"):
                tags = observe.instance_profile_tags(
                    clients.iam, action.params["InstanceProfileName"]
                )
            if tags is None or tags.get(OWNER_TAG) != desired.ref.owner:
                log.info(
                    "%s: leaving instance profile %s (not created by Rolekeeper)",
                    desired.ref.owner,
                    action.params["InstanceProfileName"],
                )
                continue
        kept.append(action)
    return tuple(kept)


def _orphaned_profile(
    clients: Clients, desired: Desired, observed: Entity | None
) -> tuple[Action, ...]:
    """DeleteInstanceProfile for our same-named profile once no role is in it: an attempt stopped
    between RemoveRoleFromInstanceProfile and DeleteInstanceProfile (a crash, a lost answer)
    leaves it behind, and the role's own listing no longer leads to it. One extra read, only
    for roles whose spec asks for a profile and whose profile the role no longer lists."""
    name = desired.aws_name
    if not isinstance(desired.entity, Role) or name not in desired.entity.instance_profiles:
        return ()
    if isinstance(observed, Role) and name in observed.instance_profiles:
        return ()  # still holds the role: plan_delete removes and deletes it
    with apply.classified("read"):
        found = observe.instance_profile(clients.iam, name)
    if found is None or found[1] or found[0].get(OWNER_TAG) != desired.ref.owner:
        return ()
    return (
        Action(
            "DeleteInstanceProfile",
            {"InstanceProfileName": name},
            f"Deleted instance profile {name}",
        ),
    )


# --- outcomes ---------------------------------------------------------------------------------


def _kind(entity: Entity) -> str:
    return "role" if isinstance(entity, Role) else "user"


def _ids(entity: Entity | None) -> tuple[str, str]:
    if entity is None:
        return "", ""
    return entity.arn, entity.role_id if isinstance(entity, Role) else entity.user_id


def _synced(observed: Entity) -> Outcome:
    arn, entity_id = _ids(observed)
    return Outcome(
        Verdict(True, Reason.SYNCED, f"IAM {_kind(observed)} is in sync", arn, entity_id),
        exists=True,
        up_to_date=True,
    )


def _synced_message(desired: Desired) -> str:
    return f"IAM {_kind(desired.entity)} is in sync"


def _invalid(message: str, exists: bool) -> Outcome:
    return Outcome(Verdict(False, Reason.INVALID_SPEC, message), exists=exists, up_to_date=False)


def _gone(desired: Desired, applied: list[Action], left: bool = False) -> Outcome:
    kind = "role" if isinstance(desired.entity, Role) else "user"
    message = (
        f"IAM {kind} {desired.aws_name} left in AWS"
        if left
        else f"IAM {kind} {desired.aws_name} deleted"
    )
    return Outcome(
        Verdict(False, Reason.DELETING, message),
        exists=False,
        up_to_date=True,
        applied=tuple(applied),
    )


def renamed_message(desired: Desired, known_arn: str) -> str:
    if not known_arn:
        return ""
    known_name = known_arn.rsplit("/", 1)[-1]
    if known_name == desired.aws_name:
        return ""
    field = "roleName" if isinstance(desired.entity, Role) else "userName"
    return (
        f"spec.{field}: is immutable; this object manages {known_name!r} "
        f"(status.arn {known_arn}), not {desired.aws_name!r}. Create a new object to rename"
    )


def _explain(exc: AWSError) -> str:
    return f"AWS rejected {exc.operation}: {exc.code}: {exc.aws_message}"
