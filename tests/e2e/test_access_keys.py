"""spec.accessKey end to end: `rolekeeper run` (with --debug), a real kube-apiserver, real Secrets,
moto behind a private counting proxy that can kill the operator with SIGKILL at an exact point.

Covers: create (the Secret's data, labels and owner reference; status ids and times; the key
works: sts:GetCallerIdentity with it, straight at moto, answers the user's ARN); on-demand
rotation by annotation and grace expiry; scheduled rotation; two hand-made keys (Ready=False
Conflict, nothing deleted); delete (user, keys and Secret gone, finalizer released); kill -9
exactly between CreateAccessKey's answer and the Secret write (first key and rotation), during
the grace period after the Secret write, between deactivation and deletion of the old key, and
between its deletion and the Secret's record of it: after one restart, exactly the expected keys
exist, the orphan is gone and the Secret's key works; and a scan of everything the run produced
(operator log at debug level, Events, the object's YAML with status, `rolekeeper plan` output,
metrics) for every secret key the Secrets ever held.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.awsproxy import AwsProxy
from tests.harness.envtest import REPO_ROOT, Cluster
from tests.harness.operator import Operator
from tests.harness.util import until
from tests.helpers import aws_name, iam_user

pytestmark = pytest.mark.e2e

DRIFT = 2.0
SECRET = "creds"
# Every secret key any test saw in a Secret, and every operator log: the scan at the end reads them.
SEEN: list[str] = []
LOGS: list[Path] = []


class Rig:
    """One namespace, one operator (--debug) behind its own proxy, one IAMUser named `user`."""

    def __init__(self, cluster: Cluster, aws: Aws, namespace: str) -> None:
        self.cluster, self.aws, self.ns = cluster, aws, namespace
        self.proxy = AwsProxy(aws.server.port).start()
        env = {**aws.server.env, "AWS_ENDPOINT_URL_IAM": self.proxy.url,
               "AWS_ENDPOINT_URL_STS": self.proxy.url}
        self.op = Operator(cluster.kubeconfig, env, namespaces=[namespace], drift_interval=DRIFT,
                           extra_args=["--debug"])
        LOGS.append(self.op.log_path)
        self.iam = aws.console()
        self.user = aws_name("keys")

    def apply(self, **access_key: Any) -> None:
        kube.apply(self.cluster, self.ns, iam_user("ci", self.user,
                                                   accessKey={"secretName": SECRET, **access_key}))

    def rotate(self, value: str) -> None:
        self.cluster.kubectl("annotate", "iamuser", "ci", "-n", self.ns,
                             f"rolekeeper.dev/rotate-key={value}", "--overwrite")

    def secret(self) -> dict[str, Any] | None:
        done = self.cluster.kubectl("get", "secret", SECRET, "-n", self.ns, "-o", "json",
                                    "--ignore-not-found")
        return json.loads(done.stdout) if done.stdout.strip() else None

    def held(self) -> str:
        """The key id the Secret holds ("" when none)."""
        found = self.secret()
        data = (found or {}).get("data") or {}
        if "AWS_SECRET_ACCESS_KEY" in data:
            SEEN.append(base64.b64decode(data["AWS_SECRET_ACCESS_KEY"]).decode())
        return base64.b64decode(data.get("AWS_ACCESS_KEY_ID", "")).decode()

    def aws_keys(self) -> dict[str, str]:
        found = self.iam.list_access_keys(UserName=self.user)["AccessKeyMetadata"]
        return {k["AccessKeyId"]: k["Status"] for k in found}

    def secret_works(self) -> bool:
        data = {k: base64.b64decode(v).decode() for k, v in (self.secret() or {})["data"].items()}
        SEEN.append(data["AWS_SECRET_ACCESS_KEY"])
        assert f"aws_secret_access_key = {data['AWS_SECRET_ACCESS_KEY']}" in data["credentials"]
        sts = boto3.client("sts", region_name="us-east-1", endpoint_url=self.aws.server.url,
                           aws_access_key_id=data["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=data["AWS_SECRET_ACCESS_KEY"])
        return bool(sts.get_caller_identity()["Arn"] == f"arn:aws:iam::123456789012:user/{self.user}")

    def status(self) -> dict[str, Any]:
        return dict(kube.get(self.cluster, self.ns, "iamuser", "ci").get("status", {}))

    def kill_after(self, api: str) -> None:
        """SIGKILL the operator once, right after AWS answered `api` (it never sees the answer)."""
        def hook(action: str) -> bool:
            if action != api:
                return False
            self.proxy.after_upstream = None
            self.op.kill()
            return True
        self.proxy.after_upstream = hook

    def wait_dead(self, timeout: float = 60) -> None:
        until(lambda: self.op.process is not None and self.op.process.poll() is not None,
              timeout, lambda: f"the operator killed at its step:\n{self.op.log_tail()}")

    def ready_with_key(self, timeout: float = 60, other_than: str = "") -> str:
        def ok() -> str:
            held = self.held()
            cond = kube.ready(self.cluster, self.ns, "iamuser", "ci") or {}
            return held if held and held != other_than and cond.get("status") == "True" else ""
        return until(ok, timeout, lambda: f"a Ready IAMUser with a key:\n{self.op.log_tail()}")

    def close(self) -> None:
        self.op.stop()
        self.proxy.stop()


@pytest.fixture
def rig(crds: Cluster, aws: Aws, namespace: str) -> Iterator[Rig]:
    r = Rig(crds, aws, namespace)
    r.op.start()
    try:
        yield r
    finally:
        r.close()


# --- behaviour ------------------------------------------------------------------------------


def test_create_writes_a_working_key_and_delete_removes_everything(rig: Rig) -> None:
    rig.apply(rotateAfter="0")
    key_id = rig.ready_with_key()
    assert list(rig.aws_keys()) == [key_id]
    assert rig.secret_works()
    secret = rig.secret()
    assert secret is not None
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "rolekeeper",
                                            "iam.rolekeeper.dev/iamuser": "ci"}
    obj = kube.get(rig.cluster, rig.ns, "iamuser", "ci")
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("IAMUser", "ci", obj["metadata"]["uid"])
    status = obj["status"]["accessKey"]
    assert status["accessKeyId"] == key_id and status["secretName"] == SECRET
    assert "created" in status and "nextRotation" not in status  # rotateAfter 0
    assert kube.applied_calls(rig.cluster, rig.ns, "ci") >= {"CreateUser", "CreateAccessKey"}
    rig.cluster.kubectl("delete", "iamuser", "ci", "-n", rig.ns, "--timeout=60s")
    assert rig.secret() is None
    assert rig.user not in {u["UserName"] for u in rig.iam.list_users()["Users"]}


def test_on_demand_rotation_then_grace_expiry(rig: Rig) -> None:
    rig.apply(rotateAfter="0", gracePeriod="6s")
    first = rig.ready_with_key()
    rig.rotate("r1")
    second = rig.ready_with_key(other_than=first)
    assert rig.aws_keys() == {first: "Active", second: "Active"}
    assert rig.secret_works()
    status = until(lambda: rig.status()["accessKey"].get("previousAccessKeyId") and rig.status(),
                   20, "status naming the previous key")["accessKey"]
    assert status["previousAccessKeyId"] == first and "lastRotation" in status
    until(lambda: rig.aws_keys() == {second: "Active"}, 6 + DRIFT * 3 + 10, "the old key retired")
    until(lambda: "previousAccessKeyId" not in rig.status()["accessKey"], 20, "status cleared")
    calls = kube.applied_calls(rig.cluster, rig.ns, "ci")
    assert "UpdateAccessKey" in calls and "DeleteAccessKey" in calls, calls


def test_scheduled_rotation(rig: Rig) -> None:
    rig.apply(rotateAfter="8s", gracePeriod="3s")
    first = rig.ready_with_key()
    assert "nextRotation" in rig.status()["accessKey"]
    second = rig.ready_with_key(timeout=8 + DRIFT * 3 + 15, other_than=first)
    assert rig.secret_works()
    until(lambda: first not in rig.aws_keys(), 3 + DRIFT * 3 + 10, "the first key retired")
    assert second in rig.aws_keys()


def test_two_hand_made_keys_are_refused_not_deleted(rig: Rig) -> None:
    kube.apply(rig.cluster, rig.ns, iam_user("ci", rig.user))
    kube.wait_ready(rig.cluster, rig.ns, "iamuser", "ci")
    hand = {rig.iam.create_access_key(UserName=rig.user)["AccessKey"]["AccessKeyId"] for _ in "ab"}
    rig.apply()
    condition = kube.wait_reason(rig.cluster, rig.ns, "iamuser", "ci", "Conflict")
    assert all(k in condition["message"] for k in hand) and "never deletes" in condition["message"]
    assert set(rig.aws_keys()) == hand
    assert rig.secret() is None
    assert rig.proxy.calls["CreateAccessKey"] == rig.proxy.calls["DeleteAccessKey"] == 0


# --- kill -9 at each step -------------------------------------------------------------------


def test_kill_between_create_access_key_and_the_secret_write(rig: Rig) -> None:
    rig.kill_after("CreateAccessKey")
    rig.apply(rotateAfter="0")
    rig.wait_dead()
    [orphan] = rig.aws_keys()
    assert rig.held() == ""  # the Secret announces the creation, holds no key
    rig.proxy.reset_counts()
    rig.op.start()
    held = rig.ready_with_key()
    assert rig.aws_keys() == {held: "Active"} and orphan != held
    assert rig.secret_works()
    assert (rig.proxy.calls["DeleteAccessKey"], rig.proxy.calls["CreateAccessKey"]) == (1, 1)


def test_kill_between_create_access_key_and_the_secret_write_in_a_rotation(rig: Rig) -> None:
    rig.apply(rotateAfter="0", gracePeriod="6s")
    first = rig.ready_with_key()
    rig.kill_after("CreateAccessKey")
    rig.rotate("r1")
    rig.wait_dead()
    orphan = next(k for k in rig.aws_keys() if k != first)
    assert rig.held() == first
    rig.proxy.reset_counts()
    rig.op.start()
    second = rig.ready_with_key(other_than=first)
    assert rig.aws_keys() == {first: "Active", second: "Active"} and orphan != second
    assert rig.secret_works()
    assert (rig.proxy.calls["DeleteAccessKey"], rig.proxy.calls["CreateAccessKey"]) == (1, 1)
    until(lambda: rig.aws_keys() == {second: "Active"}, 6 + DRIFT * 3 + 10, "the first key retired")


def test_kill_during_the_grace_period(rig: Rig) -> None:
    rig.apply(rotateAfter="0", gracePeriod="5s")
    first = rig.ready_with_key()
    rig.rotate("r1")
    second = until(lambda: (h := rig.held()) != first and h, 30, "the new key in the Secret")
    rig.op.kill()
    assert set(rig.aws_keys()) == {first, second}
    rig.op.start()
    until(lambda: rig.aws_keys() == {second: "Active"}, 5 + DRIFT * 3 + 15, "the first key retired")
    assert rig.held() == second and rig.secret_works()


@pytest.mark.parametrize("api", ["UpdateAccessKey", "DeleteAccessKey"])
def test_kill_while_retiring_the_old_key(rig: Rig, api: str) -> None:
    rig.apply(rotateAfter="0", gracePeriod="3s")
    first = rig.ready_with_key()
    rig.kill_after(api)
    rig.rotate("r1")
    rig.wait_dead(timeout=3 + DRIFT * 3 + 30)
    second = rig.held()
    expected = {first: "Inactive", second: "Active"} if api == "UpdateAccessKey" else {second: "Active"}
    assert rig.aws_keys() == expected
    rig.op.start()
    until(lambda: rig.aws_keys() == {second: "Active"}, DRIFT * 3 + 20, "only the Secret's key left")
    until(lambda: "previousAccessKeyId" not in rig.status().get("accessKey", {"x": 1}), 20,
          "status without the previous key")
    assert "iam.rolekeeper.dev/previous-access-key-id" not in (rig.secret() or {})["metadata"].get(
        "annotations", {})
    assert rig.held() == second and rig.secret_works()


# --- the secret never appears -----------------------------------------------------------------


def test_no_secret_in_anything_the_run_produced(rig: Rig) -> None:
    """Its own lifecycle (create, rotate, grace, delete), then everything scanned for every
    secret any test of this module saw."""
    rig.apply(rotateAfter="0", gracePeriod="2s")
    first = rig.ready_with_key()
    rig.rotate("scan")
    second = rig.ready_with_key(other_than=first)
    until(lambda: rig.aws_keys() == {second: "Active"}, 2 + DRIFT * 3 + 10, "the first key retired")
    assert rig.secret_works()
    produced = [
        rig.cluster.kubectl("get", "iamuser", "ci", "-n", rig.ns, "-o", "yaml").stdout,
        rig.cluster.kubectl("get", "events", "-A", "-o", "yaml").stdout,
        rig.cluster.kubectl("describe", "iamuser", "ci", "-n", rig.ns).stdout,
        rig.op.metrics(),
    ]
    manifest = kube.get(rig.cluster, rig.ns, "iamuser", "ci")
    plan_input = Path(rig.op.log_path).with_suffix(".plan.yaml")
    plan_input.write_text(yaml.safe_dump({k: manifest[k] for k in ("apiVersion", "kind", "spec")}
                                         | {"metadata": {"name": "ci", "namespace": rig.ns}}))
    for fmt in ("text", "json", "markdown"):
        done = subprocess.run(
            [str(Path(sys.executable).parent / "rolekeeper"), "plan", str(plan_input),
             "--format", fmt], cwd=REPO_ROOT, env={**rig.op.env}, capture_output=True,
            text=True, timeout=120, check=False)
        produced += [done.stdout, done.stderr]
    rig.cluster.kubectl("delete", "iamuser", "ci", "-n", rig.ns, "--timeout=60s")
    rig.op.stop()
    produced += [path.read_text(errors="replace") for path in LOGS if path.exists()]
    text = "\n".join(produced)
    assert "[DEBUG   ]" in text  # the operator logs really are at debug level
    assert "written to Secret" in text and "CreateAccessKey" in text
    secrets = {s for s in SEEN if s}
    assert len(secrets) >= 2
    assert not [s[:4] + "…" for s in secrets if s in text]
