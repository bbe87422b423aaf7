"""`make bench`: start a control plane, moto, two counting proxies and the operator; measure; report.

Environment knobs (defaults in brackets):
  BENCH_SIZES            object counts to measure [100,1000]; BENCH_SIZES=20 is a quick check
  BENCH_DRIFT_INTERVAL   the operator's --drift-interval during the run, seconds [20]
  BENCH_WORKERS          the operator's --workers, also the baseline's thread count [16]
  BENCH_IDLE_INTERVALS   drift intervals observed for the no-drift / idle figures [3]
  BENCH_DRIFT_SAMPLES    least number of out-of-band changes timed per size [8]
  BENCH_AWS_BUDGET       the operator's --aws-max-calls-per-second [0: off, so the operator's own
                         overhead is measured against the unbudgeted baselines; with the default
                         10/s budget, N creates take at least 4N/10 s by design]
  BENCH_THROUGHPUT_CALLS GetRole calls per moto throughput probe [500]
  BENCH_ADMISSION_REQUESTS AdmissionReview POSTs to the webhook, 10 KB policy (0: skip) [200]
  BENCH_OUTPUT           JSON results [bench/results/latest.json]

Layout: one moto server; the operator talks to it through proxy "op", the baselines and the
ACK-style poll through proxy "bench", and out-of-band changes (a human in the console) go to moto
directly, so each tally holds exactly one party's calls. Each size gets a fresh namespace, a
fresh moto account and a fresh operator process, so sizes do not inherit each other's state.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from bench import admission, catalogue, motoserver, proc, report, workload
from bench.cluster import Api, delta
from tests.harness import moto
from tests.harness.awsproxy import AwsProxy
from tests.harness.envtest import ControlPlane, ensure_binaries
from tests.harness.operator import Operator
from tests.helpers import S3_READ

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT_ACTIONS = frozenset({"GetAccountAuthorizationDetails", "ListRoles"})
STARTUP_SETTLE = 10.0  # seconds after /healthz before the N=0 footprint is read
DEFAULT_DRIFT_INTERVAL = 60.0  # `rolekeeper run`'s default, used while converging
RESUME_QUIET = 5.0  # a restart is over once no AWS call was made for this long
AWS_GAAD_PAGE = 100  # real AWS's default GetAccountAuthorizationDetails page (moto: one page)
AWS_LIST_ROLES_PAGE = 1000  # ListRoles honours the operator's MaxItems=1000


class Proxy(AwsProxy):
    """The harness's counting proxy with Nagle's algorithm off on its client sockets.

    The handler writes headers and body in two sends; with Nagle on, the body waits for the
    client's delayed ACK (~40 ms), capping a sequential client at ~20 calls/s through the proxy
    against ~100+ direct, which would make every sequential figure measure the proxy instead.
    """

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        handler = super()._handler_class()
        handler.disable_nagle_algorithm = True
        return handler


@dataclass(frozen=True)
class Settings:
    """What to measure and how (from BENCH_* environment variables)."""

    sizes: tuple[int, ...] = (100, 1000)
    drift_interval: float = 20.0
    workers: int = 16
    idle_intervals: int = 3
    drift_samples: int = 8
    aws_budget: float = 0.0
    throughput_calls: int = 500
    admission_requests: int = 200
    output: Path = REPO / "bench" / "results" / "latest.json"

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        default = cls()
        sizes = env.get("BENCH_SIZES")
        return cls(
            sizes=tuple(int(s) for s in sizes.split(",") if s.strip()) if sizes else default.sizes,
            drift_interval=float(env.get("BENCH_DRIFT_INTERVAL", default.drift_interval)),
            workers=int(env.get("BENCH_WORKERS", default.workers)),
            idle_intervals=int(env.get("BENCH_IDLE_INTERVALS", default.idle_intervals)),
            drift_samples=int(env.get("BENCH_DRIFT_SAMPLES", default.drift_samples)),
            aws_budget=float(env.get("BENCH_AWS_BUDGET", default.aws_budget)),
            throughput_calls=int(env.get("BENCH_THROUGHPUT_CALLS", default.throughput_calls)),
            admission_requests=int(
                env.get("BENCH_ADMISSION_REQUESTS", default.admission_requests)
            ),
            output=Path(env.get("BENCH_OUTPUT", str(default.output))),
        )


@dataclass
class Rig:
    """Everything one run shares."""

    settings: Settings
    plane: ControlPlane
    api: Api
    server: moto.MotoServer
    op_proxy: AwsProxy
    bench_proxy: AwsProxy
    started: float

    def say(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.started:7.1f}s] {message}", file=sys.stderr,
              flush=True)

    def bench_iam(self) -> Any:
        return workload.client(self.bench_proxy.url, self.settings.workers)

    def console(self) -> Any:
        """A human in the console: straight to moto, counted by neither proxy."""
        return workload.client(self.server.url, 4)

    def operator_env(self) -> dict[str, str]:
        return {**self.server.env, "AWS_ENDPOINT_URL_IAM": self.op_proxy.url,
                "AWS_ENDPOINT_URL_STS": self.op_proxy.url}


def main() -> int:
    settings = Settings.from_env()
    started = time.monotonic()
    binaries = ensure_binaries()
    with ControlPlane(binaries) as plane, motoserver.running() as server:
        op_proxy = Proxy(server.port).start()
        bench_proxy = Proxy(server.port).start()
        rig = Rig(settings, plane, Api(plane), server, op_proxy, bench_proxy, started)
        try:
            rig.say(f"control plane {plane.server}, moto {server.url}; sizes {settings.sizes}")
            plane.kubectl("apply", "-f", str(REPO / "crds"))
            plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/iamroles.iam.rolekeeper.dev", "crd/iamusers.iam.rolekeeper.dev")
            results: dict[str, Any] = {
                "command": command_line(settings),
                "commit": git_commit(),
                "machine": proc.machine(),
                "settings": {k: str(v) if isinstance(v, Path) else v
                             for k, v in asdict(settings).items()},
                "moto": measure_moto(rig),
                "sizes": {},
            }
            rig.say("findings catalogue: RSS before and after use")
            results["catalogue"] = catalogue.measure()
            for size in settings.sizes:
                results["sizes"][str(size)] = measure_size(rig, size)
            if settings.admission_requests:
                rig.say(f"admission: {settings.admission_requests} requests, 10 KB policy")
                results["admission"] = admission.measure(
                    plane, rig.operator_env(), settings.admission_requests, rig.say
                )
        finally:
            op_proxy.stop()
            bench_proxy.stop()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    table = report.render(results)
    results["table"] = table
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table)
    print(f"\nwritten to {settings.output} in {results['wall_seconds']:.0f} s")
    return 0


def git_commit() -> str:
    """The checkout measured, with '+dirty' when controller/ has uncommitted changes."""
    def git(*args: str) -> str:
        # Not a git checkout (a tarball) is fine: the commit is then "unknown".
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--", "controller") else "")


def command_line(settings: Settings) -> str:
    knobs = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")]
    return " ".join([*knobs, "make bench"])


# --- moto's own ceiling -----------------------------------------------------------------------


def measure_moto(rig: Rig) -> dict[str, float]:
    """GetRole throughput through a proxy (sequential, threaded) and direct: the floor under
    every wall-time figure, since the operator and the baseline both wait on this server."""
    calls, workers = rig.settings.throughput_calls, rig.settings.workers
    rig.server.reset()
    workload.create_minimal(rig.console(), "bench-throughput")
    iam = rig.bench_iam()
    result = {
        "sequential_calls_per_s": workload.get_role_rate(iam, "bench-throughput", calls, 1),
        "threaded_calls_per_s": workload.get_role_rate(iam, "bench-throughput", calls, workers),
        "direct_sequential_calls_per_s": workload.get_role_rate(
            rig.console(), "bench-throughput", calls, 1
        ),
    }
    rig.server.reset()
    rig.say("moto GetRole/s: " + ", ".join(f"{k} {v:.0f}" for k, v in result.items()))
    return {k: round(v, 1) for k, v in result.items()}


# --- one size ---------------------------------------------------------------------------------


def measure_size(rig: Rig, size: int) -> dict[str, Any]:
    """Baselines, then the operator twice: as users run it (default drift interval) for the
    creates, then restarted with the short interval for the sweep, idle and drift figures (the
    restart itself is measured too: resuming N objects is what every upgrade costs)."""
    out: dict[str, Any] = {"baseline": measure_baseline(rig, size)}
    rig.server.reset()
    names = workload.role_names(f"bench-op-{size}", size)
    out["apply_alone_s"], out["apply_alone_cpu_s"] = measure_apply_alone(rig, size, names)
    namespace = rig.plane.create_namespace(f"bench-{size}")
    rig.op_proxy.reset_counts()
    with running_operator(rig, namespace, DEFAULT_DRIFT_INTERVAL) as (operator, pid):
        time.sleep(STARTUP_SETTLE)
        empty = proc.usage(pid)
        out["startup"] = {"rss_mib": round(empty.rss_mib, 1), "cpu_s": empty.cpu_seconds,
                          "aws_calls": dict(rig.op_proxy.calls)}
        rig.say(f"N={size}: operator up, RSS {empty.rss_mib:.0f} MiB with no objects")
        out["convergence"] = measure_convergence(rig, size, names, namespace, pid)
        first = proc.usage(pid)
        out["operator_logs"] = [str(operator.log_path)]
    rig.op_proxy.reset_counts()
    with running_operator(rig, namespace, rig.settings.drift_interval) as (operator, pid):
        out["resume"] = measure_resume(rig, size, pid)
        # The idle sweeps below also carry N/10 IAMPolicy objects (issue 15): their tags,
        # which the snapshot lacks, must not cost a call per policy per sweep.
        out["policies"] = add_policies(rig, size, namespace)
        out["settle"] = settle(rig, pid)
        out["idle"] = measure_idle(rig, size, pid, out["policies"]["count"])
        out["ack"] = measure_ack(rig, names)
        out["drift"] = measure_drift(rig, size, names)
        final = proc.usage(pid)
        out["operator_logs"].append(str(operator.log_path))
    peak = max(first.peak_mib, final.peak_mib)
    out["memory"] = {
        "rss_empty_mib": round(empty.rss_mib, 1),
        "peak_converging_mib": round(first.peak_mib, 1),
        "peak_restarted_mib": round(final.peak_mib, 1),
        "rss_end_mib": round(final.rss_mib, 1),
        "peak_mib": round(peak, 1),
        "mib_per_1000": round((peak - empty.rss_mib) * 1000 / size, 1),
    }
    return out


@contextlib.contextmanager
def running_operator(rig: Rig, namespace: str, interval: float) -> Iterator[tuple[Operator, int]]:
    """`rolekeeper run` for one namespace; its log tail is shown if a measurement fails."""
    operator = Operator(
        rig.plane.kubeconfig, rig.operator_env(), namespaces=[namespace],
        drift_interval=interval,
        extra_args=["--workers", str(rig.settings.workers),
                    "--aws-max-calls-per-second", f"{rig.settings.aws_budget:g}"],
    )
    operator.start()
    try:
        assert operator.pid is not None
        yield operator, operator.pid
    except BaseException:
        rig.say(f"operator log tail ({operator.log_path}):\n{operator.log_tail(40)}")
        raise
    finally:
        operator.stop()


def measure_resume(rig: Rig, size: int, pid: int) -> dict[str, Any]:
    """A restart with N converged objects: AWS calls until the operator goes quiet."""
    started = time.monotonic()
    last_count, last_change = 0, started
    # Quiet only counts once the resume began (the first call after GetCallerIdentity).
    while (time.monotonic() - last_change < RESUME_QUIET or last_count <= 1) and (
        time.monotonic() - started < 600
    ):
        count = rig.op_proxy.count()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        time.sleep(0.25)
    calls = dict(rig.op_proxy.calls)
    calls.pop("GetCallerIdentity", None)  # once per process, not per object
    rig.say(f"N={size}: restart: {sum(calls.values())} AWS calls in "
            f"{last_change - started:.1f} s")
    return {"aws_calls": calls, "aws_calls_total": sum(calls.values()),
            "seconds": round(last_change - started, 1),
            "rss_mib": round(proc.usage(pid).rss_mib, 1)}


def measure_baseline(rig: Rig, size: int) -> dict[str, Any]:
    """The same roles created by a bare boto3 script: sequentially, then on `workers` threads."""
    rig.server.reset()
    rig.bench_proxy.reset_counts()
    iam = rig.bench_iam()
    sequential = workload.timed(
        workload.create_minimal, iam, workload.role_names(f"bench-seq-{size}", size), 1
    )
    # moto scans every role on most calls: each phase must start from the same empty account.
    rig.server.reset()
    concurrent = workload.timed(
        workload.create_minimal, iam, workload.role_names(f"bench-par-{size}", size),
        rig.settings.workers,
    )
    calls = dict(rig.bench_proxy.calls)
    rig.say(f"N={size}: baseline {sequential:.1f} s sequential, {concurrent:.1f} s on "
            f"{rig.settings.workers} threads ({sum(calls.values())} calls)")
    return {"sequential_s": round(sequential, 2), "concurrent_s": round(concurrent, 2),
            "calls": calls, "calls_per_role": sum(calls.values()) / (2 * size)}


def measure_apply_alone(rig: Rig, size: int, names: list[str]) -> tuple[float, dict[str, float]]:
    """The Kubernetes side alone: the same `kubectl apply` into a namespace no operator watches
    (the objects stay there, inert). The floor under the operator's convergence time; with the
    CPU seconds each process spent meanwhile."""
    namespace = rig.plane.create_namespace(f"bench-apply-only-{size}")
    before = cpu_by_process(rig)
    started = time.monotonic()
    rig.plane.kubectl(
        "apply", "--server-side", "--field-manager=bench", "-f", "-",
        input=json.dumps(workload.manifest(names, namespace)), timeout=600,
    )
    seconds = time.monotonic() - started
    rig.say(f"N={size}: kubectl apply with no operator running: {seconds:.1f} s")
    return round(seconds, 2), cpu_delta(cpu_by_process(rig), before)


def cpu_by_process(rig: Rig, operator_pid: int | None = None) -> dict[str, float]:
    """CPU seconds so far of every process on this machine's two cores that takes part: where
    the time goes when the control plane, AWS's stand-in and the operator share them."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    found = {
        "kube-apiserver": proc.usage(rig.plane.apiserver.pid or 0).cpu_seconds,
        "etcd": proc.usage(rig.plane.etcd.pid or 0).cpu_seconds,
        "moto": proc.usage(rig.server.process.pid).cpu_seconds,
        "bench (AWS proxies, polling)": own.ru_utime + own.ru_stime,
        "kubectl": children.ru_utime + children.ru_stime,
    }
    if operator_pid is not None:
        found["operator"] = proc.usage(operator_pid).cpu_seconds
    return found


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


