"""Reliability under operator crashes: SIGKILL at seeded random moments of a create/update/delete burst.

Covers: the operator is killed (no shutdown code runs) while creates, spec updates and deletes
are in flight, and restarted at once, again and again; after the last restart every object is
Ready for its latest generation, no deleted object is held by its finalizer, AWS holds exactly
the declared entities for the test's name prefix (names, trust, policies, inline documents, tags
with the live uid, instance profiles) and nothing of the deleted ones, and no entity was created
twice (at most one successful CreateRole/CreateUser per name, counted at the proxy).
Standard run: 40 objects, 6 kills; RK_RELIABILITY_FULL=1: 200 objects, 20 kills. The schedule
(what changes, when each kill lands) comes from SEED, so a failing run can be replayed.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import Counter
from typing import Any

import pytest

from tests.e2e import reliability as rl
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster

pytestmark = pytest.mark.e2e

OBJECTS = 200 if rl.FULL else 40
KILLS = 20 if rl.FULL else 6
SEED = 20261129
# About 60% of the initial count is deleted over the burst, and as many new objects created.
CHURN = max(2, OBJECTS * 3 // (5 * KILLS))


def make(prefix: str, index: int, version: int) -> dict[str, Any]:
    name = f"{prefix}-{index:03d}"
    if index % 4 == 3:
        return rl.user_object(name, name, version)
    return rl.role_object(name, name, version, instanceProfile=index % 5 == 0)


def test_sigkill_during_burst_loses_nothing(crds: Cluster, namespace: str, aws: Aws) -> None:
    rng = random.Random(SEED)
    iam = aws.console()
    prefix = f"rk-crash-{secrets.token_hex(3)}"
    proxy = rl.RecordingProxy.for_server(aws.server)
    declared = {i: make(prefix, i, 1) for i in range(OBJECTS)}
    versions = dict.fromkeys(declared, 1)
    deleted: list[dict[str, Any]] = []
    next_index = OBJECTS
    pending_at_kill: list[int] = []
    try:
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace) as op:
            # Half of the AWS answers take a second during the burst, so each reconcile is
            # spread over seconds and a kill lands between its calls, not between reconciles.
            proxy.inject(0.5, kinds=("slow",), seed=SEED)
            proxy.faults.slow_seconds = 1.0
            kube.apply_all(crds, namespace, declared.values())
            for kill in range(KILLS):
                if kill:  # the first kill lands in the initial creates
                    changed = []
                    for i in rng.sample(sorted(declared), k=min(len(declared), OBJECTS // 5)):
                        versions[i] += 1
                        declared[i] = make(prefix, i, versions[i])
                        changed.append(declared[i])
                    for _ in range(CHURN):
                        declared[next_index] = make(prefix, next_index, 1)
                        versions[next_index] = 1
                        changed.append(declared[next_index])
                        next_index += 1
                    gone = [declared.pop(i) for i in rng.sample(sorted(declared), k=CHURN)]
                    deleted.extend(gone)
                    kube.apply_all(crds, namespace, changed)
                    kube.delete_all(crds, namespace, gone)
                time.sleep(rng.uniform(0.5, 2.5))
                op.kill()
                pending_at_kill.append(
                    len(rl.lagging(crds, namespace, declared.values(), deleted))
                )
                op.start()
            proxy.clear_faults()
            converged = rl.wait_converged(crds, namespace, declared.values(), deleted, timeout=240)
            assert op.starts == KILLS + 1
    finally:
        proxy.stop()
    live = kube.list_objects(crds, namespace)
    uids = {name: obj["metadata"]["uid"] for (_, name), obj in live.items()}
    want = rl.expected_state(declared.values(), namespace, uids, rl.cluster_id(crds))
    problems = rl.state_diff(want, rl.without_ids(rl.account_state(iam, prefix)))
    assert not problems, problems[:10]
    creates = Counter(
        r.entity for r in proxy.requests() if r.action in ("CreateRole", "CreateUser") and r.aws_status == 200
    )
    twice = {name: n for name, n in creates.items() if n > 1}
    assert not twice, f"created more than once: {twice}"
    rl.report("crashes", {
        "seed": SEED,
        "objects_initial": OBJECTS,
        "objects_ever": next_index,
        "objects_final": len(declared),
        "deleted": len(deleted),
        "updates": sum(v - 1 for v in versions.values()),
        "kills": KILLS,
        "pending_objects_at_each_kill": pending_at_kill,
        "converged_after_last_restart_s": round(converged, 1),
        "aws_calls": len(proxy.requests()),
    })
    # The kills must land in the middle of work, or the test proves nothing.
    assert all(pending_at_kill), pending_at_kill
