"""What the findings catalogue costs the operator's memory (DESIGN: ≤ 10 MiB of steady RSS).

A fresh process imports what `rolekeeper run` imports (the findings module included: it reads
no data at import), then judges every manifest of examples/ and the test corpora as the operator
does after each reconcile, then loads every service's actions and condition keys — the worst
case, a cluster whose policies name every AWS service. RSS is read after each step, so the
growth each one causes is measured in the same process (glibc arenas capped as `run` caps them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_MIB = 10.0
CORPORA = ("examples", "tests/aws/golden/manifests")

_PROBE = r"""
import gc, json, sys
from pathlib import Path

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

from controller.operator.memory import limit_malloc_arenas
limit_malloc_arenas()
import kopf, boto3
from controller.operator import handlers
from controller.core import catalogue
from controller.core.findings import findings_for
from controller.kinds import registry
from controller.review import manifests
gc.collect(); imported = rss()
views = []
for m in manifests.load(sys.argv[1:]).manifests:
    try:
        views.append(registry.view_of(m.obj))
    except ValueError:
        pass
count = sum(len(findings_for(v, account_id="123456789012")) for _ in range(3) for v in views)
gc.collect(); judged = rss()
for service in sorted(catalogue._services() or ()):
    catalogue.actions_matching(f"{service}:*")
    catalogue.condition_key_known(f"{service}:nosuchkey")
gc.collect(); everything = rss()
print(json.dumps({"imported_mib": imported, "judged_mib": judged, "all_services_mib": everything,
                  "objects": len(views), "findings": count,
                  "services": len(catalogue._services() or ())}))
"""


def measure() -> dict[str, Any]:
    """RSS of an operator-like process before and after the catalogue is used."""
    paths = [str(REPO / p) for p in CORPORA if (REPO / p).exists()]
    done = subprocess.run([sys.executable, "-c", _PROBE, *paths], cwd=REPO, capture_output=True,
                          text=True, check=True, timeout=300)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["judging_growth_mib"] = round(found["judged_mib"] - found["imported_mib"], 1)
    found["worst_case_growth_mib"] = round(found["all_services_mib"] - found["imported_mib"], 1)
    return found


def render(result: dict[str, Any]) -> list[str]:
    worst = result["worst_case_growth_mib"]
    return [
        "",
        "| Findings catalogue (RSS of an operator-like process) | MiB | Target | Met |",
        "|---|---|---|---|",
        f"| after `rolekeeper run`'s imports | {result['imported_mib']:.1f} |  |  |",
        f"| growth judging {result['objects']} objects 3 times | {result['judging_growth_mib']:.1f} |"
        f" ≤ {TARGET_MIB:.0f} | {'yes' if result['judging_growth_mib'] <= TARGET_MIB else '**no**'} |",
        f"| growth with all {result['services']} services loaded (worst case) | {worst:.1f} |"
        f" ≤ {TARGET_MIB:.0f} | {'yes' if worst <= TARGET_MIB else '**no**'} |",
    ]
