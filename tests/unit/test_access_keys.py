"""spec.accessKey: parsing, and the pure planner of kinds/accesskeys.py, step by step.

Covers: durations and defaults; the rotate annotation; unknown fields and bad Secret names are
InvalidSpec; plan() for every state a crash can leave (an announced creation with and without an
orphan, a rotation half done, a previous key deactivated but not deleted, a record of a key
already gone), scheduled and requested rotation, grace expiry, two hand-made keys (refused, none
deleted), one hand-made key (kept; refuses the rotation that would need its slot), a Secret that
is not ours, a Secret deleted by hand (the status-recorded key is retired after grace, not kept),
and the guard that refuses any call on the Secret's own key; the Secret's data layout; a new
key's repr hides its secret; a user's create plan ends with CreateAccessKey.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.core.errors import SpecError
from controller.kinds import accesskeys, registry
from controller.kinds.accesskeys import AccessKeySpec, AwsKey, NewKey, Record, plan
from tests.helpers import plan as kind_plan
from tests.helpers import user, user_object

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = AccessKeySpec("u-aws-credentials", rotate_after=86400, grace_period=3600)


def key(key_id: str, age: float = 0, active: bool = True) -> AwsKey:
    return AwsKey(key_id, active, T0 - timedelta(seconds=age))


def apis(step: accesskeys.Step) -> list[tuple[str, str]]:
    return [(a.api, a.params.get("AccessKeyId", "")) for a in step.actions]


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("1h", 3600), ("1h30m", 5400), ("45s", 45), ("0", 0), (0, 0),
     ("2d3h4m5s", 2 * 86400 + 3 * 3600 + 4 * 60 + 5)],
)
def test_durations(text: object, seconds: int) -> None:
    errors: list[str] = []
    assert accesskeys.parse_duration(text, "f", errors) == seconds
    assert errors == []


@pytest.mark.parametrize("text", ["", "1y", "h", "10", "-1h", "1.5h", 5, None, "1h 2m"])
def test_bad_durations(text: object) -> None:
    errors: list[str] = []
    assert accesskeys.parse_duration(text, "spec.accessKey.rotateAfter", errors) is None
    assert errors and "spec.accessKey.rotateAfter" in errors[0]


def test_defaults_and_annotation() -> None:
    desired = user("ci", accessKey={})
    assert desired.access_key == AccessKeySpec("ci-aws-credentials", 90 * 86400, 3600, "")
    obj = user_object("ci", accessKey={"secretName": "keys", "rotateAfter": "0", "gracePeriod": "5m"})
    obj["metadata"]["annotations"] = {accesskeys.ROTATE_ANNOTATION: "2026-01-02"}
    spec = registry.parse(obj).access_key
    assert spec == AccessKeySpec("keys", 0, 300, "2026-01-02")
    assert user("ci").access_key is None


@pytest.mark.parametrize(
    ("value", "fragment"),
    [({"secretName": "Not_A_Name"}, "spec.accessKey.secretName"),
     ({"rotateAfter": "soon"}, "spec.accessKey.rotateAfter"),
     ({"gracePeriod": "1w"}, "spec.accessKey.gracePeriod"),
     ({"secret": "x"}, "spec.accessKey.secret: unknown field"),
     ("yes", "spec.accessKey: must be an object")],
)
def test_bad_access_key_is_invalid_spec(value: object, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        user("ci", accessKey=value)
    assert any(fragment in e for e in caught.value.errors), caught.value.errors


def test_create_plan_ends_with_create_access_key_and_no_secret() -> None:
    calls = kind_plan(user("ci", accessKey={}), None)
    assert calls[-1].api == "CreateAccessKey"
    assert dict(calls[-1].params) == {"UserName": "ci"}
    assert "CreateAccessKey" not in [c.api for c in kind_plan(user("ci"), None)]


def test_view_says_the_user_asks_for_keys() -> None:
    desired = user("ci", accessKey={})
    assert registry.of(desired).view(desired).access_keys
    plain = user("ci")
    assert not registry.of(plain).view(plain).access_keys


# --- planning ----------------------------------------------------------------------------


def test_first_key_is_created_when_nothing_exists() -> None:
    step = plan(SPEC, Record(), (), "u", T0)
    assert step.create is not None and step.create.api == "CreateAccessKey"
    assert dict(step.create.params) == {"UserName": "u"}
    assert step.record is not None and step.record.previous == "" and step.record.pending is None
    assert step.record.last_rotation is None


def test_in_sync_is_done_with_the_next_rotation_due() -> None:
    record = Record(exists=True, current="A")
    step = plan(SPEC, record, (key("A", age=100),), "u", T0)
    assert step.done
    assert step.due == T0 - timedelta(seconds=100) + timedelta(days=1)


def test_scheduled_rotation_keeps_the_old_key_for_the_grace_period() -> None:
    record = Record(exists=True, current="A")
    step = plan(SPEC, record, (key("A", age=86400),), "u", T0)
    assert step.create is not None and "scheduled rotation" in step.create.summary
    assert step.record is not None
    assert (step.record.previous, step.record.retire_at, step.record.last_rotation) == (
        "A", T0 + timedelta(hours=1), T0)


def test_rotate_after_zero_never_rotates() -> None:
    spec = AccessKeySpec("s", rotate_after=0)
    step = plan(spec, Record(exists=True, current="A"), (key("A", age=10**9),), "u", T0)
    assert step.done and step.due is None


def test_requested_rotation_once_per_annotation_value() -> None:
    spec = AccessKeySpec("s", rotate_request="r1")
    step = plan(spec, Record(exists=True, current="A"), (key("A"),), "u", T0)
    assert step.create is not None and "rotation requested" in step.create.summary
    assert step.record is not None and step.record.rotate_request == "r1"
    again = plan(spec, Record(exists=True, current="B", rotate_request="r1"), (key("B"),), "u", T0)
    assert again.done


def test_first_key_records_the_annotation_so_it_does_not_rotate_at_once() -> None:
    spec = AccessKeySpec("s", rotate_request="r1")
    step = plan(spec, Record(), (), "u", T0)
    assert step.record is not None and step.record.rotate_request == "r1"


def test_grace_not_over_keeps_both_keys() -> None:
    record = Record(exists=True, current="B", previous="A", retire_at=T0 + timedelta(seconds=1))
    step = plan(SPEC, record, (key("A", 90000), key("B", 10)), "u", T0)
    assert step.done


def test_grace_over_deactivates_then_deletes_the_previous_key() -> None:
    record = Record(exists=True, current="B", previous="A", retire_at=T0)
    step = plan(SPEC, record, (key("A", 90000), key("B", 10)), "u", T0)
    assert apis(step) == [("UpdateAccessKey", "A"), ("DeleteAccessKey", "A")]
    assert step.actions[0].params["Status"] == "Inactive"
    assert step.record is not None and step.record.previous == "" and step.record.retire_at is None


def test_crash_between_deactivate_and_delete_only_deletes() -> None:
    record = Record(exists=True, current="B", previous="A", retire_at=T0)
    step = plan(SPEC, record, (key("A", 90000, active=False), key("B", 10)), "u", T0)
    assert apis(step) == [("DeleteAccessKey", "A")]


def test_crash_after_delete_before_record_forgets_the_previous_key() -> None:
    record = Record(exists=True, current="B", previous="A", retire_at=T0)
    step = plan(SPEC, record, (key("B", 10),), "u", T0)
    assert step.actions == () and step.create is None
    assert step.record == Record(exists=True, current="B")


def test_orphan_of_a_crashed_first_creation_is_deleted_before_a_new_key() -> None:
    record = Record(exists=True, pending=())
    step = plan(SPEC, record, (key("ORPHAN"),), "u", T0)
    assert apis(step) == [("DeleteAccessKey", "ORPHAN")]
    assert step.record is not None and step.record.pending is None
    after = plan(SPEC, step.record, (), "u", T0)
    assert after.create is not None


def test_orphan_of_a_crashed_rotation_is_deleted_and_the_rotation_redone() -> None:
    record = Record(exists=True, current="A", pending=("A",))
    keys = (key("A", 86400), key("ORPHAN", 1))
    step = plan(SPEC, record, keys, "u", T0)
    assert apis(step) == [("DeleteAccessKey", "ORPHAN")]
    assert step.record is not None
    again = plan(SPEC, step.record, (key("A", 86400),), "u", T0)
    assert again.create is not None and again.record is not None and again.record.previous == "A"


def test_announced_creation_that_never_happened_is_cleared() -> None:
    record = Record(exists=True, current="A", pending=("A",))
    step = plan(SPEC, record, (key("A", 10),), "u", T0)
    assert step.actions == () and step.create is None
    assert step.record == Record(exists=True, current="A")


def test_two_hand_made_keys_and_no_secret_refuse_and_delete_nothing() -> None:
    step = plan(SPEC, Record(), (key("H1"), key("H2")), "u", T0)
    assert step.refuse and "H1, H2" in step.refuse and "never deletes" in step.refuse
    assert step.actions == () and step.create is None


def test_hand_made_keys_present_before_an_announcement_are_not_orphans() -> None:
    step = plan(SPEC, Record(exists=True, pending=("H1", "H2")), (key("H1"), key("H2")), "u", T0)
    assert step.refuse and step.actions == ()


def test_one_hand_made_key_is_kept_and_blocks_only_a_rotation() -> None:
    first = plan(SPEC, Record(), (key("H"),), "u", T0)
    assert first.create is not None and first.record is not None and first.record.previous == ""
    due = plan(SPEC, Record(exists=True, current="A"), (key("H"), key("A", 86400)), "u", T0)
    assert due.refuse and "H" in due.refuse and due.actions == ()


def test_a_secret_that_is_not_ours_is_never_written() -> None:
    step = plan(SPEC, Record(exists=True, ours=False), (), "u", T0)
    assert step.refuse and "u-aws-credentials" in step.refuse and step.create is None


def test_secret_deleted_by_hand_replaces_the_recorded_key_with_grace() -> None:
    step = plan(SPEC, Record(), (key("A", 50),), "u", T0, known=frozenset({"A"}))
    assert step.create is not None and "lost" in step.create.summary
    assert step.record is not None and step.record.previous == "A"
    assert step.record.retire_at == T0 + timedelta(hours=1)


def test_secret_key_deleted_in_aws_is_replaced() -> None:
    step = plan(SPEC, Record(exists=True, current="GONE"), (), "u", T0)
    assert step.create is not None and step.record is not None
    assert step.record.previous == "" and step.record.last_rotation == T0


def test_rotation_requested_during_grace_retires_the_previous_key_first() -> None:
    spec = AccessKeySpec("s", grace_period=3600, rotate_request="now")
    record = Record(exists=True, current="B", previous="A", retire_at=T0 + timedelta(minutes=30))
    step = plan(spec, record, (key("A", 100), key("B", 10)), "u", T0)
    assert apis(step) == [("UpdateAccessKey", "A"), ("DeleteAccessKey", "A")]
    assert step.record is not None
    nxt = plan(spec, step.record, (key("B", 10),), "u", T0)
    assert nxt.create is not None and nxt.record is not None and nxt.record.previous == "B"


def test_the_secret_key_is_never_a_target() -> None:
    # Every state above: no step ever names the Secret's current key.
    states = [
        (Record(exists=True, current="A", pending=()), (key("A"), key("X"))),
        (Record(exists=True, current="A", previous="A", retire_at=T0), (key("A"),)),
        (Record(exists=True, current="A"), (key("A", 10**7), key("H"))),
    ]
    for record, keys in states:
        step = plan(SPEC, record, keys, "u", T0)
        assert all(a.params.get("AccessKeyId") != "A" for a in step.actions), step
    with pytest.raises(AssertionError):
        accesskeys.guard(plan(SPEC, Record(exists=True, current="B", previous="A",
                                           retire_at=T0), (key("A"), key("B")), "u", T0).actions, "A")


# --- the Secret and the key ---------------------------------------------------------------


def test_secret_data_layout_and_hidden_repr() -> None:
    new = NewKey("AKIAEXAMPLE", T0, secret="s3cr3t/value")
    data = accesskeys.secret_data(new)
    assert data["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"
    assert data["AWS_SECRET_ACCESS_KEY"] == "s3cr3t/value"
    assert data["credentials"] == (
        "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr3t/value\n")
    assert "s3cr3t" not in repr(new) and "s3cr3t" not in str(new)
    assert "s3cr3t" not in repr(accesskeys.new_key(
        {"AccessKey": {"AccessKeyId": "AKIA1", "SecretAccessKey": "s3cr3t", "CreateDate": T0}}))
