"""Operator restarts: graceful (SIGTERM) and hard (SIGKILL mid-reconcile) stops lose nothing.

Covers: objects created while the operator is down are reconciled on start (resume); a SIGKILL
while a batch is being created leaves no duplicate and no half-done role once a new process
resumes; a delete requested while the operator is down completes after restart (the finalizer
held the object meanwhile).
"""

from __future__ import annotations

import secrets
import signal
import time
from typing import Any

import pytest

from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.operator import Operator
from tests.harness.util import until
from tests.helpers import S3_READ, iam_role

pytestmark = pytest.mark.e2e


def roles_with_prefix(iam: Any, prefix: str) -> dict[str, set[str]]:
    found = {}
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if role["RoleName"].startswith(prefix):
                name = role["RoleName"]
                found[name] = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
    return found


def all_ready(cluster: Cluster, namespace: str, count: int) -> bool:
    items = kube.list_objects(cluster, namespace, "iamroles").values()
    ready = [i for i in items if kube.ready_condition(i).get("status") == "True"]
    return len(ready) == count


def test_sigterm_then_changes_while_down_are_resumed(crds: Cluster, namespace: str, aws: Aws, iam: Any) -> None:
    prefix = f"rk-{secrets.token_hex(3)}-"
    op = Operator(crds.kubeconfig, aws.env, namespaces=[namespace], drift_interval=5)
    op.start()
    try:
        kube.apply(crds, namespace, iam_role("before", prefix + "before"))
        kube.wait_ready(crds, namespace, "iamrole", "before")
        assert op.stop(signal.SIGTERM) == 0, op.log_tail()
        kube.apply(crds, namespace, iam_role("while-down", prefix + "while-down", managedPolicies=[S3_READ]))
        crds.kubectl("delete", "iamrole", "before", "-n", namespace, "--wait=false")
        time.sleep(1)
        assert kube.exists(crds, namespace, "iamrole", "before"), "the finalizer holds the object"
        op.start()
        kube.wait_ready(crds, namespace, "iamrole", "while-down")
        until(lambda: not kube.exists(crds, namespace, "iamrole", "before"), 60, "delete finished")
        assert roles_with_prefix(iam, prefix) == {prefix + "while-down": {S3_READ}}
    finally:
        op.stop()


def test_sigkill_mid_reconcile_resumes_without_duplicates(crds: Cluster, namespace: str, aws: Aws, iam: Any) -> None:
    prefix = f"rk-{secrets.token_hex(3)}-"
    count = 12
    op = Operator(crds.kubeconfig, aws.env, namespaces=[namespace], drift_interval=5,
                  extra_args=["--workers", "4"])
    op.start()
    try:
        creates_before = aws.proxy.calls["CreateRole"]
        kube.apply(crds, namespace, *[iam_role(f"r{i}", f"{prefix}{i}", managedPolicies=[S3_READ],
                                               instanceProfile=True) for i in range(count)])
        # Kill as soon as the first roles exist in AWS: the batch is mid-flight.
        until(lambda: aws.proxy.calls["CreateRole"] > creates_before, 30, "first CreateRole")
        op.kill()
        op.start()
        until(lambda: all_ready(crds, namespace, count), 90, f"{count} roles Ready")
        # IAM names are unique, so "no duplicates" means: exactly the declared roles, each with
        # exactly its policies, and exactly one instance profile per role holding only it.
        expected = {f"{prefix}{i}": {S3_READ} for i in range(count)}
        assert roles_with_prefix(iam, prefix) == expected
        profiles = {p["InstanceProfileName"]: [r["RoleName"] for r in p["Roles"]]
                    for p in iam.list_instance_profiles()["InstanceProfiles"] if p["InstanceProfileName"].startswith(prefix)}
        assert profiles == {name: [name] for name in expected}
        crds.kubectl("delete", "iamroles", "--all", "-n", namespace, "--timeout=90s", timeout=100)
        assert roles_with_prefix(iam, prefix) == {}
        assert not kube.list_objects(crds, namespace, "iamroles")
    finally:
        op.stop()
