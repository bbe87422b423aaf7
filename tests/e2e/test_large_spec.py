"""Large specs still get a status, and objects handled by an older version resume untouched.

Issue 14: a spec over 256 KB got its Warning Event but never a status, because Kopf kept a full
copy of the spec in the `last-handled-configuration` annotation and all annotations of an object
share 262,144 bytes: the API server refused the patch (422) and the status written with it.
The operator now keeps a SHA-256 of that essence in status (`handlers.DigestDiffBaseStorage`),
written with the rest of the status in one request.

Covers, against a real API server:
- IAMRoles of ~400 KB and ~1.2 MB (within the CRD's limits: 1,000 Resource entries of at most
  2,048 characters per statement, 100 inline policies; 1.2 MB is near what etcd stores, 1.5 MiB
  per request by default): Ready=False `InvalidSpec` (IAM's 10,240-character quota) with
  observedGeneration, a Warning Event, a diff base in status under 100 bytes and none in the
  annotations, no AWS call, and deletion completes;
- the upgrade: an object whose annotation holds the full essence an older version stored
  resumes without an update (no AWS write, no "Updating" in the log); its next spec change is
  handled once and leaves a digest in status.

What this cannot prove: the largest object a given cluster stores depends on its etcd and
API-server flags (`--max-request-bytes`, the 3 MiB request limit); 1.2 MB is chosen to fit
the defaults.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import kopf
import pytest

from tests.e2e import reliability as rl
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.util import until
from tests.helpers import EC2_TRUST, manifest

pytestmark = pytest.mark.e2e

DIFF_BASE = "iam.rolekeeper.dev/last-handled-configuration"  # before: an annotation
STATUS_BASE = "lastHandledConfiguration"  # now: a status field
ANNOTATIONS_LIMIT = 262_144  # bytes, all annotations of one object together


def big_role(name: str, aws_name: str, policies: int, length: int) -> dict[str, Any]:
    """An IAMRole of about policies * 1,000 * `length` bytes: each inline policy has one
    statement with 1,000 Resource ARNs of `length` characters (the CRD's own maxima)."""
    assert length <= 2048
    inline = {
        f"p{j}": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetObject",
            "Resource": [f"arn:aws:s3:::b{j}-{i:04d}/".ljust(length, "k") for i in range(1000)],
        }]}
        for j in range(policies)
    }
    return manifest("IAMRole", name, {"roleName": aws_name, "assumeRolePolicy": EC2_TRUST,
                                      "inlinePolicies": inline}, namespace=None)


def create_json(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    """`kubectl create` (a client-side `kubectl apply` would itself store the whole object in
    its last-applied annotation and be refused for the same 256 KB reason)."""
    doc = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(doc), timeout=120)


def get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "iamroles", name, "-n", namespace, "-o", "json").stdout
    return dict(json.loads(out))


def settled(cluster: Cluster, namespace: str, name: str, reason: str) -> dict[str, Any]:
    """The object once its Ready condition has `reason` for its current generation."""

    def check() -> tuple[dict[str, Any]] | None:
        obj = get(cluster, namespace, name)
        ready = kube.ready_condition(obj)
        current = obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
        return (obj,) if ready.get("reason") == reason and current else None

    (obj,) = until(check, 90, f"{name}: Ready reason {reason}", every=0.5)
    return obj


