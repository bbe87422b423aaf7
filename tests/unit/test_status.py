"""Rendering `.status` (`controller.status`): what `kubectl get` / `kubectl wait` users see.

Covers:
- the Ready condition: status True/False, the reason string of every Reason, message,
  observedGeneration (top level and in the condition);
- lastTransitionTime: set on the first render, kept while the status does not flip (even when
  reason or message change), moved when it flips either way, UTC with a Z suffix;
- arn and roleId/userId: taken from the verdict, kept from the previous status when a failed
  attempt does not know them;
- message truncation at MAX_MESSAGE characters, with an ellipsis;
- changed(): False for an identical re-render (no heartbeat writes), True when any of our fields
  differ, Kopf's own keys ignored;
- kstatus's Reconciling and Stalled conditions (docs/status.md): which of them every Reason
  raises (written out here, not read from `PROGRESS`), a retrying verdict Reconciling instead of
  Stalled, removal once the object is Current, their own lastTransitionTime, and Ready True
  exactly when neither is (an observe-only object over nothing included).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from controller.core.status import (
    MAX_MESSAGE,
    PROGRESS,
    Progress,
    Reason,
    Verdict,
    changed,
    condition,
    render,
)

ARN = "arn:aws:iam::123456789012:role/apps/team-a-web"
ROLE_ID = "AROAEXAMPLEROLEID0001"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = T0 + timedelta(minutes=10)
SYNCED = Verdict(True, Reason.SYNCED, "IAM role is in sync", ARN, ROLE_ID)
FAILED = Verdict(False, Reason.AWS_ERROR, "AWS rejected PutRolePolicy: LimitExceeded: too big")


def ready(status: dict[str, Any]) -> dict[str, Any]:
    [condition] = [c for c in status["conditions"] if c["type"] == "Ready"]
    return condition


def test_ready_verdict_renders_status_true() -> None:
    assert ready(render(None, SYNCED, 4, "roleId", now=T0))["status"] == "True"


def test_failed_verdict_renders_status_false() -> None:
    assert ready(render(None, FAILED, 4, "roleId", now=T0))["status"] == "False"


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        pytest.param(Reason.SYNCED, "Synced", id="synced"),
        pytest.param(Reason.CREATING, "Creating", id="creating"),
        pytest.param(Reason.UPDATING, "Updating", id="updating"),
        pytest.param(Reason.DRIFTED, "Drifted", id="drifted"),
        pytest.param(Reason.INVALID_SPEC, "InvalidSpec", id="invalid-spec"),
        pytest.param(Reason.CONFLICT, "Conflict", id="conflict"),
        pytest.param(Reason.AWS_ERROR, "AWSError", id="aws-error"),
        pytest.param(Reason.THROTTLED, "Throttled", id="throttled"),
        pytest.param(Reason.DELETING, "Deleting", id="deleting"),
    ],
)
def test_reason_is_written_as_its_plain_string(reason: Reason, text: str) -> None:
    condition = ready(render(None, Verdict(False, reason, "m"), 1, "roleId", now=T0))
    assert type(condition["reason"]) is str
    assert condition["reason"] == text


def test_full_status_of_a_synced_role() -> None:
    assert render(None, SYNCED, 4, "roleId", now=T0) == {
        "arn": ARN,
        "roleId": ROLE_ID,
        "observedGeneration": 4,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Synced",
                "message": "IAM role is in sync",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "observedGeneration": 4,
            }
        ],
    }


def test_id_field_names_the_id_key() -> None:
    verdict = Verdict(True, Reason.SYNCED, "ok", "arn:aws:iam::123456789012:user/ci", "AIDA1")
    status = render(None, verdict, 1, "userId", now=T0)
    assert (status["userId"], "roleId" in status) == ("AIDA1", False)


# --- lastTransitionTime -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(SYNCED, SYNCED, id="true-stays-true"),
        pytest.param(FAILED, FAILED, id="false-stays-false"),
        pytest.param(
            FAILED, Verdict(False, Reason.CONFLICT, "other message"), id="false-other-reason"
        ),
        pytest.param(
            SYNCED, Verdict(True, Reason.SYNCED, "IAM role updated", ARN, ROLE_ID), id="new-message"
        ),
    ],
)
def test_transition_time_is_kept_while_status_does_not_flip(
    first: Verdict, second: Verdict
) -> None:
    previous = render(None, first, 1, "roleId", now=T0)
    again = render(previous, second, 2, "roleId", now=T1)
    assert ready(again)["lastTransitionTime"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(SYNCED, FAILED, id="true-to-false"),
        pytest.param(FAILED, SYNCED, id="false-to-true"),
    ],
)
def test_transition_time_moves_when_status_flips(first: Verdict, second: Verdict) -> None:
    previous = render(None, first, 1, "roleId", now=T0)
    flipped = render(previous, second, 1, "roleId", now=T1)
    assert ready(flipped)["lastTransitionTime"] == "2026-01-02T03:14:05Z"


@pytest.mark.parametrize(
    "previous",
    [
        pytest.param(None, id="no-status"),
        pytest.param({}, id="empty-status"),
        pytest.param(
            {"conditions": [{"type": "Synced", "status": "True", "lastTransitionTime": "x"}]},
            id="other-condition-only",
        ),
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "True"}]}, id="ready-without-time"
        ),
    ],
)
def test_transition_time_is_now_without_a_previous_ready_time(
    previous: dict[str, Any] | None,
) -> None:
    status = render(previous, SYNCED, 1, "roleId", now=T1)
    assert ready(status)["lastTransitionTime"] == "2026-01-02T03:14:05Z"


def test_transition_time_is_written_in_utc() -> None:
    berlin = T0.astimezone(timezone(timedelta(hours=1)))
    status = render(None, SYNCED, 1, "roleId", now=berlin)
    assert ready(status)["lastTransitionTime"] == "2026-01-02T03:04:05Z"


def test_transition_time_defaults_to_the_clock() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = ready(render(None, SYNCED, 1, "roleId"))["lastTransitionTime"]
    after = datetime.now(UTC)
    written = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= written <= after


# --- arn and id ---------------------------------------------------------------------------------


def test_failure_keeps_arn_and_id_from_previous_status() -> None:
    previous = render(None, SYNCED, 1, "roleId", now=T0)
    status = render(previous, FAILED, 2, "roleId", now=T1)
    assert (status["arn"], status["roleId"]) == (ARN, ROLE_ID)


def test_new_arn_and_id_replace_previous_ones() -> None:
    previous = {"arn": "arn:aws:iam::123456789012:role/old", "roleId": "AROAOLD"}
    status = render(previous, SYNCED, 2, "roleId", now=T1)
    assert (status["arn"], status["roleId"]) == (ARN, ROLE_ID)


def test_arn_and_id_are_empty_before_anything_exists() -> None:
    status = render(None, FAILED, 1, "roleId", now=T0)
    assert (status["arn"], status["roleId"]) == ("", "")


def test_observed_generation_is_the_rendered_generation() -> None:
    previous = render(None, SYNCED, 1, "roleId", now=T0)
    status = render(previous, SYNCED, 7, "roleId", now=T1)
    assert (status["observedGeneration"], ready(status)["observedGeneration"]) == (7, 7)


# --- message ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "expected_length"),
    [
        pytest.param(0, 0, id="empty"),
        pytest.param(MAX_MESSAGE, MAX_MESSAGE, id="at-limit"),
        pytest.param(MAX_MESSAGE + 1, MAX_MESSAGE, id="one-over"),
        pytest.param(10 * MAX_MESSAGE, MAX_MESSAGE, id="far-over"),
    ],
)
def test_message_length_is_capped(length: int, expected_length: int) -> None:
    verdict = Verdict(False, Reason.AWS_ERROR, "m" * length)
    assert len(ready(render(None, verdict, 1, "roleId", now=T0))["message"]) == expected_length


def test_truncated_message_ends_with_an_ellipsis() -> None:
    verdict = Verdict(False, Reason.AWS_ERROR, "m" * (MAX_MESSAGE + 1))
    message = ready(render(None, verdict, 1, "roleId", now=T0))["message"]
    assert message == "m" * (MAX_MESSAGE - 1) + "…"


def test_message_at_the_limit_is_unchanged() -> None:
    verdict = Verdict(False, Reason.AWS_ERROR, "m" * MAX_MESSAGE)
    assert ready(render(None, verdict, 1, "roleId", now=T0))["message"] == verdict.message


# --- changed ------------------------------------------------------------------------------------


def test_re_rendering_the_same_verdict_later_changes_nothing() -> None:
    previous = render(None, SYNCED, 3, "roleId", now=T0)
    assert not changed(previous, render(previous, SYNCED, 3, "roleId", now=T1))


@pytest.mark.parametrize(
    "verdict",
    [
        pytest.param(FAILED, id="status-flipped"),
        pytest.param(Verdict(True, Reason.SYNCED, "IAM role updated", ARN, ROLE_ID), id="message"),
        pytest.param(Verdict(True, Reason.SYNCED, "ok", ARN + "2", ROLE_ID), id="arn"),
    ],
)
def test_any_difference_is_a_change(verdict: Verdict) -> None:
    previous = render(None, SYNCED, 3, "roleId", now=T0)
    assert changed(previous, render(previous, verdict, 3, "roleId", now=T1))


def test_new_generation_is_a_change() -> None:
    previous = render(None, SYNCED, 3, "roleId", now=T0)
    assert changed(previous, render(previous, SYNCED, 4, "roleId", now=T1))


@pytest.mark.parametrize("previous", [pytest.param(None, id="none"), pytest.param({}, id="empty")])
def test_first_status_is_a_change(previous: dict[str, Any] | None) -> None:
    assert changed(previous, render(previous, SYNCED, 1, "roleId", now=T0))


def test_kopf_keys_in_previous_status_are_ignored() -> None:
    ours = render(None, SYNCED, 3, "roleId", now=T0)
    previous = {**ours, "kopf": {"progress": {"on_change": {"retries": 1}}}}
    assert not changed(previous, ours)


# --- conditions merged by type -----------------------------------------------------------------


def test_other_condition_types_are_kept_as_they_are() -> None:
    other = {"type": "SecurityFindings", "status": "True", "reason": "Found", "lastTransitionTime": "x"}
    status = render({"conditions": [other]}, SYNCED, 1, "roleId", now=T1)
    assert status["conditions"][0] == other
    assert [c["type"] for c in status["conditions"]] == ["SecurityFindings", "Ready"]


def test_ready_is_replaced_in_place_not_appended() -> None:
    first = render(None, SYNCED, 1, "roleId", now=T0)
    second = render(first, FAILED, 2, "roleId", now=T1)
    assert [c["type"] for c in second["conditions"]] == ["Ready", "Stalled"]
    assert ready(second)["status"] == "False"


# --- kstatus: Reconciling and Stalled -----------------------------------------------------------

# Which abnormal-true condition each reason raises (None: neither; the object is Current).
ABNORMAL = {
    Reason.SYNCED: None,
    Reason.OBSERVED: None,
    Reason.NOT_FOUND: None,
    Reason.CREATING: "Reconciling",
    Reason.UPDATING: "Reconciling",
    Reason.DRIFTED: "Reconciling",
    Reason.THROTTLED: "Reconciling",
    Reason.DEPENDENCY_NOT_READY: "Reconciling",
    Reason.DELETING: "Reconciling",
    Reason.AWS_ERROR: "Stalled",
    Reason.INVALID_SPEC: "Stalled",
    Reason.CONFLICT: "Stalled",
    Reason.GUARDRAIL_VIOLATION: "Stalled",
}


def kstatus_conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"] if c["type"] in ("Reconciling", "Stalled")}


def test_every_reason_has_a_progress() -> None:
    assert set(ABNORMAL) == set(Reason) == set(PROGRESS)


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_each_reason_raises_its_abnormal_condition_only(reason: Reason) -> None:
    verdict = Verdict(reason in (Reason.SYNCED, Reason.OBSERVED), reason, "why it is so")
    status = render(None, verdict, 3, "roleId", now=T0)
    expected = ABNORMAL[reason]
    found = kstatus_conditions(status)
    assert list(found) == ([] if expected is None else [expected])
    if expected is not None:
        assert found[expected] == {
            "type": expected,
            "status": "True",
            "reason": str(reason),
            "message": "why it is so",
            "observedGeneration": 3,
            "lastTransitionTime": "2026-01-02T03:04:05Z",
        }
    assert ready(status)["status"] == ("True" if expected is None else "False")


def test_an_observe_only_object_over_nothing_is_ready() -> None:
    # kstatus reads Ready=False as InProgress: an observe-only object would never be Current.
    status = render(None, Verdict(False, Reason.NOT_FOUND, "role x does not exist"), 1, "roleId")
    assert (ready(status)["status"], ready(status)["reason"]) == ("True", "NotFound")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        pytest.param(Reason.AWS_ERROR, Progress.IN_PROGRESS, id="aws-error-retried"),
        pytest.param(Reason.CONFLICT, Progress.IN_PROGRESS, id="conflict-retried"),
        pytest.param(Reason.THROTTLED, Progress.IN_PROGRESS, id="throttled-stays"),
        pytest.param(Reason.SYNCED, Progress.CURRENT, id="synced-stays"),
    ],
)
def test_a_retrying_verdict_is_in_progress_never_failed(reason: Reason, expected: Progress) -> None:
    verdict = Verdict(False, reason, "AWS is temporarily failing, will retry", retrying=True)
    assert verdict.progress is expected


def test_a_transient_aws_error_is_reconciling_a_terminal_one_stalled() -> None:
    transient = Verdict(False, Reason.AWS_ERROR, "ServiceFailure", retrying=True)
    terminal = Verdict(False, Reason.AWS_ERROR, "LimitExceeded")
    assert list(kstatus_conditions(render(None, transient, 1, "roleId"))) == ["Reconciling"]
    assert list(kstatus_conditions(render(None, terminal, 1, "roleId"))) == ["Stalled"]


@pytest.mark.parametrize(
    ("first", "then", "left"),
    [
        pytest.param(FAILED, SYNCED, [], id="stalled-to-current"),
        pytest.param(Verdict(False, Reason.CREATING, "m"), SYNCED, [], id="reconciling-to-current"),
        pytest.param(Verdict(False, Reason.CREATING, "m"), FAILED, ["Stalled"], id="to-stalled"),
        pytest.param(FAILED, Verdict(False, Reason.THROTTLED, "m"), ["Reconciling"], id="to-retry"),
    ],
)
def test_a_condition_no_longer_true_is_removed(
    first: Verdict, then: Verdict, left: list[str]
) -> None:
    previous = render(None, first, 1, "roleId", now=T0)
    status = render(previous, then, 1, "roleId", now=T1)
    assert list(kstatus_conditions(status)) == left


def test_stalled_keeps_its_transition_time_while_stalled_for_another_reason() -> None:
    previous = render(None, FAILED, 1, "roleId", now=T0)
    status = render(previous, Verdict(False, Reason.CONFLICT, "taken"), 2, "roleId", now=T1)
    stalled = condition(status, "Stalled")
    assert stalled is not None
    assert (stalled["reason"], stalled["message"]) == ("Conflict", "taken")
    assert (stalled["lastTransitionTime"], stalled["observedGeneration"]) == (
        "2026-01-02T03:04:05Z",
        2,
    )


def test_a_stalled_status_re_rendered_changes_nothing() -> None:
    previous = render(None, FAILED, 3, "roleId", now=T0)
    assert not changed(previous, render(previous, FAILED, 3, "roleId", now=T1))


def test_abnormal_condition_message_is_capped_like_ready() -> None:
    status = render(None, Verdict(False, Reason.AWS_ERROR, "m" * (2 * MAX_MESSAGE)), 1, "roleId")
    stalled = condition(status, "Stalled")
    assert stalled is not None and stalled["message"] == ready(status)["message"]
    assert len(stalled["message"]) == MAX_MESSAGE


def test_other_conditions_survive_the_abnormal_ones_coming_and_going() -> None:
    guard = {"type": "GuardrailViolation", "status": "False", "reason": "Compliant"}
    previous = render({"conditions": [guard]}, FAILED, 1, "roleId", now=T0)
    status = render(previous, SYNCED, 1, "roleId", now=T1)
    assert [c["type"] for c in status["conditions"]] == ["GuardrailViolation", "Ready"]
