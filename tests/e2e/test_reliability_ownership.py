"""Reliability of ownership: what Rolekeeper did not create it never changes, and it loses nothing.

Covers:
- hand-made roles and users (and a hand-made instance profile) with the names objects ask for,
  without `adopt`: Ready=False/Conflict, not one write naming them except the CreateRole /
  CreateUser that AWS refuses (the name is taken) — while drift sweeps run every few seconds and
  after the objects are deleted — and their full state unchanged;
- deleting an object whose role or user was already deleted by hand completes, with the
  operator running and with the operator down at the time;
- changing roleName / userName / path is refused at `kubectl apply` and `kubectl patch`
  (CRD rules), the old role keeps existing and stays managed, no new role appears; restating the
  defaulted name explicitly is not a change. The operator-side guard for a spec that bypassed
  the rule is tests/aws/test_reconcile.py::test_renamed_spec_is_refused.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest

from tests.e2e import reliability as rl
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.util import until
from tests.helpers import EC2_TRUST, S3_READ

pytestmark = pytest.mark.e2e

DRIFT = 3.0
INLINE = rl.statement("s3:ListBucket")


def hand_made(iam: Any, prefix: str) -> dict[str, str]:
    """A role, a user, and a role with its instance profile, made as a human would: no tags of
    ours, some permissions; plus an empty instance profile named like a role an object wants."""
    names = {k: f"{prefix}-{k}" for k in ("role", "user", "ec2", "profile-only")}
    tags = [{"Key": "team", "Value": "platform"}]
    for key in ("role", "ec2"):
        iam.create_role(RoleName=names[key], AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
                        Description="made by hand", Tags=tags)
        iam.attach_role_policy(RoleName=names[key], PolicyArn=S3_READ)
        iam.put_role_policy(RoleName=names[key], PolicyName="hand", PolicyDocument=json.dumps(INLINE))
    iam.create_instance_profile(InstanceProfileName=names["ec2"], Tags=tags)
    iam.add_role_to_instance_profile(InstanceProfileName=names["ec2"], RoleName=names["ec2"])
    iam.create_instance_profile(InstanceProfileName=names["profile-only"], Tags=tags)
    iam.create_user(UserName=names["user"], Tags=tags)
    iam.attach_user_policy(UserName=names["user"], PolicyArn=S3_READ)
    return names


def test_hand_made_entities_are_never_touched(crds: Cluster, namespace: str, aws: Aws) -> None:
    iam = aws.console()
    prefix = f"rk-own-{secrets.token_hex(3)}"
    names = hand_made(iam, prefix)
    claims = [
        rl.role_object("claims-role", names["role"], 1),
        rl.role_object("claims-ec2", names["ec2"], 1, instanceProfile=True),
        rl.user_object("claims-user", names["user"], 1),
    ]
    # An object that creates its role freely but meets a hand-made profile of the same name.
    profile_claim = rl.role_object("claims-profile", names["profile-only"], 1, instanceProfile=True)
    hand_made_names = {names["role"], names["ec2"], names["user"]}
    proxy = rl.RecordingProxy.for_server(aws.server)
    before = rl.account_state(iam, prefix)
    try:
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace, drift_interval=DRIFT):
            kube.apply_all(crds, namespace, [*claims, profile_claim])
            for obj in claims:
                condition = kube.wait_reason(crds, namespace, kube.plural(obj), obj["metadata"]["name"],
                                             "Conflict", timeout=60)
                assert "was not created by Rolekeeper" in condition["message"]
                assert "adopt" in condition["message"]
            profile_condition = until(
                lambda: kube.ready_condition(kube.get(crds, namespace, "iamrole", "claims-profile")),
                60, "a verdict for claims-profile")
            time.sleep(3 * DRIFT)  # drift sweeps run and find the claimed entities "drifted"
            during = rl.account_state(iam, prefix)
            kube.delete_all(crds, namespace, [*claims, profile_claim])
            rl.wait_converged(crds, namespace, [], gone=[*claims, profile_claim], timeout=60)
            time.sleep(DRIFT)
    finally:
        proxy.stop()
    after = rl.account_state(iam, prefix)
    for state in (during, after):
        hand = {k: v for k, v in state.items() if k[1] in hand_made_names}
        assert hand == {k: v for k, v in before.items() if k[1] in hand_made_names}, \
            rl.state_diff(before, state)
    attempts = [r for r in proxy.requests(entities=hand_made_names) if r.is_write]
    writes = [r for r in attempts if not r.is_refused_create]
    assert not writes, rl.per_action(writes)
    # The profile someone made keeps existing and keeps holding nothing of ours.
    assert after[("instance-profile", names["profile-only"])] == {"roles": []}
    profile_writes = [r for r in proxy.requests(entities=[names["profile-only"]]) if r.is_write]
    rl.report("ownership", {
        "claims": len(claims),
        "drift_interval_s": DRIFT,
        "writes_to_hand_made": len(writes),
        "refused_creates_of_hand_made_names": len(attempts) - len(writes),
        "hand_made_profile": profile_condition.get("reason"),
        "hand_made_profile_writes": rl.per_action(profile_writes),
    })
    assert profile_condition.get("status") == "False", profile_condition
    assert not [r for r in profile_writes if r.action in ("AddRoleToInstanceProfile",
                                                           "DeleteInstanceProfile")]
    cleanup(iam, names)


def cleanup(iam: Any, names: dict[str, str]) -> None:
    iam.remove_role_from_instance_profile(InstanceProfileName=names["ec2"], RoleName=names["ec2"])
    for profile in (names["ec2"], names["profile-only"]):
        iam.delete_instance_profile(InstanceProfileName=profile)
    for key in ("role", "ec2"):
        iam.detach_role_policy(RoleName=names[key], PolicyArn=S3_READ)
        iam.delete_role_policy(RoleName=names[key], PolicyName="hand")
        iam.delete_role(RoleName=names[key])
    iam.detach_user_policy(UserName=names["user"], PolicyArn=S3_READ)
    iam.delete_user(UserName=names["user"])


def delete_by_hand(iam: Any, obj: dict[str, Any]) -> None:
    """What a human does in the console: everything the entity holds, then the entity."""
    kind, name = rl.aws_key(obj)
    if kind == "role":
        for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
            iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
            iam.delete_instance_profile(InstanceProfileName=profile["InstanceProfileName"])
        for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)
    else:
        for policy in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
            iam.detach_user_policy(UserName=name, PolicyArn=policy["PolicyArn"])
        for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
            iam.delete_user_policy(UserName=name, PolicyName=policy)
        iam.delete_user(UserName=name)


def test_delete_after_entity_deleted_by_hand_completes(crds: Cluster, namespace: str, aws: Aws) -> None:
    iam = aws.console()
    prefix = f"rk-gone-{secrets.token_hex(3)}"
    running = [rl.role_object("run-role", f"{prefix}-run-role", 1, instanceProfile=True),
               rl.user_object("run-user", f"{prefix}-run-user", 1)]
    down = [rl.role_object("down-role", f"{prefix}-down-role", 1, instanceProfile=True),
            rl.user_object("down-user", f"{prefix}-down-user", 1)]
    proxy = rl.RecordingProxy.for_server(aws.server)
    try:
        # A long drift interval: nothing recreates the entities between the two deletions.
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace) as op:
            kube.apply_all(crds, namespace, [*running, *down])
            rl.wait_converged(crds, namespace, [*running, *down], timeout=60)
            for obj in running:
                delete_by_hand(iam, obj)
            kube.delete_all(crds, namespace, running)
            running_s = rl.wait_converged(crds, namespace, [], gone=running, timeout=60)
            op.stop()
            for obj in down:
                delete_by_hand(iam, obj)
            kube.delete_all(crds, namespace, down)  # held by the finalizer while nobody runs
            held = kube.list_objects(crds, namespace)
            assert all((kube.plural(o), o["metadata"]["name"]) in held for o in down), "finalizer released"
            op.start()
            down_s = rl.wait_converged(crds, namespace, [], gone=down, timeout=60)
    finally:
        proxy.stop()
    assert not rl.account_state(iam, prefix)
    recreated = [r for r in proxy.requests() if r.action.startswith("Create") and r.aws_status == 200]
    assert len(recreated) == 4 + 2, rl.per_action(recreated)  # 2 roles, 2 profiles, 2 users: once
    rl.report("deleted-by-hand", {"delete_with_operator_running_s": round(running_s, 1),
                                  "delete_after_operator_restart_s": round(down_s, 1)})


def test_renames_are_refused_and_the_old_role_kept(crds: Cluster, namespace: str, aws: Aws) -> None:
    iam = aws.console()
    prefix = f"rk-name-{secrets.token_hex(3)}"
    role = rl.role_object("named", f"{prefix}-named", 1)
    defaulted = rl.role_object(f"{prefix}-dflt", "", 1)
    del defaulted["spec"]["roleName"]
    user = rl.user_object("user", f"{prefix}-user", 1)
    proxy = rl.RecordingProxy.for_server(aws.server)
    try:
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace):
            kube.apply_all(crds, namespace, [role, defaulted, user])
            rl.wait_converged(crds, namespace, [role, defaulted, user], timeout=60)
            arn = kube.get(crds, namespace, "iamrole", "named")["status"]["arn"]
            attempts = {
                "roleName": {**role, "spec": {**role["spec"], "roleName": f"{prefix}-renamed"}},
                "defaulted roleName": {**defaulted, "spec": {**defaulted["spec"], "roleName": f"{prefix}-other"}},
                "userName": {**user, "spec": {**user["spec"], "userName": f"{prefix}-renamed-user"}},
                "path": {**role, "spec": {**role["spec"], "path": "/moved/"}},
            }
            for what, obj in attempts.items():
                done = kube.apply_all(crds, namespace, [obj], check=False)
                assert done.returncode != 0 and "immutable" in done.stderr, (what, done.stderr)
            patched = crds.kubectl("patch", "iamrole", "named", "-n", namespace, "--type=merge", "-p",
                                   json.dumps({"spec": {"roleName": f"{prefix}-patched"}}), check=False)
            assert patched.returncode != 0 and "immutable" in patched.stderr, patched.stderr
            # Writing down the name that was already in effect is no rename.
            same = {**defaulted, "spec": {**defaulted["spec"], "roleName": defaulted["metadata"]["name"]}}
            kube.apply_all(crds, namespace, [same])
            # The objects are untouched and still manage the roles they always did.
            live = kube.get(crds, namespace, "iamrole", "named")
            assert live["metadata"]["generation"] == 1 and live["status"]["arn"] == arn
            rl.wait_converged(crds, namespace, [role, same, user], timeout=60)
            names = {k[1] for k in rl.account_state(iam, prefix) if k[0] in ("role", "user")}
            assert names == {f"{prefix}-named", f"{prefix}-dflt", f"{prefix}-user"}
            kube.delete_all(crds, namespace, [role, same, user])
            rl.wait_converged(crds, namespace, [], gone=[role, same, user], timeout=60)
    finally:
        proxy.stop()
    assert not rl.account_state(iam, prefix)
    deletes = [r for r in proxy.requests() if r.action in ("DeleteRole", "DeleteUser") and r.aws_status == 200]
    assert sorted(r.entity for r in deletes) == sorted([f"{prefix}-named", f"{prefix}-dflt", f"{prefix}-user"])
