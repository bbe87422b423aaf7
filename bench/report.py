"""Render one run's results as the Markdown table `make bench` prints and docs/performance.md shows.

Every ratio is computed here from figures measured in the same run; nothing is typed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench import admission, catalogue
from bench.workload import ACK_CALLS_PER_ROLE, MINIMAL_CALLS_PER_ROLE

Result = Mapping[str, Any]
DEFAULT_DRIFT_INTERVAL = 60.0  # `rolekeeper run` default, for the projected idle cost


@dataclass(frozen=True)
class Row:
    """One line of the table: a label, how to read it from a size's results, an optional target."""

    label: str
    value: Callable[[int, Result, Result], str]
    target: str = ""
    met: Callable[[int, Result, Result], bool | None] | None = None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _fmt(x: float | None, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:.{digits}f}{suffix}"


def _conv_ratio(r: Result, key: str) -> float | None:
    return _ratio(r["convergence"]["seconds"], r["baseline"][key])


def _cpu(by_process: Mapping[str, float] | None) -> str:
    if not by_process:
        return "n/a"
    return ", ".join(f"{name.split(' ')[0]} {seconds:.1f}" for name, seconds in by_process.items())


def _apply_ratio(r: Result) -> float | None:
    return _ratio(r["convergence"]["apply_seconds"], r.get("apply_alone_s"))


def _existence_checks(r: Result) -> int:
    """GetRole calls that were not part of a full re-read (each re-read has one GetRole)."""
    conv = r["convergence"]
    return int(conv["aws_calls"].get("GetRole", 0)) - int(conv["rereads"])


def _create_ratio(r: Result) -> float:
    return float(r["convergence"]["aws_calls_per_object"]) / MINIMAL_CALLS_PER_ROLE


def _sweep_share(r: Result, real_aws: bool) -> float:
    calls = r["idle"]["real_aws_calls_per_sweep"] if real_aws else r["idle"]["calls_per_sweep"]
    return float(calls) / float(r["ack"]["calls_total"])


def _design_ack(n: int) -> int:
    """DESIGN §6's per-entity poll: GetRole + ListAttached + ListRolePolicies + ListRoleTags."""
    return 4 * n


