"""Pure status rendering: a verdict (ready, reason, message) to the `.status` of a custom resource.

Kubernetes convention (metav1.Condition): `lastTransitionTime` moves only when the condition's
status flips, so that a status rewritten with the same meaning is byte-for-byte the same and the
handler can skip the write entirely (no heartbeat writes, no watch-event storms).

Every reason is also one of kstatus's statuses (`PROGRESS`, the contract in docs/status.md):
`Reconciling` (True while the operator is still getting there by itself) and `Stalled` (True
while it cannot until someone acts) follow kstatus's abnormal-true convention, so Flux, kpt and
Argo CD (integrations/argocd) tell a failure from progress.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Reason(enum.StrEnum):
    """The fixed set of reasons on the Ready condition; dashboards and alerts key on these."""

    SYNCED = "Synced"
    CREATING = "Creating"
    UPDATING = "Updating"
    DRIFTED = "Drifted"
    INVALID_SPEC = "InvalidSpec"
    CONFLICT = "Conflict"
    AWS_ERROR = "AWSError"
    THROTTLED = "Throttled"
    GUARDRAIL_VIOLATION = "GuardrailViolation"
    OBSERVED = "Observed"  # managementPolicy: Observe, and the entity exists
    NOT_FOUND = "NotFound"  # managementPolicy: Observe, and there is nothing to observe
    DEPENDENCY_NOT_READY = "DependencyNotReady"
    DELETING = "Deleting"


class Progress(enum.StrEnum):
    """Where an object stands for GitOps tools: kstatus's statuses (Terminating comes from
    metadata.deletionTimestamp, never from a reason)."""

    CURRENT = "Current"  # done as asked: Ready=True, neither Reconciling nor Stalled
    IN_PROGRESS = "InProgress"  # the operator gets there by itself: Reconciling=True
    FAILED = "Failed"  # nothing changes until a person acts: Stalled=True


# The one table behind docs/status.md. Failed means no retry but the drift interval's, which
# only succeeds once the spec, a guardrail, another owner or the account changes.
PROGRESS: Mapping[Reason, Progress] = {
    Reason.SYNCED: Progress.CURRENT,
    Reason.OBSERVED: Progress.CURRENT,  # observe-only: observing is all it was asked to do
    Reason.NOT_FOUND: Progress.CURRENT,  # observe-only, nothing to observe (Synced=False says so)
    Reason.CREATING: Progress.IN_PROGRESS,  # waiting out IAM's eventual consistency
    Reason.UPDATING: Progress.IN_PROGRESS,
    Reason.DRIFTED: Progress.IN_PROGRESS,  # the operator puts AWS back
    Reason.THROTTLED: Progress.IN_PROGRESS,  # retried with backoff
    Reason.DEPENDENCY_NOT_READY: Progress.IN_PROGRESS,  # a referenced object may still come
    Reason.DELETING: Progress.IN_PROGRESS,  # a transient delete failure, retried
    Reason.AWS_ERROR: Progress.FAILED,  # terminal; a transient one is a Verdict with retrying
    Reason.INVALID_SPEC: Progress.FAILED,
    Reason.CONFLICT: Progress.FAILED,
    Reason.GUARDRAIL_VIOLATION: Progress.FAILED,
}
RECONCILING = "Reconciling"
STALLED = "Stalled"


@dataclass(frozen=True)
class Verdict:
    """What a reconcile attempt concluded, before it is rendered as a condition."""

    ready: bool
    reason: Reason
    message: str
    arn: str = ""
    entity_id: str = ""
    # Further status fields the kind reports (an IAMPolicy's defaultVersionId, ...).
    fields: Mapping[str, Any] = field(default_factory=dict)
    # The operator tries again by itself soon (a transient AWS error, backoff): the object is
    # Reconciling, not Stalled, whatever PROGRESS says of its reason.
    retrying: bool = False

    @property
    def progress(self) -> Progress:
        found = PROGRESS[self.reason]
        if found is Progress.FAILED and self.retrying:
            return Progress.IN_PROGRESS
        return found


def render(
    previous: Mapping[str, Any] | None,
    verdict: Verdict,
    generation: int,
    id_field: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The full status our fields should have: Ready, Reconciling and Stalled from `verdict`.

    Ready is True exactly when the verdict's progress is Current (so an observe-only object
    over nothing is Ready: kstatus reads Ready=False as InProgress). Reconciling or Stalled is
    present, True, with the verdict's reason and message, while the object is InProgress or
    Failed, and removed otherwise (kstatus: absent means normal). `id_field` is `roleId` or
    `userId`. ARN and id survive a failed attempt (an error on update does not make the role's
    ARN unknown). Conditions of other types are kept as they are.
    """
    previous = previous or {}
    progress = verdict.progress
    reason, message = str(verdict.reason), _truncate(verdict.message)
    ready = {
        "type": "Ready",
        "status": "True" if progress is Progress.CURRENT else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }
    conditions = set_condition(previous.get("conditions"), ready, now)
    for type_, state in ((RECONCILING, Progress.IN_PROGRESS), (STALLED, Progress.FAILED)):
        if progress is state:
            abnormal = {"type": type_, "status": "True", "reason": reason, "message": message,
                        "observedGeneration": generation}  # fmt: skip
            conditions = set_condition(conditions, abnormal, now)
        else:
            conditions = [c for c in conditions if c.get("type") != type_]
    return {
        "arn": verdict.arn or previous.get("arn", ""),
        id_field: verdict.entity_id or previous.get(id_field, ""),
        **verdict.fields,
        "observedGeneration": generation,
        "conditions": conditions,
    }


