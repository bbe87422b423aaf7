"""Two operator replicas with Kopf peering, as the Deployment runs them, on the local control plane.

Covers: with the Deployment's peering arguments (`--peering=rolekeeper --priority=random`,
its peering lifetime) exactly one of two processes works — only its AWS endpoint sees IAM
calls, only its metrics count reconciles — while the other waits; SIGKILL of the active one
makes the standby take over within the peering lifetime (the time is measured and printed);
the survivor's drift timers run; nothing is applied twice (one CreateRole and one
AttachRolePolicy per role across both, plus the one drift correction); and two replicas with
*equal* priorities both pause and serve nobody, which is why the Deployment draws a random one.
Each process talks to AWS through its own counting proxy, so calls are attributed per replica.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import Aws
from tests.e2e.test_deploy import deployment_args, install_crds, samples
from tests.harness import kube
from tests.harness.awsproxy import AwsProxy
from tests.harness.envtest import Cluster
from tests.harness.operator import Operator
from tests.harness.util import until
from tests.helpers import S3_READ, iam_role

pytestmark = pytest.mark.e2e

DRIFT_INTERVAL = 3.0
PEERING = "rolekeeper"


@dataclass
class Replica:
    """One operator process and the proxy that counts its IAM calls."""

    name: str
    operator: Operator
    proxy: AwsProxy

    def iam_calls(self, after: float = float("-inf")) -> list[tuple[float, str]]:
        """(time, action) of its IAM calls; STS GetCallerIdentity at startup is not one."""
        return [(t, a) for t, a in self.proxy.timeline if a != "GetCallerIdentity" and t > after]

    def log(self) -> str:
        return self.operator.log_path.read_text(errors="replace")

    def paused(self) -> bool:
        """Kopf starts a peering operator paused and logs only the changes from there."""
        text = self.log()
        return text.rfind("Pausing ") >= text.rfind("Resuming operations")


@pytest.fixture
def peered(crds: Cluster) -> str:
    """A fresh namespace with the KopfPeering object namespaced operators meet in."""
    install_crds(crds)
    ns = crds.create_namespace("rk-ha")
    crds.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}))
    return ns


def start_replicas(crds: Cluster, aws: Aws, ns: str, priorities: tuple[str, str],
                   start: bool = True) -> list[Replica]:
    # The Deployment's arguments, scoped to one namespace so the session operator is not met.
    args = [a for a in deployment_args(crds) if a != "--all-namespaces"]
    replicas = []
    for name, priority in zip(("replica-a", "replica-b"), priorities, strict=True):
        proxy = AwsProxy(aws.server.port).start()
        env = {**aws.server.env, "AWS_ENDPOINT_URL_IAM": proxy.url, "AWS_ENDPOINT_URL_STS": proxy.url}
        op = Operator(crds.kubeconfig, env, namespaces=[ns], drift_interval=DRIFT_INTERVAL,
                      extra_args=[*args, f"--priority={priority}"],
                      extra_env={"POD_ID": name})  # Kopf's peer identity, as in the Deployment
        op.argv.remove("--standalone")
        replicas.append(Replica(name, op, proxy))
    for replica in replicas if start else ():
        replica.operator.start()
    return replicas


def stop_replicas(replicas: list[Replica]) -> None:
    for replica in replicas:
        replica.operator.stop()
        replica.proxy.stop()


def peers(crds: Cluster, ns: str) -> dict[str, Any]:
    body = json.loads(crds.kubectl("get", "kopfpeering", PEERING, "-n", ns, "-o", "json").stdout)
    return dict(body.get("status") or {})


def role(name: str, role_name: str) -> dict[str, Any]:
    return iam_role(name, role_name, managedPolicies=[S3_READ])


def test_one_replica_works_and_the_other_takes_over_when_it_is_killed(
    crds: Cluster, aws: Aws, peered: str
) -> None:
    ns = peered
    lifetime = int(next(a for a in deployment_args(crds) if a.startswith("--peering-lifetime="))
                   .split("=")[1])
    replicas = start_replicas(crds, aws, ns, ("random", "random"))
    try:
        live = until(lambda: (p := peers(crds, ns)) and len(p) == 2 and p, 30,
                     "both replicas in the peering object")
        active, standby = sorted(replicas, key=lambda r: live[r.name]["priority"], reverse=True)
        until(lambda: not active.paused(), 30, f"{active.name} working")
        assert standby.paused()
        names = [f"rk-{secrets.token_hex(4)}-ha{i}" for i in range(3)]
        kube.apply(crds, ns, role("one", names[0]), role("two", names[1]))
        kube.wait_ready(crds, ns, "iamrole", "one")
        kube.wait_ready(crds, ns, "iamrole", "two")
        time.sleep(DRIFT_INTERVAL * 2)  # drift timers fire too: only the active one's

        assert active.iam_calls() and standby.iam_calls() == []
        assert samples(standby.operator.metrics(), "rolekeeper_reconcile_total") == []

        killed_at = time.monotonic()
        active.operator.stop(signal.SIGKILL)
        kube.apply(crds, ns, role("three", names[2]))
        kube.wait_ready(crds, ns, "iamrole", "three", timeout=lifetime + 30)
        ready_after = time.monotonic() - killed_at
        first_call = standby.iam_calls()[0][0] - killed_at
        print(f"\ntakeover after SIGKILL: first IAM call of the standby {first_call:.1f}s, "
              f"new role Ready {ready_after:.1f}s (peering lifetime {lifetime}s)")
        assert first_call <= lifetime + 5
        assert "Resuming operations" in standby.log()

        # The survivor's drift timers run: a console edit of a role it never handled is reverted.
        iam = aws.console()
        iam.detach_role_policy(RoleName=names[0], PolicyArn=S3_READ)
        until(lambda: iam.list_attached_role_policies(RoleName=names[0])["AttachedPolicies"],
              DRIFT_INTERVAL * 3 + 10, "drift reverted by the survivor")

        assert [a for t, a in active.iam_calls() if t > killed_at] == []
        assert active.proxy.writes() == {"CreateRole": 2, "AttachRolePolicy": 2}
        assert standby.proxy.writes() == {"CreateRole": 1, "AttachRolePolicy": 2}
    finally:
        stop_replicas(replicas)


def test_equal_priorities_pause_both_replicas(
    crds: Cluster, aws: Aws, peered: str
) -> None:
    ns = peered
    replicas = start_replicas(crds, aws, ns, ("7", "7"))
    try:
        for replica in replicas:
            until(lambda r=replica: "conflicting operators with the same priority" in r.log(),
                  30, f"{replica.name} seeing its equal")
        kube.apply(crds, ns, role("nobody", f"rk-{secrets.token_hex(4)}-nobody"))
        time.sleep(DRIFT_INTERVAL * 2)

        assert [r.iam_calls() for r in replicas] == [[], []]
        assert all(r.paused() for r in replicas)
        # Only the CRD's default (observedGeneration 0): no replica wrote anything.
        assert kube.get(crds, ns, "iamrole", "nobody")["status"] == {"observedGeneration": 0}
    finally:
        stop_replicas(replicas)


def test_a_replica_paused_by_a_newcomer_stops_its_sweeps(
    crds: Cluster, aws: Aws, peered: str
) -> None:
    """The sweeps and their checks run outside Kopf's handlers, so Kopf's pause does not stop
    them by itself: a replica that was working, then paused for a peer of higher priority, must
    leave drift to that peer (operator/peering.py)."""
    ns = peered
    low, high = start_replicas(crds, aws, ns, ("10", "20"), start=False)
    try:
        low.operator.start()
        until(lambda: not low.paused() and "Resuming operations" in low.log(), 30,
              "the first replica working")
        name = f"rk-{secrets.token_hex(4)}-pause"
        kube.apply(crds, ns, role("paused", name))
        kube.wait_ready(crds, ns, "iamrole", "paused")
        time.sleep(DRIFT_INTERVAL * 1.5)  # its drift sweep has started
        high.operator.start()
        until(low.paused, 30, f"{low.name} pausing for {high.name}")
        until(lambda: "Resuming operations" in high.log(), 30, f"{high.name} working")
        paused_at = time.monotonic() + 1.0  # a check already running may finish
        time.sleep(1.0)
        iam = aws.console()
        iam.detach_role_policy(RoleName=name, PolicyArn=S3_READ)
        until(lambda: iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"],
              DRIFT_INTERVAL * 3 + 10, "drift reverted by the replica now working")
        time.sleep(DRIFT_INTERVAL * 2)
        assert [a for t, a in low.iam_calls() if t > paused_at] == [], low.proxy.timeline
        assert "AttachRolePolicy" in [a for t, a in high.iam_calls() if t > paused_at]
    finally:
        stop_replicas([low, high])

