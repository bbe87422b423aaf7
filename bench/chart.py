"""The scaling picture for docs/performance.md: seconds, AWS calls and RSS against N, as SVG.

Usage: python -m bench.chart OUT.svg RESULTS.json [RESULTS.json ...]
Every point is a figure from a `make bench` results file (several files: one point per size per
file, so run-to-run spread shows). Log-log axes; nothing is fitted or typed in.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Result = dict[str, Any]
Series = tuple[str, str, Callable[[Result], float | None]]  # label, colour, value of one size

PANELS: list[tuple[str, list[Series]]] = [
    ("seconds to converge N creates", [
        ("operator", "#c0392b", lambda r: r["convergence"]["seconds"]),
        ("boto3, threaded", "#2980b9", lambda r: r["baseline"]["concurrent_s"]),
        ("kubectl apply alone", "#7f8c8d", lambda r: r.get("apply_alone_s")),
    ]),
    ("AWS calls", [
        ("operator, creating N", "#c0392b", lambda r: r["convergence"]["aws_calls_total"]),
        ("operator, one no-drift sweep", "#27ae60", lambda r: r["idle"]["calls_per_sweep"]),
        ("per-entity poll (ACK-style)", "#8e44ad", lambda r: r["ack"]["calls_total"]),
    ]),
    ("operator RSS, MiB", [
        ("peak", "#c0392b", lambda r: r["memory"]["peak_mib"]),
        ("with no objects", "#7f8c8d", lambda r: r["memory"]["rss_empty_mib"]),
    ]),
]
WIDTH, HEIGHT, PAD = 300, 230, 46


def points(results: Sequence[Result], value: Callable[[Result], float | None]) -> list[tuple[int, float]]:
    found = []
    for run in results:
        for size, figures in run["sizes"].items():
            try:
                y = value(figures)
            except (KeyError, TypeError):
                continue
            if y is not None and y > 0:
                found.append((int(size), float(y)))
    return sorted(found)


def panel(index: int, title: str, series: list[Series], results: Sequence[Result]) -> str:
    data = [(label, colour, points(results, value)) for label, colour, value in series]
    xs = [x for _, _, pts in data for x, _ in pts] or [1]
    ys = [y for _, _, pts in data for _, y in pts] or [1.0]
    x0, x1 = math.log10(min(xs)) - 0.15, math.log10(max(xs)) + 0.15
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)) + 1e-9)
    y1 = max(y1, y0 + 1)
    left = index * (WIDTH + 20)

    def px(x: float) -> float:
        return left + PAD + (math.log10(x) - x0) / (x1 - x0) * (WIDTH - PAD - 10)

    def py(y: float) -> float:
        return HEIGHT - PAD + 10 - (math.log10(y) - y0) / (y1 - y0) * (HEIGHT - PAD - 20)

    out = [f'<text x="{left + PAD}" y="14" font-size="12" font-weight="bold">{title}</text>',
           f'<rect x="{left + PAD}" y="20" width="{WIDTH - PAD - 10}" height="{HEIGHT - PAD - 10}" '
           'fill="none" stroke="#bbb"/>']
    for decade in range(y0, y1 + 1):
        y = py(10.0**decade)
        out.append(f'<text x="{left + PAD - 4}" y="{y + 4:.1f}" font-size="10" '
                   f'text-anchor="end">{10**decade:g}</text>')
    for size in sorted(set(xs)):
        out.append(f'<text x="{px(size):.1f}" y="{HEIGHT - PAD + 24}" font-size="10" '
                   f'text-anchor="middle">N={size:,}</text>')
    for row, (label, colour, pts) in enumerate(data):
        if len(pts) > 1:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        out.extend(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>'
                   for x, y in pts)
        out.append(f'<text x="{left + PAD}" y="{HEIGHT + 4 + 13 * row}" font-size="10" '
                   f'fill="{colour}">● {label}</text>')
    return "\n".join(out)


def render(results: Sequence[Result]) -> str:
    width = len(PANELS) * (WIDTH + 20)
    height = HEIGHT + 4 + 13 * max(len(s) for _, s in PANELS)
    body = "\n".join(panel(i, title, series, results) for i, (title, series) in enumerate(PANELS))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n'
            f"{body}\n</svg>\n")


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = [json.loads(Path(p).read_text()) for p in argv[1:]]
    Path(argv[0]).write_text(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