def set_condition(
    conditions: Any, new: Mapping[str, Any], now: datetime | None = None
) -> list[dict[str, Any]]:
    """`conditions` with the one of `new`'s type replaced (or appended), merged by type as
    metav1.Condition lists are; its lastTransitionTime moves only when its status flips."""
    kept = [dict(c) for c in conditions or () if isinstance(c, Mapping)]
    old = next((c for c in kept if c.get("type") == new["type"]), None)
    if old is not None and old.get("status") == new["status"] and old.get("lastTransitionTime"):
        transition = str(old["lastTransitionTime"])
    else:
        transition = _timestamp(now)
    merged = {**new, "lastTransitionTime": transition}
    if old is None:
        return [*kept, merged]
    return [merged if c is old else c for c in kept]


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The condition of `type_` in a status, if any."""
    for found in status.get("conditions") or ():
        if isinstance(found, Mapping) and found.get("type") == type_:
            return found
    return None


def changed(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing `new` would change any field we own (Kopf's own keys are ignored)."""
    previous = previous or {}
    return any(previous.get(key) != value for key, value in new.items())


def _timestamp(now: datetime | None) -> str:
    moment = now or datetime.now(UTC)
    if moment.tzinfo is not None:  # the Z suffix promises UTC: convert, do not mislabel
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


MAX_MESSAGE = 1024  # keep AWS's message readable in `kubectl describe` and within object limits


def _truncate(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


SECURITY_FINDINGS = "SecurityFindings"
_SEVERITIES = ("critical", "high", "medium", "low", "info")  # core.findings.Severity, worst first


def with_findings(
    new: Mapping[str, Any],
    findings: list[dict[str, Any]],
    generation: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`new` (a rendered status) plus `findings` (`Finding.to_json()` items, suppressed ones
    marked) and the SecurityFindings condition, which never touches Ready.

    The condition is True while any unsuppressed finding is present (reason FindingsPresent),
    else False (NoFindings); its message counts them by severity, so it is stable while the
    findings are, and a status with the same findings is written once.
    """
    active = [f for f in findings if not f.get("suppressed")]
    counts = {s: sum(f.get("severity") == s for f in active) for s in _SEVERITIES}
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    suppressed = len(findings) - len(active)
    tail = f"; {suppressed} suppressed" if suppressed else ""
    message = (
        f"{len(active)} unsuppressed security finding(s): {shown}{tail} (see status.findings)"
        if active
        else f"no unsuppressed security findings{tail}"
    )
    condition = {
        "type": SECURITY_FINDINGS,
        "status": "True" if active else "False",
        "reason": "FindingsPresent" if active else "NoFindings",
        "message": _truncate(message),
        "observedGeneration": generation,
    }
    return {
        **new,
        "findings": findings,
        "conditions": set_condition(new.get("conditions"), condition, now),
    }


def unsuppressed_ids(current: Mapping[str, Any]) -> frozenset[str]:
    """The ids of the unsuppressed findings a status records (empty when it records none)."""
    found = current.get("findings")
    return frozenset(
        str(f.get("id"))
        for f in (found if isinstance(found, list) else ())
        if isinstance(f, Mapping) and not f.get("suppressed")
    )