def rows(results: Result) -> list[Row]:
    interval = float(results["settings"]["drift_interval"])
    per_sweep = interval / DEFAULT_DRIFT_INTERVAL
    return [
        Row("**Convergence** (N IAMRoles in one `kubectl apply` → all Ready; default 60 s "
            "drift interval)", lambda n, r, m: ""),
        Row("operator: apply → all Ready, s",
            lambda n, r, m: _fmt(r["convergence"]["seconds"], 1)),
        Row("  of which `kubectl apply` itself, s",
            lambda n, r, m: _fmt(r["convergence"]["apply_seconds"], 1)),
        Row("`kubectl apply` of the same objects with no operator running, s",
            lambda n, r, m: _fmt(r.get("apply_alone_s"), 1)),
        Row("  CPU seconds meanwhile, by process (2 cores)",
            lambda n, r, m: _cpu(r.get("apply_alone_cpu_s"))),
        Row("  CPU seconds while converging, by process (2 cores)",
            lambda n, r, m: _cpu(r["convergence"].get("cpu_by_process_s"))),
        Row("ratio `kubectl apply` with the operator / with none",
            lambda n, r, m: _fmt(_apply_ratio(r), 2, "x"), "≤ 1.5x",
            lambda n, r, m: (x := _apply_ratio(r)) is not None and x <= 1.5),
        Row("baseline boto3, sequential, s", lambda n, r, m: _fmt(r["baseline"]["sequential_s"], 1)),
        Row(f"baseline boto3, {results['settings']['workers']} threads, s",
            lambda n, r, m: _fmt(r["baseline"]["concurrent_s"], 1)),
        Row("ratio operator / threaded baseline",
            lambda n, r, m: _fmt(_conv_ratio(r, "concurrent_s"), 2, "x"), "≤ 1.5x",
            lambda n, r, m: (x := _conv_ratio(r, "concurrent_s")) is not None and x <= 1.5),
        Row("ratio operator / sequential baseline",
            lambda n, r, m: _fmt(_conv_ratio(r, "sequential_s"), 2, "x")),
        Row("ratio operator / max(threaded baseline, apply alone)",
            lambda n, r, m: _fmt(_ratio(r["convergence"]["seconds"],
                                        max(r["baseline"]["concurrent_s"],
                                            r.get("apply_alone_s", 0))), 2, "x")),
        Row("**API cost of the creates** (counted by the proxy)", lambda n, r, m: ""),
        Row("operator AWS calls per object (drift snapshots excluded)",
            lambda n, r, m: _fmt(r["convergence"]["aws_calls_per_object"], 2)),
        Row("  of which GetRole existence checks before CreateRole",
            lambda n, r, m: _fmt(_existence_checks(r) / n, 2)),
        Row("  of which full re-reads (5 calls) of roles newer than the drift snapshot",
            lambda n, r, m: _fmt(5 * r["convergence"]["rereads"] / n, 2)),
        Row("  drift snapshot calls during convergence (excluded above)",
            lambda n, r, m: str(r["convergence"]["aws_snapshot_calls"])),
        Row("minimal calls per object (CreateRole + 2 AttachRolePolicy + PutRolePolicy)",
            lambda n, r, m: str(MINIMAL_CALLS_PER_ROLE)),
        Row("ratio operator / minimal", lambda n, r, m: _fmt(_create_ratio(r), 2, "x"), "≤ 1.1x",
            lambda n, r, m: _create_ratio(r) <= 1.1),
        Row("  create path alone (existence check + writes) / minimal",
            lambda n, r, m: _fmt((r["convergence"]["aws_calls_per_object"]
                                  - 5 * r["convergence"]["rereads"] / n) / MINIMAL_CALLS_PER_ROLE,
                                 2, "x")),
        Row("Kubernetes writes per created object by the operator (patches + events)",
            lambda n, r, m: _fmt(r["convergence"]["k8s_operator_writes_per_object"], 2), "≤ 3",
            lambda n, r, m: r["convergence"]["k8s_operator_writes_per_object"] <= 3),
        Row("**Restart** (operator restarted with N converged objects)", lambda n, r, m: ""),
        Row("AWS calls until the operator is quiet again",
            lambda n, r, m: str(r["resume"]["aws_calls_total"])),
        Row("  per object", lambda n, r, m: _fmt(r["resume"]["aws_calls_total"] / n, 2)),
        Row("  seconds", lambda n, r, m: _fmt(r["resume"]["seconds"], 1)),
        Row(f"**Drift sweep**, no drift (drift interval {interval:.0f} s; N roles + N/10 IAMPolicy)",
            lambda n, r, m: ""),
        Row("operator AWS calls per sweep (moto: one page each)",
            lambda n, r, m: _fmt(r["idle"]["calls_per_sweep"], 1)),
        Row(f"  on real AWS (GAAD {100}/page + ListRoles 1,000/page)",
            lambda n, r, m: str(r["idle"]["real_aws_calls_per_sweep"])),
        Row(f"ACK-style per-entity poll, calls ({ACK_CALLS_PER_ROLE}/role, issued for real)",
            lambda n, r, m: str(r["ack"]["calls_total"])),
        Row("  its wall time on moto, s", lambda n, r, m: _fmt(r["ack"]["seconds"], 1)),
        Row("  = moto's read throughput with N roles, calls/s",
            lambda n, r, m: _fmt(r["ack"]["calls_per_s"], 0)),
        Row("sweep / per-entity poll (moto)",
            lambda n, r, m: _fmt(100 * _sweep_share(r, False), 2, "%"), "≤ 2%",
            lambda n, r, m: _sweep_share(r, False) <= 0.02),
        Row("sweep / per-entity poll (real-AWS pages)",
            lambda n, r, m: _fmt(100 * _sweep_share(r, True), 2, "%"), "≤ 2%",
            lambda n, r, m: _sweep_share(r, True) <= 0.02),
        Row("  vs DESIGN's 4 calls/role poll (real-AWS pages)",
            lambda n, r, m: _fmt(100 * r["idle"]["real_aws_calls_per_sweep"] / _design_ack(n), 2,
                                 "%"), "≤ 2%",
            lambda n, r, m: r["idle"]["real_aws_calls_per_sweep"] / _design_ack(n) <= 0.02),
        Row("**Drift**, 1% of roles changed out of band", lambda n, r, m: ""),
        Row("roles drifted per sweep / timed samples",
            lambda n, r, m: f"{r['drift']['drifted_per_sweep']} / {r['drift']['samples']}"),
        Row("operator AWS calls per sweep with 1% drifted",
            lambda n, r, m: _fmt(r["drift"]["calls_per_sweep"], 1)),
        Row("  re-read + fix calls per drifted role",
            lambda n, r, m: _fmt(r["drift"]["correction_calls_per_role"], 1)),
        Row("change → reverted, median s", lambda n, r, m: _fmt(r["drift"]["median_s"], 1)),
        Row("change → reverted, p95 s", lambda n, r, m: _fmt(r["drift"]["p95_s"], 1),
            f"≤ {interval + 2:.0f} s (interval + 2 s)",
            lambda n, r, m: r["drift"]["p95_s"] is not None
            and r["drift"]["reverted"] == r["drift"]["samples"]
            and r["drift"]["p95_s"] <= interval + 2),
        Row("  worst, s", lambda n, r, m: _fmt(r["drift"]["max_s"], 1)),
        Row("Kubernetes writes per reverted drift (events + status)",
            lambda n, r, m: _fmt(r["drift"]["k8s_writes_per_role"], 1)),
        Row("**Idle** (N converged, nothing changes)", lambda n, r, m: ""),
        Row(f"AWS calls per minute (interval {interval:.0f} s)",
            lambda n, r, m: _fmt(r["idle"]["aws_calls_per_min"], 1)),
        Row("  projected at the default 60 s interval",
            lambda n, r, m: _fmt(r["idle"]["aws_calls_per_min"] * per_sweep, 1)),
        Row("  calls other than the shared snapshot",
            lambda n, r, m: str(r["idle"]["non_snapshot_calls"]), "0",
            lambda n, r, m: r["idle"]["non_snapshot_calls"] == 0),
        Row("Kubernetes writes per minute", lambda n, r, m: _fmt(r["idle"]["k8s_writes_per_min"], 1),
            "0", lambda n, r, m: r["idle"]["k8s_writes_per_min"] == 0),
        Row("operator CPU seconds per idle minute",
            lambda n, r, m: _fmt(r["idle"]["cpu_s_per_min"], 2)),
        Row("**Memory and CPU** of the operator process", lambda n, r, m: ""),
        Row("RSS with 0 objects, MiB", lambda n, r, m: _fmt(r["memory"]["rss_empty_mib"], 1)),
        Row("peak RSS (VmHWM) creating N objects, MiB",
            lambda n, r, m: _fmt(r["memory"]["peak_converging_mib"], 1)),
        Row("peak RSS (VmHWM) restarted with N objects, MiB",
            lambda n, r, m: _fmt(r["memory"]["peak_restarted_mib"], 1)),
        Row("peak RSS, the larger of the two, MiB", lambda n, r, m: _fmt(r["memory"]["peak_mib"], 1),
            "≤ 130 MiB at 1,000",
            lambda n, r, m: r["memory"]["peak_mib"] <= 130 if n >= 1000 else None),
        Row("RSS at the end (restarted, idle sweeps and drift done), MiB",
            lambda n, r, m: _fmt(r["memory"]["rss_end_mib"], 1), "≤ 130 MiB at 1,000",
            lambda n, r, m: r["memory"]["rss_end_mib"] <= 130 if n >= 1000 else None),
        Row("peak open sockets while converging (Kubernetes + AWS)",
            lambda n, r, m: str(r["convergence"]["peak_sockets"])),
        Row("RSS growth per 1,000 objects, MiB",
            lambda n, r, m: _fmt(r["memory"]["mib_per_1000"], 1)),
        Row("CPU seconds to converge N objects",
            lambda n, r, m: _fmt(r["convergence"]["cpu_s"], 1)),
        Row("  CPU ms per object", lambda n, r, m: _fmt(1000 * r["convergence"]["cpu_s"] / n, 1)),
    ]