@pytest.mark.parametrize(("policies", "length"), [(1, 400), (2, 600)], ids=["400KB", "1.2MB"])
def test_a_spec_larger_than_all_annotations_gets_its_status(
    crds: Cluster, namespace: str, aws: Aws, policies: int, length: int
) -> None:
    name = f"big-{policies}"
    aws_name = f"rk-big-{secrets.token_hex(3)}-{policies}"
    obj = big_role(name, aws_name, policies, length)
    size = len(json.dumps(obj["spec"], separators=(",", ":")))
    assert size > ANNOTATIONS_LIMIT * (1.5 if policies == 1 else 4)
    proxy = rl.RecordingProxy.for_server(aws.server)
    try:
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace) as op:
            create_json(crds, namespace, obj)
            live = settled(crds, namespace, name, "InvalidSpec")
            ready = kube.ready_condition(live)
            assert ready["status"] == "False" and "exceeds the limit 10240" in ready["message"]
            events = kube.events(crds, namespace, name)
            assert any(e["type"] == "Warning" and e["reason"] == "InvalidSpec" for e in events), events
            assert DIFF_BASE not in live["metadata"].get("annotations", {})
            base = live["status"][STATUS_BASE]
            assert len(base) < 100 and set(json.loads(base)) == {"sha256"}, base[:200]
            assert not proxy.requests(entities=[aws_name])  # refused before any AWS call
            crds.kubectl("delete", "iamroles", name, "-n", namespace, "--wait=true", timeout=60)
            log = op.log_path.read_text(errors="replace")
            assert "Traceback" not in log and "422" not in log, op.log_tail(80)
    finally:
        proxy.stop()
    rl.report(f"large-spec-{policies}", {"spec_bytes": size, "status_written": True})


def test_an_object_handled_by_an_older_version_resumes_without_an_update(
    crds: Cluster, namespace: str, aws: Aws
) -> None:
    name = "upgraded"
    aws_name = f"rk-upg-{secrets.token_hex(3)}"
    obj = manifest("IAMRole", name, {"roleName": aws_name, "assumeRolePolicy": EC2_TRUST},
                   namespace=None)
    proxy = rl.RecordingProxy.for_server(aws.server)
    try:
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace):
            create_json(crds, namespace, obj)
            settled(crds, namespace, name, "Synced")
        # What the previous version (kopf.AnnotationsDiffBaseStorage) kept: the full essence.
        legacy = kopf.AnnotationsDiffBaseStorage(prefix="iam.rolekeeper.dev",
                                                 key="last-handled-configuration")
        stored = get(crds, namespace, name)
        essence = legacy.build(body=kopf.Body(stored))
        full = json.dumps(essence, separators=(",", ":")) + "\n"
        assert json.loads(full)["spec"]["roleName"] == aws_name
        crds.kubectl("annotate", "--overwrite", "-n", namespace, f"iamroles/{name}",
                     f"{DIFF_BASE}={full}")
        # ... and nothing in status (this version's place for it).
        crds.kubectl("patch", "iamroles", name, "-n", namespace, "--subresource=status",
                     "--type=json", "-p", json.dumps([{"op": "remove", "path": f"/status/{STATUS_BASE}"}]))
        assert STATUS_BASE not in get(crds, namespace, name)["status"]
        before = len(proxy.requests())
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace) as op:
            until(lambda: "Resuming is processed" in op.log_path.read_text(errors="replace"),
                  60, "the resume of the upgraded object", every=0.5)
            resumed = proxy.requests()[before:]
            assert not [r for r in resumed if r.is_write], rl.per_action(resumed)
            log = op.log_path.read_text(errors="replace")
            assert "Updating is processed" not in log and "Creation is processed" not in log, log
            assert get(crds, namespace, name)["metadata"]["annotations"][DIFF_BASE] == full
            # The next change is handled once, and the base becomes a digest.
            crds.kubectl("patch", "iamroles", name, "-n", namespace, "--type=merge",
                         "-p", json.dumps({"spec": {"description": "after the upgrade"}}))
            live = settled(crds, namespace, name, "Synced")
            assert set(json.loads(live["status"][STATUS_BASE])) == {"sha256"}
            until(lambda: "Updating is processed" in op.log_path.read_text(errors="replace"),
                  30, "the update", every=0.5)
            assert "Traceback" not in op.log_path.read_text(errors="replace")
            crds.kubectl("delete", "iamroles", name, "-n", namespace, "--wait=true", timeout=60)
    finally:
        proxy.stop()
