"""Reliability under Kubernetes faults: kube-apiserver and etcd restarted under a working operator.

Covers, on a private control plane (restarts would break every other test on the session one):
changes applied just before kube-apiserver goes down, while it is down the operator cannot watch,
patch status or release finalizers; after it is back (same port, certificates and etcd) the
operator's watches reconnect by themselves and the pending creates, updates and deletes complete,
and so do changes made only after the restart (proof the watch, not only a re-list, works). The
same with etcd restarted (the apiserver stays up but cannot serve), and with both restarted in a
row (and, in the full run, kube-apiserver down for 100 s, longer than Kopf's own request retries
last). After each round every object is Ready for its latest generation, no deleted object is held
by a finalizer, the operator process never exited, and AWS holds exactly the declared entities.
Standard run: 20 objects, 3 rounds; RK_RELIABILITY_FULL=1: 100 objects.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e import reliability as rl
from tests.e2e.conftest import REPO, Aws
from tests.harness import kube
from tests.harness.envtest import Cluster, ControlPlane

pytestmark = pytest.mark.e2e

OBJECTS = 100 if rl.FULL else 20


def make(prefix: str, index: int, version: int) -> dict[str, Any]:
    name = f"{prefix}-{index:03d}"
    if index % 4 == 3:
        return rl.user_object(name, name, version)
    return rl.role_object(name, name, version)


class Workload:
    """The declared objects of one namespace and a way to change a slice of them."""

    def __init__(self, plane: Cluster, namespace: str, prefix: str) -> None:
        self.plane, self.namespace, self.prefix = plane, namespace, prefix
        self.versions = dict.fromkeys(range(OBJECTS), 1)
        self.deleted: list[dict[str, Any]] = []
        self.next = OBJECTS

    def declared(self) -> list[dict[str, Any]]:
        return [make(self.prefix, i, v) for i, v in sorted(self.versions.items())]

    def churn(self, updates: int, creates: int, deletes: int) -> None:
        """Delete the newest `deletes`, update the oldest `updates`, add `creates`."""
        victims = sorted(self.versions)[len(self.versions) - deletes :]
        gone = [make(self.prefix, i, self.versions.pop(i)) for i in victims]
        self.deleted.extend(gone)
        for i in sorted(self.versions)[:updates]:
            self.versions[i] += 1
        for _ in range(creates):
            self.versions[self.next] = 1
            self.next += 1
        kube.apply_all(self.plane, self.namespace, self.declared())
        kube.delete_all(self.plane, self.namespace, gone)


def test_watches_recover_from_apiserver_and_etcd_restarts(aws: Aws) -> None:
    iam = aws.console()
    prefix = f"rk-kube-{secrets.token_hex(3)}"
    proxy = rl.RecordingProxy.for_server(aws.server)
    figures: dict[str, Any] = {"objects": OBJECTS}
    try:
        with ControlPlane() as plane:
            plane.kubectl("apply", "-f", str(REPO / "crds"))
            kube.wait_established(plane, *(f"{p}.iam.rolekeeper.dev" for p in (
                "iamroles", "iamusers", "iampolicies", "iamguardrails")))
            namespace = plane.create_namespace("rk-kube-faults")
            work = Workload(plane, namespace, prefix)
            with rl.operator(plane.kubeconfig, proxy.env(aws.server), namespace) as op:
                kube.apply_all(plane, namespace, work.declared())
                figures["initial_s"] = round(wait(work), 1)
                rounds: dict[str, Callable[[], None]] = {
                    "apiserver": plane.restart_apiserver,
                    "etcd": plane.restart_etcd,
                    "etcd+apiserver": lambda: (plane.restart_etcd(), plane.restart_apiserver()),
                }
                if rl.FULL:  # longer than Kopf's 9 request attempts (about a minute) last
                    rounds["apiserver-down-100s"] = lambda: (
                        plane.apiserver.stop(), time.sleep(100), plane.restart_apiserver()
                    )
                for name, restart in rounds.items():
                    # Pending work the operator has not finished when the API goes away: AWS
                    # answers slowly for a few seconds, so reconciles are mid-way...
                    proxy.inject(1.0, kinds=("slow",), seconds=4)
                    work.churn(updates=OBJECTS // 4, creates=OBJECTS // 10, deletes=OBJECTS // 10)
                    figures[f"{name}_pending_at_stop"] = len(
                        rl.lagging(plane, namespace, work.declared(), work.deleted)
                    )
                    assert figures[f"{name}_pending_at_stop"], "nothing was pending"
                    down = time.monotonic()
                    restart()
                    figures[f"{name}_down_s"] = round(time.monotonic() - down, 1)
                    # ... and work that only a recovered watch can see.
                    work.churn(updates=OBJECTS // 10, creates=OBJECTS // 20, deletes=OBJECTS // 20)
                    figures[f"{name}_converged_after_restart_s"] = round(wait(work), 1)
                    check_aws(plane, namespace, iam, work)
                assert op.process is not None and op.process.poll() is None, "operator exited"
                assert op.starts == 1
                log = op.log_path.read_text(errors="replace")
                # Kopf's own retries of watches, patches and events while the API was away.
                figures["kubernetes_requests_retried"] = log.count("failed; will retry")
                figures["kubernetes_requests_given_up"] = log.count("failed; escalating")
    finally:
        proxy.stop()
    rl.report("kube-faults", figures)


def wait(work: Workload) -> float:
    return rl.wait_converged(work.plane, work.namespace, work.declared(), work.deleted,
                             timeout=180)


def check_aws(plane: Cluster, namespace: str, iam: Any, work: Workload) -> None:
    uids = rl.uids(plane, namespace)
    want = rl.expected_state(work.declared(), namespace, uids, rl.cluster_id(plane))
    problems = rl.state_diff(want, rl.without_ids(rl.account_state(iam, work.prefix)))
    assert not problems, problems[:10]