def render(results: Result) -> str:
    sizes = [int(n) for n in results["sizes"]]
    per_size = [results["sizes"][str(n)] for n in sizes]
    moto = results["moto"]
    head = ["Figure", *[f"N={n:,}" for n in sizes], "Target (DESIGN §6)", "Met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows(results):
        cells = [row.value(n, r, moto) for n, r in zip(sizes, per_size, strict=True)]
        verdicts = []
        if row.met is not None:
            for n, r in zip(sizes, per_size, strict=True):
                ok = row.met(n, r, moto)
                if ok is not None:
                    verdicts.append(f"{'yes' if ok else '**no**'} ({n:,})")
        lines.append("| " + " | ".join([row.label, *cells, row.target, ", ".join(verdicts)]) + " |")
    lines.append("")
    lines.append(
        f"moto throughput (GetRole/s, same run): {moto['sequential_calls_per_s']:.0f} sequential "
        f"through the proxy, {moto['threaded_calls_per_s']:.0f} on "
        f"{results['settings']['workers']} threads through the proxy, "
        f"{moto['direct_sequential_calls_per_s']:.0f} sequential direct."
    )
    machine = results["machine"]
    lines.append(
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['ram_mib']:,} MiB "
        f"RAM, Linux {machine['kernel']}. Command: `{results['command']}` at commit "
        f"{results.get('commit', 'unknown')}, {results.get('wall_seconds', 0):.0f} s."
    )
    if results.get("admission"):
        lines.extend(admission.render(results["admission"]))
    if results.get("catalogue"):
        lines.extend(catalogue.render(results["catalogue"]))
    return "\n".join(lines)
