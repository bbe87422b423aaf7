"""IAMPolicy end to end: `rolekeeper run` + kube-apiserver + moto, policies referenced by name.

Covers (issue 15): a policy and two roles that reference it, in one `kubectl apply`, all go
Ready (the roles wait for the policy, DependencyNotReady, then attach its ARN); a document edit
makes a new default version and the roles stay attached; a role referencing a policy that does
not exist waits with DependencyNotReady and creates nothing; deleting a policy that a role
Rolekeeper does not own holds stays Ready=False naming the holder, finalizer kept, nothing
detached.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import helpers
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.util import until
from tests.helpers import EC2_TRUST, LOGS_POLICY, aws_name

pytestmark = pytest.mark.e2e

FINALIZER = "iam.rolekeeper.dev/finalizer"
READ_BUCKET = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::team-a-assets/*"}]}


def iam_policy(name: str, policy_name: str, document: dict[str, Any]) -> dict[str, Any]:
    return helpers.manifest("IAMPolicy", name, {"policyName": policy_name, "document": document}, None)


def attached(iam: Any, role: str) -> set[str]:
    return {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}


def test_policy_and_two_roles_in_one_apply(crds: Cluster, shared_ns: str, aws: Aws) -> None:
    iam = aws.console()
    names = {k: aws_name(k) for k in ("logs", "web", "worker")}
    kube.apply(
        crds, shared_ns,
        helpers.iam_role("web", names["web"], managedPolicyRefs=[{"name": "logs"}]),
        helpers.iam_role("worker", names["worker"], managedPolicyRefs=[{"name": "logs"}]),
        iam_policy("logs", names["logs"], LOGS_POLICY),
    )
    for kind, name in (("iampolicy", "logs"), ("iamrole", "web"), ("iamrole", "worker")):
        kube.wait_ready(crds, shared_ns, kind, name)
    policy = kube.get(crds, shared_ns, "iampolicy", "logs")["status"]
    assert policy["arn"].endswith(f":policy/{names['logs']}") and policy["defaultVersionId"] == "v1"
    for role in ("web", "worker"):
        assert attached(iam, names[role]) == {policy["arn"]}

    # A document edit: a new default version, the roles stay attached.
    kube.apply(crds, shared_ns, iam_policy("logs", names["logs"], READ_BUCKET))
    until(lambda: kube.get(crds, shared_ns, "iampolicy", "logs")["status"].get("defaultVersionId") == "v2",
          60, "version v2 as the default")
    version = iam.get_policy_version(PolicyArn=policy["arn"], VersionId="v2")["PolicyVersion"]
    assert version["IsDefaultVersion"] and version["Document"] == READ_BUCKET
    for role in ("web", "worker"):
        assert attached(iam, names[role]) == {policy["arn"]}


def test_a_missing_policy_makes_the_role_wait_and_create_nothing(crds: Cluster, shared_ns: str, aws: Aws) -> None:
    role = aws_name("waiting")
    kube.apply(crds, shared_ns, helpers.iam_role("waiting", role, managedPolicyRefs=[{"name": "ghost"}]))
    kube.wait_reason(crds, shared_ns, "iamrole", "waiting", "DependencyNotReady")
    message = kube.ready(crds, shared_ns, "iamrole", "waiting")["message"]  # type: ignore[index]
    assert f"IAMPolicy {shared_ns}/ghost does not exist" in message
    assert role not in {r["RoleName"] for r in aws.console().list_roles()["Roles"]}


def test_deleting_a_policy_a_foreign_role_holds_keeps_the_finalizer(crds: Cluster, shared_ns: str, aws: Aws) -> None:
    iam = aws.console()
    name, foreign = aws_name("held"), aws_name("foreign")
    kube.apply(crds, shared_ns, iam_policy("held", name, LOGS_POLICY))
    kube.wait_ready(crds, shared_ns, "iampolicy", "held")
    arn = kube.get(crds, shared_ns, "iampolicy", "held")["status"]["arn"]
    iam.create_role(RoleName=foreign, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.attach_role_policy(RoleName=foreign, PolicyArn=arn)

    crds.kubectl("delete", "iampolicy", "held", "-n", shared_ns, "--wait=false")
    def naming_the_holder() -> dict[str, Any] | None:
        obj = kube.get(crds, shared_ns, "iampolicy", "held")
        ready = kube.ready_condition(obj)
        return obj if ready.get("status") == "False" and foreign in ready.get("message", "") else None

    stuck = until(naming_the_holder, 60, "Ready=False naming the foreign holder")
    assert FINALIZER in stuck["metadata"]["finalizers"]
    assert attached(iam, foreign) == {arn}  # never detached from an entity we do not own
    assert iam.get_policy(PolicyArn=arn)["Policy"]["Arn"] == arn
