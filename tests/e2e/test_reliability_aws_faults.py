"""Reliability under AWS faults: the operator behind a proxy that fails 30% of IAM requests.

Covers: with throttling (400), ServiceFailure (500), 503, connection resets, slow answers and
replies lost after AWS applied the call, mixed at a 30% rate, every object is created, updated and
deleted and AWS ends exactly as declared; no entity is created twice (successful CreateRole /
CreateUser calls == entities, and status.roleId is the id AWS holds); nothing is left after
delete; retries are bounded (calls per object against a fault-free baseline of the same
workload, peak calls per second); during a 10 s total throttling outage the call rate falls
instead of storming, and everything converges once it ends.
Standard run: 40 objects; RK_RELIABILITY_FULL=1: 200.
Also, in process and deterministic: the AWS client keeps retrying once botocore's own retry quota
is spent, retries 503 pages that are not IAM XML, and a lost answer to CreateRole or
AddRoleToInstanceProfile costs one handler retry, never a second role or a false error.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import boto3
import pytest
from botocore.retries.standard import RetryQuotaChecker

from controller.aws import clients as rk_aws
from controller.core.errors import RetryableError
from controller.engine.reconcile import reconcile
from tests.e2e import reliability as rl
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.helpers import EC2_TRUST, role

pytestmark = pytest.mark.e2e

OBJECTS = 200 if rl.FULL else 40
FAULT_RATE = 0.3
OUTAGE_SECONDS = 10.0
SEED = 9
# A fault costs at most a few extra attempts; a retry storm costs far more than this.
MAX_CALL_RATIO = 3.0
# Each step at 30% faults runs at the pace adaptive retry allows (about 9 calls/s here).
STEP_TIMEOUT = 900 if rl.FULL else 300


def workload(prefix: str, version: int) -> list[dict[str, Any]]:
    """Roles and users (every 4th), every 5th role with an instance profile."""
    objects = []
    for i in range(OBJECTS):
        name = f"{prefix}-{i:03d}"
        if i % 4 == 3:
            objects.append(rl.user_object(name, name, version))
        else:
            objects.append(rl.role_object(name, name, version, instanceProfile=i % 5 == 0))
    return objects


def run_lifecycle(
    crds: Cluster, namespace: str, iam: Any, proxy: rl.RecordingProxy, prefix: str
) -> dict[str, Any]:
    """Create, update, delete the workload; check AWS after each step; return the figures."""
    figures: dict[str, Any] = {}
    started = proxy.mark()
    v1 = workload(prefix, 1)
    kube.apply_all(crds, namespace, v1)
    figures["create_s"] = rl.wait_converged(crds, namespace, v1, timeout=STEP_TIMEOUT)
    check_aws(crds, namespace, iam, prefix, v1)
    v2 = workload(prefix, 2)
    kube.apply_all(crds, namespace, v2)
    figures["update_s"] = rl.wait_converged(crds, namespace, v2, timeout=STEP_TIMEOUT)
    check_aws(crds, namespace, iam, prefix, v2)
    kube.delete_all(crds, namespace, v2)
    figures["delete_s"] = rl.wait_converged(crds, namespace, [], gone=v2, timeout=STEP_TIMEOUT)
    leaked = rl.account_state(iam, prefix)
    assert not leaked, f"left in AWS after delete: {sorted(leaked)}"
    calls = proxy.requests(since=started)
    roles = sum(1 for o in v1 if o["kind"] == "IAMRole")
    users = len(v1) - roles
    created = {
        "CreateRole": proxy.succeeded("CreateRole", started),
        "CreateUser": proxy.succeeded("CreateUser", started),
        "DeleteRole": proxy.succeeded("DeleteRole", started),
        "DeleteUser": proxy.succeeded("DeleteUser", started),
    }
    # Each entity created once and deleted once: a second successful create would mean the
    # operator deleted and recreated it (or lost track and made another under a new name).
    assert created == {"CreateRole": roles, "CreateUser": users, "DeleteRole": roles,
                       "DeleteUser": users}, created
    duration = proxy.mark() - started
    figures.update(
        objects=len(v1),
        calls=len(calls),
        calls_per_object=round(len(calls) / len(v1), 2),
        writes=sum(1 for r in calls if r.is_write),
        peak_calls_per_s=rl.peak_rate(calls),
        mean_calls_per_s=round(len(calls) / duration, 1),
        injected=sum(1 for r in calls if r.fault),
        injected_by_kind=dict(sorted(proxy.injected.items())),
        successful_creates=created,
    )
    return figures


def check_aws(crds: Cluster, namespace: str, iam: Any, prefix: str, objects: list[dict[str, Any]]) -> None:
    """AWS holds exactly the declared entities, each with the id its object's status records."""
    live = kube.list_objects(crds, namespace)
    uids = {name: obj["metadata"]["uid"] for (_, name), obj in live.items()}
    have = rl.account_state(iam, prefix)
    want = rl.expected_state(objects, namespace, uids, rl.cluster_id(crds))
    problems = rl.state_diff(want, rl.without_ids(have))
    assert not problems, problems[:10]
    for obj in objects:
        item = live[(kube.plural(obj), obj["metadata"]["name"])]
        field = "roleId" if obj["kind"] == "IAMRole" else "userId"
        assert item["status"][field] == have[rl.aws_key(obj)]["id"], obj["metadata"]["name"]


