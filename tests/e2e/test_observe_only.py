"""Observe-only end to end: `rolekeeper run` + kube-apiserver + moto behind the counting proxy.

Covers (issue 17): an Observe object over a hand-made role reports Ready (Observed) and a
Synced=False condition listing the drift, with a DriftObserved Event, while the proxy sees no
write at all; `rolekeeper plan` of the flip to Manage (with adopt, allowed by a guardrail) lists
calls, and applying the flip makes exactly those calls; deleting an observed object deletes
nothing in AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import helpers
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.util import until
from tests.helpers import EC2_TRUST, S3_READ, aws_name

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def synced(crds: Cluster, ns: str, name: str) -> dict[str, Any]:
    obj = kube.get(crds, ns, "iamrole", name)
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Synced"]
    return found[0] if found else {}


def adoption_guardrail(namespace: str, role: str) -> dict[str, Any]:
    return {"apiVersion": "iam.rolekeeper.dev/v1alpha1", "kind": "IAMGuardrail",
            "metadata": {"name": f"adopt-{namespace}"[:63]},
            "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                     "adoption": {"roles": {"names": [role]}}}}


def test_observe_then_flip_to_manage(crds: Cluster, shared_ns: str, aws: Aws, tmp_path: Path) -> None:
    iam, role = aws.console(), aws_name("legacy")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(EC2_TRUST), Description="by hand")
    iam.attach_role_policy(RoleName=role, PolicyArn=S3_READ)  # the spec does not ask for it
    observed = helpers.iam_role("legacy", role, managementPolicy="Observe", description="by hand")
    before = aws.proxy.writes()
    kube.apply(crds, shared_ns, observed)
    kube.wait_reason(crds, shared_ns, "iamrole", "legacy", "Observed")
    condition = until(lambda: synced(crds, shared_ns, "legacy") or None, 30, "a Synced condition")
    assert condition["status"] == "False" and condition["reason"] == "OutOfSync"
    assert f"Detached {S3_READ}" in condition["message"]
    events = [e for e in kube.events(crds, shared_ns, "legacy") if e["reason"] == "DriftObserved"]
    assert events and S3_READ in events[0]["message"]
    assert aws.proxy.writes() == before, "observe-only wrote to AWS"
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"][0]["PolicyArn"] == S3_READ

    # The flip, as a reviewer sees it: rolekeeper plan against the live endpoint.
    guardrail = adoption_guardrail(shared_ns, role)
    crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(guardrail))
    try:
        flipped = helpers.iam_role("legacy", role, adopt=True, description="by hand", namespace=shared_ns)
        (tmp_path / "flip.yaml").write_text(yaml.safe_dump_all([{**guardrail}, flipped,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": shared_ns, "labels": {"kubernetes.io/metadata.name": shared_ns}}}]))
        planned = subprocess.run(
            [sys.executable, "-m", "controller.cli", "plan", str(tmp_path / "flip.yaml"), "--format", "json"],
            env={**os.environ, **aws.env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"},
            cwd=REPO, capture_output=True, text=True, check=True, timeout=120)
        [change] = json.loads(planned.stdout)["changes"]
        assert change["action"] == "update", change
        planned_apis = sorted(c["api"] for c in change["calls"])
        before = aws.proxy.writes()
        kube.apply(crds, shared_ns, flipped)
        until(lambda: (kube.ready(crds, shared_ns, "iamrole", "legacy") or {}).get("reason") == "Synced",
              60, "the flipped role Synced")
        made = {a: n - before.get(a, 0) for a, n in aws.proxy.writes().items() if n != before.get(a, 0)}
        assert sorted(a for a, n in made.items() for _ in range(n)) == planned_apis
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    finally:
        crds.kubectl("delete", "iamguardrail", guardrail["metadata"]["name"], "--ignore-not-found")


def test_deleting_an_observed_object_deletes_nothing(crds: Cluster, shared_ns: str, aws: Aws) -> None:
    iam, role = aws.console(), aws_name("kept")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    kube.apply(crds, shared_ns, helpers.iam_role("kept", role, managementPolicy="Observe"))
    kube.wait_reason(crds, shared_ns, "iamrole", "kept", "Observed")
    before = aws.proxy.writes()
    crds.kubectl("delete", "iamrole", "kept", "-n", shared_ns, "--timeout=60s")
    assert aws.proxy.writes() == before
    assert iam.get_role(RoleName=role)["Role"]["RoleName"] == role
