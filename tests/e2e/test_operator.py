"""The operator end to end: `rolekeeper run` + a real kube-apiserver + kubectl + the moto server.

Covers: the seed scenario (EC2 role and user with AmazonS3ReadOnlyAccess reach Ready with the ARN,
`kubectl wait` works); spec edits propagate; out-of-band drift is reverted within the drift
interval with an Event saying what; the CRD schema rejects bad input at apply time; a spec only
Rolekeeper can reject gets InvalidSpec and no AWS write; a policy only AWS rejects gets AWSError
with AWS's message and no retry storm; delete cleans AWS and releases the finalizer; Retain keeps
the role; two objects claiming one roleName; a role deleted by hand is recreated.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.conftest import DRIFT_INTERVAL, Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.util import until
from tests.helpers import DYNAMO_READ, S3_READ, aws_name, iam_role, iam_user

pytestmark = pytest.mark.e2e

# Drift must be put back within one interval plus the time to notice and fix it.
DRIFT_DEADLINE = DRIFT_INTERVAL * 2 + 10


def attached(iam: Any, role_name: str) -> set[str]:
    return {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]}


def test_seed_scenario_role_and_user_become_ready(crds: Cluster, shared_ns: str, iam: Any) -> None:
    role_name, user_name = aws_name("web"), aws_name("ci")
    kube.apply(crds, shared_ns, iam_role("web-ec2", role_name, managedPolicies=[S3_READ]),
               iam_user("ci", user_name, managedPolicies=[S3_READ]))
    kube.wait_ready(crds, shared_ns, "iamrole", "web-ec2")
    kube.wait_ready(crds, shared_ns, "iamuser", "ci")
    role = kube.get(crds, shared_ns, "iamrole", "web-ec2")
    assert role["status"]["arn"] == f"arn:aws:iam::123456789012:role/{role_name}"
    assert role["status"]["roleId"].startswith("AROA")
    assert role["status"]["observedGeneration"] == role["metadata"]["generation"]
    assert "iam.rolekeeper.dev/finalizer" in role["metadata"]["finalizers"]
    assert attached(iam, role_name) == {S3_READ}
    user = kube.get(crds, shared_ns, "iamuser", "ci")
    assert user["status"]["arn"] == f"arn:aws:iam::123456789012:user/{user_name}"
    assert {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"]} == {S3_READ}
    printed = crds.kubectl("get", "iamroles", "-n", shared_ns).stdout
    assert "ARN" in printed and "READY" in printed and role_name in printed and "Synced" in printed
    calls = kube.applied_calls(crds, shared_ns, "web-ec2")
    assert {"Created", "CreateRole", "AttachRolePolicy"} <= calls, calls


def test_spec_edit_propagates(crds: Cluster, shared_ns: str, iam: Any) -> None:
    role_name = aws_name("edit")
    kube.apply(crds, shared_ns, iam_role("edit", role_name, managedPolicies=[S3_READ]))
    kube.wait_ready(crds, shared_ns, "iamrole", "edit")
    lambda_trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    kube.apply(crds, shared_ns, iam_role("edit", role_name, managedPolicies=[S3_READ, DYNAMO_READ],
                                         assumeRolePolicy=lambda_trust))
    until(lambda: attached(iam, role_name) == {S3_READ, DYNAMO_READ}, 30, "policy attached")
    trust = until(lambda: _trust_service(iam, role_name) == "lambda.amazonaws.com", 30, "trust updated")
    assert trust
    until(lambda: kube.get(crds, shared_ns, "iamrole", "edit")["status"]["observedGeneration"] == 2,
          30, "observedGeneration 2")


def _trust_service(iam: Any, role_name: str) -> str:
    doc = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    principal = doc["Statement"][0]["Principal"].get("Service", "")
    return principal if isinstance(principal, str) else principal[0]


@pytest.mark.parametrize(
    ("drift", "expect_event"),
    [("detach", "Attached"), ("attach-extra", "Detached"), ("edit-trust", "Updated trust policy")],
)
def test_out_of_band_drift_is_reverted(crds: Cluster, shared_ns: str, iam: Any, drift: str, expect_event: str) -> None:
    role_name = aws_name("drift")
    kube.apply(crds, shared_ns, iam_role("drifty", role_name, managedPolicies=[S3_READ]))
    kube.wait_ready(crds, shared_ns, "iamrole", "drifty")
    if drift == "detach":
        iam.detach_role_policy(RoleName=role_name, PolicyArn=S3_READ)
    elif drift == "attach-extra":
        iam.attach_role_policy(RoleName=role_name, PolicyArn=DYNAMO_READ)
    else:
        evil = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "sts:AssumeRole"}]}
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(evil))
    changed_at = time.monotonic()
    until(lambda: attached(iam, role_name) == {S3_READ} and _trust_service(iam, role_name) == "ec2.amazonaws.com",
          DRIFT_DEADLINE, f"drift '{drift}' reverted")
    assert time.monotonic() - changed_at <= DRIFT_DEADLINE
    messages = until(
        lambda: [e["message"] for e in kube.events(crds, shared_ns, "drifty") if e["reason"] == "DriftReverted"],
        15, "a DriftReverted event")
    assert any(expect_event in m for m in messages), messages


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"roleName": "has space"}, "spec.roleName"),
        ({"maxSessionDuration": 100}, "spec.maxSessionDuration"),
        ({"managedPolicies": [f"arn:aws:iam::aws:policy/P{i}" for i in range(21)]}, "spec.managedPolicies"),
        ({"tags": {"aws:reserved": "x"}}, "aws:"),
        ({"assumeRolePolicy": "{\"Version\": \"2012-10-17\"}"}, "spec.assumeRolePolicy"),
    ],
    ids=["bad-name", "max-session-100", "21-policies", "aws-tag-prefix", "json-string-policy"],
)
def test_schema_rejects_bad_input_at_apply_time(crds: Cluster, shared_ns: str, spec: dict[str, Any], fragment: str) -> None:
    obj = iam_role("bad", aws_name("bad"))
    obj["spec"].update(spec)
    done = kube.apply(crds, shared_ns, obj, check=False)
    assert done.returncode != 0
    assert fragment in done.stderr, done.stderr
    assert not kube.exists(crds, shared_ns, "iamrole", "bad")


def test_role_name_is_immutable(crds: Cluster, shared_ns: str) -> None:
    kube.apply(crds, shared_ns, iam_role("fixed", aws_name("fixed")))
    done = kube.apply(crds, shared_ns, iam_role("fixed", aws_name("renamed")), check=False)
    assert done.returncode != 0 and "immutable" in done.stderr, done.stderr


def test_spec_only_rolekeeper_rejects_gets_invalid_spec(crds: Cluster, shared_ns: str, aws: Aws, iam: Any) -> None:
    role_name = aws_name("principal")
    identity_with_principal = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]}
    before = aws.proxy.count(writes_only=True)
    kube.apply(crds, shared_ns, iam_role("principal", role_name, inlinePolicies={"p": identity_with_principal}))
    condition = kube.wait_reason(crds, shared_ns, "iamrole", "principal", "InvalidSpec")
    assert condition["status"] == "False"
    assert "spec.inlinePolicies.p" in condition["message"] and "Principal" in condition["message"]
    assert any(e["reason"] == "InvalidSpec" and e["type"] == "Warning" for e in kube.events(crds, shared_ns, "principal"))
    assert aws.proxy.count(writes_only=True) == before or _no_role(iam, role_name)
    assert _no_role(iam, role_name)


def _no_role(iam: Any, role_name: str) -> bool:
    return role_name not in {r["RoleName"] for r in iam.list_roles()["Roles"]}


def test_policy_only_aws_rejects_reports_aws_error_without_retry_storm(crds: Cluster, shared_ns: str, aws: Aws) -> None:
    role_name = aws_name("malformed")
    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3"}]}
    kube.apply(crds, shared_ns, iam_role("malformed", role_name, inlinePolicies={"bad": bad}))
    condition = kube.wait_reason(crds, shared_ns, "iamrole", "malformed", "AWSError")
    assert "MalformedPolicyDocument" in condition["message"] and "arn:aws:s3" in condition["message"]
    # Terminal: no retries beyond the drift timer's one attempt per interval.
    start = aws.proxy.calls["PutRolePolicy"]
    window = DRIFT_INTERVAL * 3
    time.sleep(window)
    attempts = aws.proxy.calls["PutRolePolicy"] - start
    assert attempts <= window / DRIFT_INTERVAL + 1, f"{attempts} PutRolePolicy calls in {window}s"


def test_delete_cleans_aws_and_releases_finalizer(crds: Cluster, shared_ns: str, iam: Any) -> None:
    role_name = aws_name("gone")
    kube.apply(crds, shared_ns, iam_role("gone", role_name, managedPolicies=[S3_READ], instanceProfile=True))
    kube.wait_ready(crds, shared_ns, "iamrole", "gone")
    iam.attach_role_policy(RoleName=role_name, PolicyArn=DYNAMO_READ)  # by hand, just before
    crds.kubectl("delete", "iamrole", "gone", "-n", shared_ns, "--timeout=60s")
    assert not kube.exists(crds, shared_ns, "iamrole", "gone")
    assert _no_role(iam, role_name)
    assert role_name not in {p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]}


def test_retain_keeps_the_role(crds: Cluster, shared_ns: str, iam: Any) -> None:
    role_name = aws_name("kept")
    kube.apply(crds, shared_ns, iam_role("kept", role_name, deletionPolicy="Retain", managedPolicies=[S3_READ]))
    kube.wait_ready(crds, shared_ns, "iamrole", "kept")
    crds.kubectl("delete", "iamrole", "kept", "-n", shared_ns, "--timeout=60s")
    assert not kube.exists(crds, shared_ns, "iamrole", "kept")
    role = iam.get_role(RoleName=role_name)["Role"]
    assert not any(t["Key"].startswith("rolekeeper.dev/") for t in role.get("Tags", []))
    assert attached(iam, role_name) == {S3_READ}


def test_second_object_claiming_a_role_name_is_a_conflict(crds: Cluster, shared_ns: str, iam: Any) -> None:
    role_name = aws_name("claimed")
    kube.apply(crds, shared_ns, iam_role("first", role_name))
    kube.wait_ready(crds, shared_ns, "iamrole", "first")
    kube.apply(crds, shared_ns, iam_role("second", role_name, managedPolicies=[S3_READ]))
    condition = kube.wait_reason(crds, shared_ns, "iamrole", "second", "Conflict")
    assert "/first" in condition["message"]
    assert attached(iam, role_name) == set()
    # Deleting the loser must not delete the winner's role.
    crds.kubectl("delete", "iamrole", "second", "-n", shared_ns, "--timeout=60s")
    assert not _no_role(iam, role_name)


def test_role_deleted_by_hand_is_recreated(crds: Cluster, shared_ns: str, iam: Any) -> None:
    role_name = aws_name("phoenix")
    kube.apply(crds, shared_ns, iam_role("phoenix", role_name))
    kube.wait_ready(crds, shared_ns, "iamrole", "phoenix")
    iam.delete_role(RoleName=role_name)
    until(lambda: not _no_role(iam, role_name), DRIFT_DEADLINE, "role recreated")
