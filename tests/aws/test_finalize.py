"""finalize() against a moto server: deletion leaves nothing behind, and never touches others'.

Covers: a role with attachments, inline policies, instance profile and a hand-attached extra
policy; a user with hand-made access keys, login profile and group membership; Retain releases
the entity; an already-deleted entity is success; entities not owned by the object survive; a
DeleteConflict caused by a concurrent attach is answered by a re-read and re-plan.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.aws.clients import Clients
from controller.core.actions import OWNER_TAG, UID_TAG, Action
from controller.engine.reconcile import finalize, reconcile
from tests.helpers import (
    DYNAMO_READ,
    EC2_TRUST,
    LOGS_POLICY,
    S3_READ,
    read_role,
    read_user,
    role,
    user,
)

pytestmark = pytest.mark.aws


def test_delete_role_with_everything_attached(clients: Clients, iam: Any, unique: Any) -> None:
    desired = role(
        unique("gone"), managedPolicies=[S3_READ], inlinePolicies={"logs": LOGS_POLICY},
        instanceProfile=True,
    )
    reconcile(clients, desired)
    name = desired.aws_name
    iam.attach_role_policy(RoleName=name, PolicyArn=DYNAMO_READ)  # added by hand
    iam.put_role_policy(RoleName=name, PolicyName="by-hand", PolicyDocument=json.dumps(LOGS_POLICY))
    outcome = finalize(clients, desired)
    assert not outcome.exists
    assert read_role(iam, name) is None
    profiles = [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]]
    assert name not in profiles
    assert [a.api for a in outcome.applied] == [
        "RemoveRoleFromInstanceProfile", "DeleteInstanceProfile", "DetachRolePolicy",
        "DetachRolePolicy", "DeleteRolePolicy", "DeleteRolePolicy", "DeleteRole",
    ]


def test_delete_user_with_hand_made_credentials(clients: Clients, iam: Any, unique: Any) -> None:
    group = unique("grp")
    iam.create_group(GroupName=group)
    desired = user(unique("ci"), groups=[group], managedPolicies=[S3_READ])
    reconcile(clients, desired)
    name = desired.aws_name
    key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    iam.create_login_profile(UserName=name, Password="Sup3r-secret-pw!")
    iam.upload_ssh_public_key(UserName=name, SSHPublicKeyBody=SSH_KEY)
    outcome = finalize(clients, desired)
    assert not outcome.exists
    assert read_user(iam, name) is None
    apis = [a.api for a in outcome.applied]
    assert apis == [
        "DeleteLoginProfile", "DeleteAccessKey", "DeleteSSHPublicKey", "RemoveUserFromGroup",
        "DetachUserPolicy", "DeleteUser",
    ]
    assert outcome.applied[1].params == {"UserName": name, "AccessKeyId": key}
    assert iam.get_group(GroupName=group)["Users"] == []


def test_retain_keeps_the_role_and_drops_our_tags(clients: Clients, iam: Any, unique: Any) -> None:
    desired = role(unique("kept"), deletionPolicy="Retain", managedPolicies=[S3_READ], tags={"team": "a"})
    reconcile(clients, desired)
    outcome = finalize(clients, desired)
    assert not outcome.exists
    seen = read_role(iam, desired.aws_name)
    assert seen is not None
    assert seen.managed_policies == {S3_READ}
    assert seen.tags == {"team": "a"}  # nobody's now: a new object must adopt it explicitly


def test_already_deleted_by_hand_is_success(clients: Clients, iam: Any, unique: Any) -> None:
    desired = role(unique("vanished"))
    reconcile(clients, desired)
    iam.delete_role(RoleName=desired.aws_name)
    outcome = finalize(clients, desired)
    assert not outcome.exists and outcome.applied == ()


def test_never_deletes_an_unowned_role(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("notmine")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    outcome = finalize(clients, role(name))
    assert outcome.applied == ()
    assert read_role(iam, name) is not None


def test_never_deletes_a_role_owned_by_another_object(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("theirs")
    reconcile(clients, role(name, namespace="team-a"))
    outcome = finalize(clients, role(name, namespace="team-b", uid="uid-other"))
    assert outcome.applied == ()
    seen = read_role(iam, name)
    assert seen is not None and seen.tags[OWNER_TAG].startswith("team-a/")


def test_delete_conflict_is_replanned(clients: Clients, iam: Any, unique: Any) -> None:
    """A policy attached by someone else while we delete: DeleteRole fails with DeleteConflict
    (moto enforces it for roles), finalize re-reads and removes the newcomer too."""
    desired = role(unique("racing"), managedPolicies=[S3_READ])
    reconcile(clients, desired)
    name = desired.aws_name
    raced = []

    def attach_behind_our_back(action: Action) -> None:
        if action.api == "DetachRolePolicy" and not raced:
            raced.append(action)
            iam.attach_role_policy(RoleName=name, PolicyArn=DYNAMO_READ)

    outcome = finalize(clients, desired, on_applied=attach_behind_our_back)
    assert raced, "the race was staged"
    assert read_role(iam, name) is None
    assert clients.counter.errors[("DeleteRole", "DeleteConflict")] == 1
    assert [a.api for a in outcome.applied].count("DetachRolePolicy") == 2


def test_uid_tag_is_kept_for_the_same_object(clients: Clients, iam: Any, unique: Any) -> None:
    desired = role(unique("uid"))
    reconcile(clients, desired)
    seen = read_role(iam, desired.aws_name)
    assert seen is not None and seen.tags[UID_TAG] == desired.ref.uid


SSH_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDJ1Pp8nZfTe3+8M2rG0yD4p6rr1T0pJmlGZcn3XxlZrJe5Rbr9QqOa"
    "1ZbKZT2fQz9aW2cA0pFJ0Fw1z9a1TfM8bA6S0sbbH6o5lJ0Xo1x3Yf6nP8xG4i7h0pPj1b4LZ0q7jv0sN4nE5u8b2oT"
    "RkHkq6dK8kO3sTtJ5Jx2jQ1dWm0b2tW5xJ0U3f3m3B2QFQ3uN3Bq5Yk1xR8iFQ7pN1zW6v0dX3q5m9c0b3e5c0e9c7E"
    "r3Q8k5h2Yq1cC0P8q1h1l1hEo3t8cJ0b2zWJ5b8v0zG0S8Hq2f3E7O2z9c3c3Pz1b9J9mV7d0o5W1cL5l4W5k1z5y8"
    "f0V4h5vJ3Z3Q3e7M1u1Xq9 user@example"
)


def test_console_made_instance_profile_of_an_adopted_role_is_left(clients: Clients, iam: Any, unique: Any) -> None:
    """The console creates a same-named profile for an EC2 role; after adoption and deletion
    the role leaves it, but the profile itself was never Rolekeeper's and stays."""
    name = unique("console")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    desired = role(name, adopt=True, instanceProfile=True)
    assert reconcile(clients, desired).ready
    outcome = finalize(clients, desired)
    assert [a.api for a in outcome.applied] == ["RemoveRoleFromInstanceProfile", "DeleteRole"]
    assert iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"] == []


def test_turning_instance_profile_off_deletes_only_our_profile(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("ipoff")
    reconcile(clients, role(name, instanceProfile=True))
    outcome = reconcile(clients, role(name, instanceProfile=False))
    assert [a.api for a in outcome.applied] == ["RemoveRoleFromInstanceProfile", "DeleteInstanceProfile"]
    assert name not in {p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]}
