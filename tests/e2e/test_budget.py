"""The account-wide IAM call budget in the running operator: `rolekeeper run
--aws-max-calls-per-second R --aws-call-burst B` against a real API server and the moto server
behind the recording proxy.

Covers: 20 broken IAMRoles (every CreateRole of theirs answered 500 ServiceFailure, so each
retries: botocore's attempts, then Kopf's backoff) storm the budget, and a healthy IAMRole
applied after them still goes Ready; the IAM requests AWS sees never exceed R x T + B in any
T-second window, while the storm keeps the budget saturated (the busiest window holds at least
half the bound); the flags reach the operator's settings (the budget's metrics show R, and
waits).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping

import pytest

from tests.e2e import reliability as rl
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.moto import ACCOUNT_ID
from tests.harness.util import most_in_window

pytestmark = pytest.mark.e2e

RATE, BURST = 3.0, 3
BROKEN = 20
WINDOW = 10.0  # seconds of each window checked against R x T + B
STS = ("GetCallerIdentity", "AssumeRole")  # not IAM: no budget


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name:
            have = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                return float(match[3])
    return None


def test_a_healthy_object_goes_ready_through_a_storm_of_broken_ones(
    crds: Cluster, namespace: str, aws: Aws
) -> None:
    prefix = f"rk-budget-{secrets.token_hex(3)}"
    broken = f"{prefix}-broken"
    proxy = rl.RecordingProxy.for_server(aws.server)

    def fail_broken_creates(action: str, params: Mapping[str, list[str]]) -> tuple[int, str] | None:
        if action == "CreateRole" and params.get("RoleName", [""])[0].startswith(broken):
            return rl.iam_error("ServiceFailure", "injected for the budget test", 500)
        return None

    proxy.rules.append(fail_broken_creates)
    storm = [rl.role_object(f"{broken}-{i:02d}", f"{broken}-{i:02d}") for i in range(BROKEN)]
    healthy = rl.role_object(f"{prefix}-healthy", f"{prefix}-healthy")
    flags = ["--aws-max-calls-per-second", str(RATE), "--aws-call-burst", str(BURST)]
    try:
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace, extra_args=flags) as op:
            start = proxy.mark()
            kube.apply_all(crds, namespace, storm)
            time.sleep(10)  # the storm is on: every worker busy retrying a broken create
            applied = proxy.mark()
            kube.apply(crds, namespace, healthy)
            ready_after = rl.wait_converged(crds, namespace, [healthy], timeout=300)
            end = proxy.mark()
            text = op.metrics()
    finally:
        proxy.stop()
    iam = [r for r in proxy.requests(since=start, until=end) if r.action not in STS]
    creates = [r for r in iam if r.action == "CreateRole" and r.entity.startswith(broken)]
    print(
        f"BUDGET healthy Ready {ready_after:.1f}s after apply; {len(iam)} IAM requests in "
        f"{end - start:.1f}s, {len(creates)} broken CreateRole attempts; most in {WINDOW:g}s: "
        f"{most_in_window([r.at for r in iam], WINDOW)} (bound {RATE * WINDOW + BURST:g})"
    )
    # The storm was real: far more broken attempts than one per object...
    assert len(creates) >= 2 * BROKEN
    # ...pushing against the budget, yet AWS never saw more than the budget in any window.
    # The proxy stamps a request when moto has answered it, so a window of stamps may hold
    # slots up to one answer's latency more than WINDOW apart: one second of slack for that.
    busiest = most_in_window([r.at for r in iam], WINDOW)
    assert (RATE * WINDOW + BURST) / 2 <= busiest <= RATE * (WINDOW + 1) + BURST
    assert end - applied >= ready_after  # Ready measured after the storm began
    account = {"account": ACCOUNT_ID}
    assert sample(text, "rolekeeper_aws_budget_calls_per_second", **account) == RATE
    assert (sample(text, "rolekeeper_aws_budget_waits_total", **account) or 0) > 0
    assert (sample(text, "rolekeeper_aws_budget_wait_seconds_total", **account) or 0) > 0
