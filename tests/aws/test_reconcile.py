"""reconcile() against a moto server over HTTP.

Covers: create with every field; a second run makes zero writes; each kind of out-of-band drift
is reverted with exactly the minimal calls; a semantically equal hand-written document causes no
update; ownership (refuse unowned, adopt, conflict); terminal AWS errors reach the outcome with
AWS's message; a snapshot hint that matches costs no call; renamed spec refused.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.aws.clients import Clients
from controller.core.actions import OWNER_TAG, UID_TAG
from controller.core.status import Reason
from controller.engine.reconcile import reconcile
from tests.helpers import (
    BOUNDARY,
    DYNAMO_READ,
    EC2_TRUST,
    LOGS_POLICY,
    S3_READ,
    read_role,
    role,
    user,
)

pytestmark = pytest.mark.aws


def writes(clients: Clients) -> dict[str, int]:
    return {op: n for op, n in clients.counter.snapshot().items() if not op.startswith(("Get", "List"))}


def full_role(name: str, **overrides: Any) -> Any:
    spec: dict[str, Any] = {
        "path": "/apps/",
        "description": "Web tier instances",
        "maxSessionDuration": 7200,
        "managedPolicies": [S3_READ, DYNAMO_READ],
        "inlinePolicies": {"write-logs": LOGS_POLICY},
        "permissionsBoundary": BOUNDARY,
        "tags": {"team": "a", "env": "prod"},
        "instanceProfile": True,
    }
    spec.update(overrides)
    return role(name, **spec)


def test_create_with_every_field(clients: Clients, unique: Any) -> None:
    desired = full_role(unique("web"))
    outcome = reconcile(clients, desired)
    assert outcome.ready and outcome.verdict.reason is Reason.SYNCED
    seen = read_role(clients.iam, desired.aws_name)
    assert seen is not None
    assert outcome.verdict.arn == seen.arn == f"arn:aws:iam::123456789012:role/apps/{desired.aws_name}"
    assert outcome.verdict.entity_id == seen.role_id
    assert seen.path == "/apps/"
    assert seen.description == "Web tier instances"
    assert seen.max_session_duration == 7200
    assert seen.managed_policies == {S3_READ, DYNAMO_READ}
    assert set(seen.inline_policies) == {"write-logs"}
    assert seen.permissions_boundary == BOUNDARY
    assert seen.tags == {"team": "a", "env": "prod", OWNER_TAG: "team-a/" + desired.ref.name, UID_TAG: "uid-1"}
    assert seen.instance_profiles == {desired.aws_name}
    assert writes(clients) == {
        "CreateRole": 1, "AttachRolePolicy": 2, "PutRolePolicy": 1,
        "CreateInstanceProfile": 1, "AddRoleToInstanceProfile": 1,
    }


def test_second_run_makes_only_reads(clients: Clients, unique: Any) -> None:
    desired = full_role(unique("idem"))
    reconcile(clients, desired)
    before = clients.counter.snapshot()
    outcome = reconcile(clients, desired)
    after = clients.counter.snapshot()
    delta = {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)}
    assert outcome.ready and not outcome.applied
    # The documented read cost of an in-sync role: 4 calls + 1 per inline policy.
    assert delta == {
        "GetRole": 1, "ListAttachedRolePolicies": 1, "ListRolePolicies": 1, "GetRolePolicy": 1,
        "ListInstanceProfilesForRole": 1,
    }


def drift_trust(iam: Any, name: str) -> None:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "sts:AssumeRole"}]}
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))


ROLE_DRIFTS = {
    "trust-edited": (drift_trust, {"UpdateAssumeRolePolicy": 1}),
    "policy-attached": (lambda iam, n: iam.attach_role_policy(RoleName=n, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess"), {"DetachRolePolicy": 1}),
    "policy-detached": (lambda iam, n: iam.detach_role_policy(RoleName=n, PolicyArn=S3_READ), {"AttachRolePolicy": 1}),
    "inline-edited": (lambda iam, n: iam.put_role_policy(RoleName=n, PolicyName="write-logs", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})), {"PutRolePolicy": 1}),
    "inline-added": (lambda iam, n: iam.put_role_policy(RoleName=n, PolicyName="backdoor", PolicyDocument=json.dumps(LOGS_POLICY)), {"DeleteRolePolicy": 1}),
    "inline-deleted": (lambda iam, n: iam.delete_role_policy(RoleName=n, PolicyName="write-logs"), {"PutRolePolicy": 1}),
    "boundary-removed": (lambda iam, n: iam.delete_role_permissions_boundary(RoleName=n), {"PutRolePermissionsBoundary": 1}),
    "tag-edited": (lambda iam, n: iam.tag_role(RoleName=n, Tags=[{"Key": "team", "Value": "b"}]), {"TagRole": 1}),
    "tag-added": (lambda iam, n: iam.tag_role(RoleName=n, Tags=[{"Key": "extra", "Value": "x"}]), {"UntagRole": 1}),
    "tag-removed": (lambda iam, n: iam.untag_role(RoleName=n, TagKeys=["env"]), {"TagRole": 1}),
    "description-changed": (lambda iam, n: iam.update_role(RoleName=n, Description="hacked"), {"UpdateRole": 1}),
    "max-session-changed": (lambda iam, n: iam.update_role(RoleName=n, MaxSessionDuration=43200), {"UpdateRole": 1}),
    "removed-from-profile": (lambda iam, n: iam.remove_role_from_instance_profile(RoleName=n, InstanceProfileName=n), {"CreateInstanceProfile": 1, "AddRoleToInstanceProfile": 1}),
}


@pytest.mark.parametrize("drift", ROLE_DRIFTS, ids=list(ROLE_DRIFTS))
def test_role_drift_reverted_with_minimal_calls(clients: Clients, iam: Any, unique: Any, drift: str) -> None:
    desired = full_role(unique("drift"))
    reconcile(clients, desired)
    make_drift, expected_calls = ROLE_DRIFTS[drift]
    make_drift(iam, desired.aws_name)
    before = writes(clients)
    outcome = reconcile(clients, desired)
    after = writes(clients)
    assert outcome.ready and outcome.drift
    assert {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)} == expected_calls
    again = reconcile(clients, desired)
    assert not again.applied, "after the fix the role is in sync"


USER_DRIFTS = {
    "removed-from-group": (lambda iam, n, g: iam.remove_user_from_group(UserName=n, GroupName=g), {"AddUserToGroup": 1}),
    "added-to-group": (lambda iam, n, g: iam.add_user_to_group(UserName=n, GroupName=g + "-other"), {"RemoveUserFromGroup": 1}),
    "policy-attached": (lambda iam, n, g: iam.attach_user_policy(UserName=n, PolicyArn=DYNAMO_READ), {"DetachUserPolicy": 1}),
    "inline-added": (lambda iam, n, g: iam.put_user_policy(UserName=n, PolicyName="p", PolicyDocument=json.dumps(LOGS_POLICY)), {"DeleteUserPolicy": 1}),
}


@pytest.mark.parametrize("drift", USER_DRIFTS, ids=list(USER_DRIFTS))
def test_user_drift_reverted_with_minimal_calls(clients: Clients, iam: Any, unique: Any, drift: str) -> None:
    group = unique("deployers")
    iam.create_group(GroupName=group)
    iam.create_group(GroupName=group + "-other")
    desired = user(unique("ci"), groups=[group], managedPolicies=[S3_READ], tags={"team": "a"})
    assert reconcile(clients, desired).ready
    make_drift, expected_calls = USER_DRIFTS[drift]
    make_drift(iam, desired.aws_name, group)
    before = writes(clients)
    outcome = reconcile(clients, desired)
    after = writes(clients)
    assert outcome.ready
    assert {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)} == expected_calls


def test_semantically_equal_hand_written_trust_is_left_alone(clients: Clients, iam: Any, unique: Any) -> None:
    desired = role(unique("same"), assumeRolePolicy={
        "Statement": {"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": ["sts:AssumeRole"]},
    })
    reconcile(clients, desired)
    same_meaning = {"Version": "2012-10-17", "Statement": [{"Action": "sts:AssumeRole", "Principal": {"AWS": ["arn:aws:iam::123456789012:root"]}, "Effect": "Allow"}]}
    iam.update_assume_role_policy(RoleName=desired.aws_name, PolicyDocument=json.dumps(same_meaning, indent=4))
    before = writes(clients)
    outcome = reconcile(clients, desired)
    assert outcome.ready and not outcome.applied
    assert writes(clients) == before


def test_existing_unowned_role_is_refused_without_adopt(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("handmade")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST), Description="keep me")
    iam.attach_role_policy(RoleName=name, PolicyArn=DYNAMO_READ)
    outcome = reconcile(clients, role(name, managedPolicies=[S3_READ]))
    assert not outcome.ready and outcome.verdict.reason is Reason.CONFLICT
    assert "adopt" in outcome.verdict.message
    assert writes(clients) == {}
    seen = read_role(iam, name)
    assert seen is not None and seen.managed_policies == {DYNAMO_READ} and seen.description == "keep me"


def test_adopt_takes_over_and_tags(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("adopted")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.attach_role_policy(RoleName=name, PolicyArn=DYNAMO_READ)
    outcome = reconcile(clients, role(name, managedPolicies=[S3_READ], adopt=True))
    assert outcome.ready
    seen = read_role(iam, name)
    assert seen is not None and seen.managed_policies == {S3_READ}
    assert seen.tags[OWNER_TAG].startswith("team-a/")


def test_second_object_claiming_the_name_is_a_conflict(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("shared")
    assert reconcile(clients, role(name, namespace="team-a")).ready
    before = writes(clients)
    outcome = reconcile(clients, role(name, namespace="team-b", uid="uid-2", managedPolicies=[S3_READ]))
    assert outcome.verdict.reason is Reason.CONFLICT
    assert "already managed by team-a/" in outcome.verdict.message
    assert writes(clients) == before
    seen = read_role(iam, name)
    assert seen is not None and seen.managed_policies == frozenset()


@pytest.mark.parametrize(
    ("spec", "code", "fragment"),
    [
        ({"inlinePolicies": {"bad": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3"}]}}}, "MalformedPolicyDocument", "arn:aws:s3"),
    ],
    ids=["malformed-resource"],
)
def test_terminal_error_reports_aws_message(clients: Clients, unique: Any, spec: dict[str, Any], code: str, fragment: str) -> None:
    outcome = reconcile(clients, role(unique("bad"), **spec))
    assert not outcome.ready
    assert outcome.verdict.reason is Reason.AWS_ERROR
    assert code in outcome.verdict.message and fragment in outcome.verdict.message
    assert outcome.exists  # the role itself was created before the failing call


def test_snapshot_hint_in_sync_costs_no_call(clients: Clients, unique: Any) -> None:
    desired = full_role(unique("hint"))
    reconcile(clients, desired)
    hint = read_role(clients.iam, desired.aws_name)
    before = clients.counter.total()
    outcome = reconcile(clients, desired, observed=hint)
    assert outcome.ready and clients.counter.total() == before


def test_stale_snapshot_hint_is_reread_before_writing(clients: Clients, iam: Any, unique: Any) -> None:
    desired = full_role(unique("stale"))
    reconcile(clients, desired)
    hint = read_role(clients.iam, desired.aws_name)
    assert hint is not None
    iam.detach_role_policy(RoleName=desired.aws_name, PolicyArn=S3_READ)
    # The hint (taken before the edit) looks in sync, so nothing happens until the next sweep —
    # but a hint that differs is never trusted for writing:
    stale = type(hint)(**{**vars(hint), "managed_policies": frozenset()})
    before = writes(clients)
    outcome = reconcile(clients, desired, observed=stale)
    assert outcome.ready
    assert {op: n - before.get(op, 0) for op, n in writes(clients).items() if n != before.get(op, 0)} == {"AttachRolePolicy": 1}


def test_renamed_spec_is_refused(clients: Clients, unique: Any) -> None:
    desired = role(unique("renamed"))
    outcome = reconcile(clients, desired, known_arn="arn:aws:iam::123456789012:role/old-name")
    assert outcome.verdict.reason is Reason.INVALID_SPEC
    assert "immutable" in outcome.verdict.message
    assert clients.counter.total() == 0


def test_likely_absent_create_skips_the_read(clients: Clients, unique: Any) -> None:
    desired = full_role(unique("fast"))
    outcome = reconcile(clients, desired, likely_absent=True)
    assert outcome.ready and outcome.verdict.arn
    calls = clients.counter.snapshot()
    assert "GetRole" not in calls
    # CreateRole, 2 attaches, 1 put, profile create + add; and first the 3 policies it
    # references (2 managed, 1 boundary) are looked up: nothing is created half-made.
    assert calls.pop("GetPolicy") == 3
    assert sum(calls.values()) == 6


def test_likely_absent_on_an_unowned_name_still_refuses(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("taken")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST), Description="keep")
    outcome = reconcile(clients, role(name, managedPolicies=[S3_READ]), likely_absent=True)
    assert outcome.verdict.reason is Reason.CONFLICT
    assert writes(clients) == {"CreateRole": 1}  # refused by AWS itself: nothing was changed
    assert clients.counter.errors[("CreateRole", "EntityAlreadyExists")] == 1
    seen = read_role(iam, name)
    assert seen is not None and seen.managed_policies == frozenset() and seen.description == "keep"


def test_likely_absent_after_a_crash_converges_an_owned_role(clients: Clients, iam: Any, unique: Any) -> None:
    """The operator died after CreateRole, before status recorded the ARN."""
    desired = full_role(unique("crashed"))
    reconcile(clients, role(desired.aws_name, path="/apps/"))  # created, then "crashed"
    outcome = reconcile(clients, desired, likely_absent=True)
    assert outcome.ready
    seen = read_role(iam, desired.aws_name)
    assert seen is not None and seen.managed_policies == {S3_READ, DYNAMO_READ}


@pytest.mark.parametrize("likely_absent", [True, False], ids=["read-free-create", "read-first"])
@pytest.mark.parametrize(
    ("spec", "missing"),
    [
        ({"managedPolicies": ["arn:aws:iam::aws:policy/DoesNotExist"]}, "policy arn:aws:iam::aws:policy/DoesNotExist"),
        ({"permissionsBoundary": "arn:aws:iam::123456789012:policy/no-boundary"}, "policy arn:aws:iam::123456789012:policy/no-boundary"),
    ],
    ids=["managed-policy", "boundary"],
)
def test_a_missing_reference_creates_nothing(
    clients: Clients, iam: Any, unique: Any, likely_absent: bool, spec: dict[str, Any], missing: str
) -> None:
    desired = role(unique("missing"), **spec)
    outcome = reconcile(clients, desired, likely_absent=likely_absent)
    assert outcome.verdict.reason is Reason.DEPENDENCY_NOT_READY
    assert f"{missing} does not exist" in outcome.verdict.message
    assert not outcome.exists and writes(clients) == {}
    assert read_role(iam, desired.aws_name) is None


def test_a_missing_group_adds_the_user_to_nothing(clients: Clients, iam: Any, unique: Any) -> None:
    desired = user(unique("grouped"), groups=["no-such-group"])
    outcome = reconcile(clients, desired)
    assert outcome.verdict.reason is Reason.DEPENDENCY_NOT_READY
    assert "group no-such-group does not exist" in outcome.verdict.message
    assert writes(clients) == {}


@pytest.mark.parametrize("likely_absent", [True, False], ids=["read-free-create", "read-first"])
def test_create_that_fails_partway_reports_the_arn_it_made(
    clients: Clients, iam: Any, unique: Any, likely_absent: bool
) -> None:
    # Someone else's instance profile holds the name: the role is made, then the profile step
    # is refused (Rolekeeper never fills a profile it did not create).
    name = unique("partial")
    iam.create_instance_profile(InstanceProfileName=name)
    desired = role(name, instanceProfile=True)
    outcome = reconcile(clients, desired, likely_absent=likely_absent)
    assert outcome.verdict.reason is Reason.AWS_ERROR and "not created by Rolekeeper" in outcome.verdict.message
    assert outcome.exists
    assert outcome.verdict.arn.endswith(f":role/{desired.aws_name}")
    assert outcome.verdict.entity_id.startswith("AROA")