def test_objects_converge_under_aws_faults(crds: Cluster, namespace: str, aws: Aws) -> None:
    iam = aws.console()
    proxy = rl.RecordingProxy.for_server(aws.server)
    tag = secrets.token_hex(3)
    try:
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace) as op:
            started = proxy.mark()
            baseline = run_lifecycle(crds, namespace, iam, proxy, f"rk-base-{tag}")
            writes = sorted({r.action for r in proxy.requests(since=started) if r.is_write})
            proxy.inject(FAULT_RATE, kinds=rl.ALL_FAULTS, seed=SEED)
            # Beside the random mix, every kind of write the workload makes loses its first
            # answer after AWS applied it: the retry meets its own result, every time.
            proxy.fail_next(writes, "lost-reply")
            faulted = run_lifecycle(crds, namespace, iam, proxy, f"rk-fault-{tag}")
            proxy.clear_faults()
            assert not any(proxy.script.values()), f"writes that never lost an answer: {proxy.script}"
            faulted["lost_first_answer_of"] = writes
            outage = total_outage(crds, namespace, iam, proxy, f"rk-outage-{tag}")
            assert op.process is not None and op.process.poll() is None, "operator exited"
    finally:
        proxy.stop()
    rl.report("aws-faults", {"baseline": baseline, "faults": faulted, "outage": outage,
                             "fault_rate": FAULT_RATE, "seed": SEED})
    assert faulted["injected"] > 0.2 * faulted["calls"], "faults were not injected"
    ratio = faulted["calls_per_object"] / baseline["calls_per_object"]
    assert ratio <= MAX_CALL_RATIO, f"{ratio:.2f}x the fault-free calls per object"
    # Injected failures are answered instantly, so a client that retried without waiting would
    # exceed the rate moto itself can serve; backoff keeps it at or below the fault-free peak.
    assert faulted["peak_calls_per_s"] <= 1.5 * baseline["peak_calls_per_s"], (faulted, baseline)


def total_outage(crds: Cluster, namespace: str, iam: Any, proxy: rl.RecordingProxy,
                 prefix: str) -> dict[str, Any]:
    """Every IAM call throttled for OUTAGE_SECONDS while creates are pending."""
    objects = workload(prefix, 1)
    proxy.inject(1.0, kinds=("throttle",), seconds=OUTAGE_SECONDS, seed=SEED)
    started = proxy.mark()
    kube.apply_all(crds, namespace, objects)
    time.sleep(OUTAGE_SECONDS)
    during = proxy.requests(since=started, until=started + OUTAGE_SECONDS)
    recovered = rl.wait_converged(crds, namespace, objects, timeout=STEP_TIMEOUT)
    kube.delete_all(crds, namespace, objects)
    rl.wait_converged(crds, namespace, [], gone=objects, timeout=STEP_TIMEOUT)
    assert not rl.account_state(iam, prefix)
    figures = {
        "objects": len(objects),
        "seconds": OUTAGE_SECONDS,
        "calls_during": len(during),
        "calls_per_s_during": round(len(during) / OUTAGE_SECONDS, 1),
        "peak_calls_per_s_during": rl.peak_rate(during),
        "converged_after_outage_s": round(recovered, 1),
    }
    # Without backoff 16 workers would retry instantly answered throttles thousands of times in
    # 10 s; with it the whole operator makes fewer calls than there are objects waiting.
    assert len(during) <= len(objects), figures
    return figures


def test_client_survives_spent_quota_plain_503_and_lost_answers(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = rl.RecordingProxy.for_server(aws.server)
    try:
        for key, value in proxy.env(aws.server).items():
            monkeypatch.setenv(key, value)
        clients = rk_aws.connect(boto3.session.Session())
        iam = aws.console()
        name = f"rk-client-{secrets.token_hex(3)}"
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
        # As if botocore's retry quota were spent (a sustained error rate drains it within a
        # few dozen calls): botocore itself retries nothing now.
        monkeypatch.setattr(RetryQuotaChecker, "acquire_retry_quota", lambda *_: False)
        for _ in range(3):
            proxy.fail_next(["GetRole"], "server-error", times=2)
            clients.iam.get_role(RoleName=name)
        proxy.fail_next(["GetRole"], "unavailable", times=2)  # "Service Unavailable" as text
        clients.iam.get_role(RoleName=name)
        iam.delete_role(RoleName=name)

        desired = role(f"{name}-ec2", instanceProfile=True)
        proxy.fail_next(["CreateRole", "AddRoleToInstanceProfile"], "lost-reply")
        with pytest.raises(RetryableError, match="EntityAlreadyExists"):
            reconcile(clients, desired)  # the retry met the role the lost answer created
        outcome = reconcile(clients, desired)
        assert outcome.ready, outcome.verdict
        assert proxy.succeeded("CreateRole") == 1
        profile = iam.get_instance_profile(InstanceProfileName=desired.aws_name)["InstanceProfile"]
        assert [r["RoleName"] for r in profile["Roles"]] == [desired.aws_name]
        assert not any(proxy.script.values())
    finally:
        proxy.stop()