def measure_convergence(
    rig: Rig, size: int, names: list[str], namespace: str, pid: int
) -> dict[str, Any]:
    rig.op_proxy.reset_counts()
    writes_before = rig.api.writes()
    before = proc.usage(pid)
    cpu_before = cpu_by_process(rig, pid)
    # Coarser polling for big lists: each poll costs the shared CPUs a full list on the server.
    every = 0.25 if size <= 100 else 1.0
    timeout = 120 + size * 0.6
    started = time.monotonic()
    with proc.SocketPeak(pid) as sockets:
        result = rig.api.apply_and_wait(
            workload.manifest(names, namespace), namespace, timeout, every
        )
    after = proc.usage(pid)
    cpu = cpu_delta(cpu_by_process(rig, pid), cpu_before)
    calls = dict(rig.op_proxy.calls)
    # AWS calls per second of the window: shows whether AWS or Kubernetes paced the operator.
    per_second = Counter(int(t - started) for t, _ in list(rig.op_proxy.timeline))
    writes = delta(rig.api.writes(), writes_before)
    snapshot_calls = sum(n for a, n in calls.items() if a in SNAPSHOT_ACTIONS)
    total = sum(calls.values())
    rig.say(f"N={size}: {result.ready}/{size} Ready in "
            f"{result.seconds if result.seconds is not None else 'TIMEOUT'} s "
            f"(apply {result.apply_seconds:.1f} s), {total} AWS calls")
    return {
        "seconds": None if result.seconds is None else round(result.seconds, 2),
        "half_seconds": None if result.half_seconds is None else round(result.half_seconds, 2),
        "apply_seconds": round(result.apply_seconds, 2),
        "ready": result.ready,
        "poll_every_s": every,
        "aws_calls": calls,
        "aws_calls_total": total,
        "aws_snapshot_calls": snapshot_calls,
        "aws_calls_per_object": round((total - snapshot_calls) / size, 3),
        "k8s_writes": writes,
        # kubectl apply's own creates are in the API server's count; the operator's are the rest.
        "k8s_operator_writes_per_object": round((sum(writes.values()) - size) / size, 2),
        "cpu_s": round(after.cpu_seconds - before.cpu_seconds, 2),
        # Every process's CPU seconds in the window: two cores give 2 x seconds at most.
        "cpu_by_process_s": cpu,
        "peak_mib": round(after.peak_mib, 1),
        "peak_sockets": sockets.peak,
        # Each full re-read of a role lists its attached policies exactly once.
        "rereads": calls.get("ListAttachedRolePolicies", 0),
        "samples": result.samples,
        "aws_calls_per_second": [per_second[i] for i in range(int(result.seconds or 0) + 1)],
    }


