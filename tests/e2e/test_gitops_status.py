"""docs/status.md on a live object: what kstatus and Argo CD make of the status the operator
process really writes through the API server (merge patches, the CRD's schema, Kopf).

Covers: a role whose name a hand-made role already holds is Stalled (kstatus Failed with the
operator's message, Argo CD Degraded) and nothing else; once the hand-made role is gone the
next drift check creates it and the same object is Current / Healthy with Stalled removed from
the stored status; an object just applied to a namespace no operator watches is served with the
CRD's default status (observedGeneration 0), so kstatus says InProgress (not Current, which it
says of an object with no status at all) and Argo CD Progressing.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.e2e.conftest import DRIFT_INTERVAL
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.gitops import REPO_ROOT, argocd_health, kstatus, kstatus_binary
from tests.harness.util import until
from tests.helpers import EC2_TRUST, aws_name, iam_role

pytestmark = pytest.mark.e2e

SCRIPT = (REPO_ROOT / "integrations/argocd/iam.rolekeeper.dev/IAMRole/health.lua").read_text()


def verdicts(obj: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(kstatus's answer, Argo CD's health) for one object as the API server returns it."""
    binary = kstatus_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no kstatus binary in CI (hack/build-kstatus.sh needs Go)")
        pytest.skip("no Go toolchain: hack/build-kstatus.sh cannot build the kstatus checker")
    [answer] = kstatus(binary, [obj])
    return answer, argocd_health(SCRIPT, obj)


def types(obj: dict[str, Any]) -> list[str]:
    return [c["type"] for c in obj["status"]["conditions"]]


def test_a_conflict_fails_then_recovers_to_current(crds: Cluster, shared_ns: str, iam: Any) -> None:
    name = aws_name("taken")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    kube.apply(crds, shared_ns, iam_role("taken", name))
    condition = kube.wait_reason(crds, shared_ns, "iamrole", "taken", "Conflict")
    stalled = kube.get(crds, shared_ns, "iamrole", "taken")
    answer, health = verdicts(stalled)
    assert answer == {"status": "Failed", "message": condition["message"]}
    assert health == {"status": "Degraded", "message": f"Conflict: {condition['message']}"}
    assert "Stalled" in types(stalled) and "Reconciling" not in types(stalled)

    iam.delete_role(RoleName=name)  # the other owner goes: the next drift check creates it
    kube.wait_reason(crds, shared_ns, "iamrole", "taken", "Synced", timeout=DRIFT_INTERVAL * 3 + 30)
    current = kube.get(crds, shared_ns, "iamrole", "taken")
    answer, health = verdicts(current)
    assert answer["status"] == "Current"
    assert health == {"status": "Healthy", "message": "IAM role is in sync"}
    assert not {"Stalled", "Reconciling"} & set(types(current))


def test_an_object_no_operator_handled_is_in_progress(crds: Cluster, namespace: str) -> None:
    # `namespace` is not watched by the session operator: nobody ever writes this status.
    kube.apply(crds, namespace, iam_role("unwatched", aws_name("unwatched")))
    obj = until(lambda: kube.get(crds, namespace, "iamrole", "unwatched"), 10, "the object")
    assert obj["status"] == {"observedGeneration": 0}  # the CRD's default, applied on read
    answer, health = verdicts(obj)
    assert answer["status"] == "InProgress", answer
    assert health["status"] == "Progressing"
    # Without that default kstatus would call it Current (its rule for condition-less objects).
    bare = {key: value for key, value in obj.items() if key != "status"}
    assert verdicts(bare)[0]["status"] == "Current"
