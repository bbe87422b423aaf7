"""Reliability under concurrency: spec updates racing drift sweeps on the same objects.

Covers: 50 objects (200 with RK_RELIABILITY_FULL=1) get several successive spec versions in quick
succession while the operator's drift timer fires every 2 s (so sweeps run against snapshots
taken before, during and after each update) and while some roles are also changed by hand in
the console. Afterwards every object is Ready for its latest generation, AWS matches the *last*
spec of every object exactly (no older version put back by a sweep holding a stale spec or a
stale snapshot), the hand-made drift is gone, sweeps demonstrably ran during the updates, and in
the following quiet period the operator makes no write at all (no fight between update and sweep).
"""

from __future__ import annotations

import contextlib
import secrets
import time

import pytest

from tests.e2e import reliability as rl
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.util import Timeout, until

pytestmark = pytest.mark.e2e

OBJECTS = 200 if rl.FULL else 50
ROUNDS = 4
DRIFT = 2.0
TAMPERED = OBJECTS // 5


def test_updates_racing_drift_sweeps_end_at_the_last_spec(
    crds: Cluster, namespace: str, aws: Aws
) -> None:
    iam = aws.console()
    prefix = f"rk-race-{secrets.token_hex(3)}"
    names = [f"{prefix}-{i:03d}" for i in range(OBJECTS)]
    proxy = rl.RecordingProxy.for_server(aws.server)
    try:
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace, drift_interval=DRIFT):
            kube.apply_all(crds, namespace, [rl.role_object(n, n, 1) for n in names])
            rl.wait_converged(crds, namespace, [rl.role_object(n, n, 1) for n in names], timeout=120)
            started = proxy.mark()
            for version in range(2, ROUNDS + 2):
                latest = [rl.role_object(n, n, version) for n in names]
                kube.apply_all(crds, namespace, latest)
                for n in names[:TAMPERED]:  # a human edits some roles at the same moment
                    iam.tag_role(RoleName=n, Tags=[{"Key": "version", "Value": "by-hand"}])
                    iam.attach_role_policy(RoleName=n, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
                time.sleep(DRIFT * 0.75)
            last_round = proxy.mark()
            converged = rl.wait_converged(crds, namespace, latest, timeout=180)
            want = rl.expected_state(latest, namespace, rl.uids(crds, namespace),
                                   rl.cluster_id(crds))
            # The last round's hand edits are put back by the next sweeps, after status is Ready.
            problems: list[str] = []

            def matches() -> bool:
                problems[:] = rl.state_diff(want, rl.without_ids(rl.account_state(iam, prefix)))
                return not problems

            with contextlib.suppress(Timeout):
                until(matches, last_round + 60 - time.monotonic())
            assert not problems, problems[:10]
            matched = proxy.mark() - last_round
            window = (started, proxy.mark())
            time.sleep(3 * DRIFT)
            quiet = [r for r in proxy.requests(since=window[1]) if r.is_write]
            assert not quiet, f"writes after convergence: {rl.per_action(quiet)}"
            assert not rl.state_diff(want, rl.without_ids(rl.account_state(iam, prefix)))
            still = rl.lagging(crds, namespace, latest)
            assert not still, still[:5]
            kube.delete_all(crds, namespace, latest)
            rl.wait_converged(crds, namespace, [], gone=latest, timeout=120)
    finally:
        proxy.stop()
    during = proxy.requests(*window)
    sweeps = [r for r in during if r.action == "GetAccountAuthorizationDetails"]
    per_entity = [r for r in during if r.action == "GetRole"]
    rl.report("concurrency", {
        "objects": OBJECTS,
        "rounds": ROUNDS,
        "tampered_per_round": TAMPERED,
        "drift_interval_s": DRIFT,
        "snapshot_reads_during_updates": len(sweeps),
        "ready_after_last_round_s": round(converged, 1),
        "aws_matched_after_last_round_s": round(matched, 1),
        "writes_during_updates": sum(1 for r in during if r.is_write),
        "get_role_during_updates": len(per_entity),
    })
    # The race only happened if sweeps ran while updates were being applied.
    assert len(sweeps) >= 2, rl.per_action(during)
    assert not rl.account_state(iam, prefix)