def add_policies(rig: Rig, size: int, namespace: str) -> dict[str, Any]:
    """Apply N/10 IAMPolicy objects and wait until they are Ready."""
    count = max(1, size // 10)
    document = workload.policies_manifest(count, namespace, f"bench-pol-{size}")
    rig.plane.kubectl("apply", "-f", "-", input=json.dumps(document), timeout=120)
    rig.plane.kubectl("wait", "--for=condition=Ready", "--timeout=300s", "-n", namespace,
                      "iampolicies", "--all", timeout=310)
    rig.say(f"N={size}: {count} IAMPolicy objects Ready")
    return {"count": count}


def settle(rig: Rig, pid: int) -> dict[str, Any]:
    """Let every object's drift timer fire once against a snapshot taken after convergence;
    what that costs is reported too (it is the first check after a create)."""
    seconds = rig.settings.drift_interval * 1.5 + 5
    rig.op_proxy.reset_counts()
    writes_before = rig.api.writes()
    time.sleep(seconds)
    return {"seconds": seconds, "aws_calls": dict(rig.op_proxy.calls),
            "k8s_writes": delta(rig.api.writes(), writes_before),
            "rss_mib": round(proc.usage(pid).rss_mib, 1)}


def measure_idle(rig: Rig, size: int, pid: int, policies: int = 0) -> dict[str, Any]:
    """N converged objects (and `policies` IAMPolicy objects), nothing changes: every AWS call
    should be the shared snapshot and there should be no Kubernetes write at all."""
    interval = rig.settings.drift_interval
    rig.op_proxy.reset_counts()
    writes_before = rig.api.writes()
    before = proc.usage(pid)
    started = time.monotonic()
    time.sleep(interval * rig.settings.idle_intervals)
    elapsed = time.monotonic() - started
    after = proc.usage(pid)
    calls = dict(rig.op_proxy.calls)
    writes = delta(rig.api.writes(), writes_before)
    total = sum(calls.values())
    snapshots = calls.get("GetAccountAuthorizationDetails", 0)
    sweeps = elapsed / interval
    # GAAD lists the roles and the customer managed policies; ListRoles the roles only.
    real_aws = math.ceil((size + policies) / AWS_GAAD_PAGE) + math.ceil(size / AWS_LIST_ROLES_PAGE)
    rig.say(f"N={size}: idle {elapsed:.0f} s: {total} AWS calls ({snapshots} snapshots), "
            f"{sum(writes.values())} K8s writes")
    return {
        "seconds": round(elapsed, 1),
        "aws_calls": calls,
        "snapshots": snapshots,
        "calls_per_sweep": round(total / sweeps, 2),
        "non_snapshot_calls": sum(n for a, n in calls.items() if a not in SNAPSHOT_ACTIONS),
        "real_aws_calls_per_sweep": real_aws,
        "aws_calls_per_min": round(total * 60 / elapsed, 2),
        "k8s_writes": writes,
        "k8s_writes_per_min": round(sum(writes.values()) * 60 / elapsed, 2),
        "cpu_s_per_min": round((after.cpu_seconds - before.cpu_seconds) * 60 / elapsed, 2),
        "rss_mib": round(after.rss_mib, 1),
    }


def measure_ack(rig: Rig, names: list[str]) -> dict[str, Any]:
    """One ACK-style per-entity resync of the same roles, issued for real and counted."""
    rig.bench_proxy.reset_counts()
    seconds = workload.timed(workload.ack_poll, rig.bench_iam(), names, rig.settings.workers)
    calls = dict(rig.bench_proxy.calls)
    total = sum(calls.values())
    return {"calls": calls, "calls_total": total, "seconds": round(seconds, 2),
            # moto's throughput with N roles in the account (it scans them on most calls).
            "calls_per_s": round(total / seconds, 1)}


def measure_drift(rig: Rig, size: int, names: list[str]) -> dict[str, Any]:
    """Detach a managed policy from 1% of the roles behind the operator's back (straight to moto,
    uncounted) and time until moto shows it attached again.

    Changes are spread evenly over whole intervals so they land at every phase of the sweep
    cycle; when 1% is fewer than BENCH_DRIFT_SAMPLES roles, later changes follow in later
    intervals (still about 1% drifted at a time) until there are enough samples.
    """
    interval = rig.settings.drift_interval
    per_sweep = max(1, round(size / 100))
    # At least two sweeps' worth, so p95 is not merely the largest of a handful.
    samples = min(size, max(2 * per_sweep, rig.settings.drift_samples))
    span = math.ceil(samples / per_sweep) * interval
    targets = [names[i * size // samples] for i in range(samples)]
    due = {name: i * span / samples for i, name in enumerate(targets)}
    console = rig.console()
    rig.op_proxy.reset_counts()
    writes_before = rig.api.writes()
    start = time.monotonic()
    changed: dict[str, float] = {}
    reverted: dict[str, float] = {}
    deadline = span + 3 * interval + 30
    while len(reverted) < samples and time.monotonic() - start < deadline:
        now = time.monotonic() - start
        for name, offset in due.items():
            if name not in changed and now >= offset:
                console.detach_role_policy(RoleName=name, PolicyArn=S3_READ)
                changed[name] = time.monotonic()
        for name in [n for n in changed if n not in reverted]:
            attached = console.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
            if any(p["PolicyArn"] == S3_READ for p in attached):
                reverted[name] = time.monotonic()
        time.sleep(0.5)
    elapsed = time.monotonic() - start
    calls = dict(rig.op_proxy.calls)
    writes = delta(rig.api.writes(), writes_before)
    latencies = sorted(reverted[n] - changed[n] for n in reverted)
    snapshot_calls = sum(n for a, n in calls.items() if a in SNAPSHOT_ACTIONS)
    correction = sum(calls.values()) - snapshot_calls
    sweeps = elapsed / interval
    per_role = correction / samples
    rig.say(f"N={size}: drift {len(reverted)}/{samples} reverted, "
            f"median {statistics.median(latencies) if latencies else float('nan'):.1f} s")
    return {
        "drifted_per_sweep": per_sweep,
        "samples": samples,
        "reverted": len(reverted),
        "latencies_s": [round(x, 2) for x in latencies],
        "median_s": round(statistics.median(latencies), 2) if latencies else None,
        "p95_s": round(_nearest_rank(latencies, 0.95), 2) if latencies else None,
        "max_s": round(latencies[-1], 2) if latencies else None,
        "window_s": round(elapsed, 1),
        "aws_calls": calls,
        "correction_calls_per_role": round(per_role, 2),
        # One sweep's cost with 1% drifted: the shared snapshot plus each drifted role's fix.
        "calls_per_sweep": round(snapshot_calls / sweeps + per_sweep * per_role, 2),
        "k8s_writes": writes,
        "k8s_writes_per_role": round(sum(writes.values()) / samples, 2),
        "how": "AWS side changed straight on moto (not through either proxy); reversal detected "
               "by polling moto directly every 0.5 s",
    }


def _nearest_rank(ordered: list[float], share: float) -> float:
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


if __name__ == "__main__":
    raise SystemExit(main())
