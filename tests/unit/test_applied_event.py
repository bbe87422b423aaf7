"""One Event per reconcile: `handlers.applied_message` names every call within an Event's
readable length, and says how many more there were when they do not all fit."""

from __future__ import annotations

from controller.core.actions import act
from controller.core.status import MAX_MESSAGE
from controller.operator.handlers import applied_message


def test_every_call_is_named_with_its_api() -> None:
    calls = [act("CreateRole", "Created role web", RoleName="web"),
             act("AttachRolePolicy", "Attached arn:aws:iam::aws:policy/ReadOnlyAccess", RoleName="web")]
    assert applied_message(calls) == (
        "Created role web (CreateRole); Attached arn:aws:iam::aws:policy/ReadOnlyAccess "
        "(AttachRolePolicy)"
    )


def test_many_calls_stay_within_the_limit_and_say_how_many_more() -> None:
    calls = [act("PutRolePolicy", f"Put inline policy {'p' * 60}{i}", RoleName="web") for i in range(40)]
    message = applied_message(calls)
    assert len(message) <= MAX_MESSAGE
    shown = message.count("(PutRolePolicy)")
    assert 0 < shown < 40
    assert message.endswith(f"; and {40 - shown} more")


def test_a_single_enormous_summary_becomes_a_count() -> None:
    calls = [act("PutRolePolicy", "x" * (MAX_MESSAGE * 2), RoleName="web")]
    assert applied_message(calls) == "1 AWS calls"
