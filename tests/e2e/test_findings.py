"""Security findings in the operator end to end: `rolekeeper run` + kube-apiserver + moto.

Covers: a role trusting Principal "*" gets status.findings (RK-TRUST-001, critical, at its
field), a SecurityFindings condition True, Ready still True/Synced, and one Warning Event; a
least-privilege role gets no findings and SecurityFindings False; the suppression annotation
(no spec change, no new generation) marks the finding suppressed with its reason, keeps it in
status, turns SecurityFindings False and posts one Normal Event for the changed set; drift checks
after that write no further SecurityFindings Events.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests import helpers
from tests.e2e.conftest import DRIFT_INTERVAL
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.util import until
from tests.helpers import EC2_TRUST, aws_name

pytestmark = pytest.mark.e2e

SUPPRESS = "iam.rolekeeper.dev/suppress-findings"
ANYONE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}],
}
READ_ONE_BUCKET = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"],
                   "Resource": "arn:aws:s3:::team-a-assets/*"}],
}


def iam_role(name: str, trust: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return helpers.iam_role(name, aws_name(name), assumeRolePolicy=trust, **spec)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_]
    return found[0] if found else {}


def finding_events(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return [e for e in kube.events(cluster, namespace, name) if e["reason"] == "SecurityFindings"]


def test_findings_in_status_condition_and_events(crds: Cluster, shared_ns: str) -> None:
    kube.apply(crds, shared_ns, iam_role("anyone", ANYONE_TRUST),
               iam_role("tight", EC2_TRUST, inlinePolicies={"read": READ_ONE_BUCKET}))
    kube.wait_ready(crds, shared_ns, "iamrole", "anyone")
    kube.wait_ready(crds, shared_ns, "iamrole", "tight")

    def with_findings_condition(name: str) -> dict[str, Any] | None:
        obj = kube.get(crds, shared_ns, "iamrole", name)
        return obj if condition(obj, "SecurityFindings") else None

    anyone = until(lambda: with_findings_condition("anyone"), 30, "SecurityFindings on anyone")
    [finding] = anyone["status"]["findings"]
    assert finding["id"] == "RK-TRUST-001" and finding["severity"] == "critical"
    assert finding["field"] == "spec.assumeRolePolicy.Statement[0].Principal"
    assert finding["link"].startswith("https://docs.aws.amazon.com/IAM/")
    assert "suppressed" not in finding
    security = condition(anyone, "SecurityFindings")
    assert (security["status"], security["reason"]) == ("True", "FindingsPresent")
    assert "1 critical" in security["message"]
    ready = condition(anyone, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Synced")  # findings never touch Ready

    tight = until(lambda: with_findings_condition("tight"), 30, "SecurityFindings on tight")
    assert tight["status"]["findings"] == []
    assert condition(tight, "SecurityFindings")["status"] == "False"
    assert condition(tight, "SecurityFindings")["reason"] == "NoFindings"
    assert condition(tight, "Ready")["status"] == "True"

    [warning] = until(lambda: finding_events(crds, shared_ns, "anyone"), 30, "a findings Event")
    assert warning["type"] == "Warning" and "RK-TRUST-001" in warning["message"]
    assert finding_events(crds, shared_ns, "tight") == []  # no findings before, none now

    # Suppress: an annotation only (same generation); the finding stays, marked, with the reason.
    crds.kubectl("annotate", "-n", shared_ns, "iamrole", "anyone",
                 f"{SUPPRESS}=RK-TRUST-001=public demo role, reviewed by security")

    def suppressed() -> dict[str, Any] | None:
        obj = kube.get(crds, shared_ns, "iamrole", "anyone")
        found = obj["status"].get("findings") or [{}]
        return obj if found[0].get("suppressed") else None

    anyone = until(suppressed, 30, "the finding marked suppressed")
    [finding] = anyone["status"]["findings"]
    assert finding["id"] == "RK-TRUST-001"
    assert finding["reason"] == "public demo role, reviewed by security"
    security = condition(anyone, "SecurityFindings")
    assert (security["status"], security["reason"]) == ("False", "NoFindings")
    assert "1 suppressed" in security["message"]
    assert condition(anyone, "Ready")["status"] == "True"
    events = until(lambda: [e for e in finding_events(crds, shared_ns, "anyone")
                            if e["type"] == "Normal"], 30, "a Normal findings Event")
    assert "No unsuppressed security findings" in events[0]["message"]

    # Later drift checks find the same set: no more findings Events.
    time.sleep(DRIFT_INTERVAL * 2 + 1)
    seen = finding_events(crds, shared_ns, "anyone")
    assert len(seen) == 2 and all(e.get("count", 1) == 1 for e in seen)
