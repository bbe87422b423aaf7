"""The Argo CD health checks (integrations/argocd/<group>/<Kind>/health.lua), run as Lua.

Runs each script in Lua 5.1 (lupa, `tests.harness.gitops.argocd_health`) the way Argo CD runs a
ConfigMap script without useOpenLibs (gopher-lua, Lua 5.1: the base and table libraries and a
safe os; no string library, no string methods): the global `obj`, the chunk's returned table
{status, message}, its status one of Argo CD's.

Covers:
- every row of docs/status.md (every Reason, AWSError retrying and terminal, no status, stale
  observedGeneration, deletionTimestamp) for every kind with a status: the doc's Argo CD column,
  and the message (Ready's for Healthy, "reason: message" of Reconciling / Stalled otherwise);
- the three scripts are one script; the sandbox refuses what Argo CD's does (a string method);
- conditions without reason or message, and Ready=False alone (an older operator), give a
  health, not a Lua error;
- Argo CD's own test convention, so the directory can be contributed upstream as is: each
  kind's health_test.yaml runs (every inputPath under testdata/ gives its healthStatus), and
  those files are exactly what docs/status.md's rows render today
  (regenerate: `.venv/bin/python -m tests.unit.test_argocd_health`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from lupa.lua51 import LuaError

from controller.kinds.registry import GROUP
from tests.harness.gitops import argocd_health
from tests.helpers import STATUS_KINDS, StatusCase, status_cases, status_object

REPO = Path(__file__).resolve().parents[2]
CUSTOMIZATIONS = REPO / "integrations" / "argocd"
SCRIPTS = {kind: CUSTOMIZATIONS / GROUP / kind / "health.lua" for kind in STATUS_KINDS}
CASES = {kind: status_cases(kind) for kind in STATUS_KINDS}
PARAMS = [
    pytest.param(kind, case, id=f"{kind}-{case.name}")
    for kind, cases in CASES.items()
    for case in cases
]


def expected_message(case: StatusCase) -> str:
    """The message the script gives for a row of docs/status.md."""
    if case.obj["metadata"].get("deletionTimestamp"):
        return "Pending deletion"
    if case.verdict is None:
        return "Waiting for the Rolekeeper operator"
    if case.name == "stale-generation":
        return "Waiting for the operator to see generation 2 (the status describes generation 1)"
    if case.argocd == "Healthy":
        return case.verdict.message
    return f"{case.verdict.reason}: {case.verdict.message}"


# --- the scripts against docs/status.md ---------------------------------------------------------


def test_every_kind_with_a_status_runs_the_same_script() -> None:
    texts = {kind: path.read_text() for kind, path in SCRIPTS.items()}
    assert len(set(texts.values())) == 1, "the health.lua files differ"


@pytest.mark.parametrize(("kind", "case"), PARAMS)
def test_health_is_what_the_doc_says(kind: str, case: StatusCase) -> None:
    found = argocd_health(SCRIPTS[kind].read_text(), case.obj)
    assert found == {"status": case.argocd, "message": expected_message(case)}


def test_the_sandbox_refuses_what_argo_cd_refuses() -> None:
    with pytest.raises(LuaError, match="attempt to index"):
        argocd_health('return {status = ("healthy"):upper()}', {})
    with pytest.raises(LuaError, match="attempt to index"):
        argocd_health('return {status = string.upper("healthy")}', {})


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        pytest.param(
            [{"type": "Stalled", "status": "True"}],
            {"status": "Degraded", "message": ""},
            id="stalled-bare",
        ),
        pytest.param(
            [{"type": "Reconciling", "status": "True", "reason": "Throttled"}],
            {"status": "Progressing", "message": "Throttled"},
            id="reconciling-reason-only",
        ),
        pytest.param(
            [{"type": "Ready", "status": "False", "reason": "AWSError", "message": "m"}],
            {"status": "Progressing", "message": "AWSError: m"},
            id="ready-false-alone",
        ),
        pytest.param(
            [{"type": "Ready", "status": "True"}],
            {"status": "Healthy", "message": ""},
            id="ready-bare",
        ),
        pytest.param(
            [{"type": "SecurityFindings", "status": "True"}],
            {"status": "Progressing", "message": "Waiting for the Rolekeeper operator"},
            id="no-ready",
        ),
        pytest.param(
            [{"type": "Stalled", "status": "False"}, {"type": "Ready", "status": "True"}],
            {"status": "Healthy", "message": ""},
            id="stalled-false",
        ),
    ],
)
def test_sparse_conditions_give_a_health_not_an_error(
    conditions: list[dict[str, str]], expected: dict[str, str]
) -> None:
    obj = status_object("IAMRole", None)
    obj["status"] = {"observedGeneration": 2, "conditions": conditions}
    assert argocd_health(SCRIPTS["IAMRole"].read_text(), obj) == expected


# --- Argo CD's resource_customizations convention -----------------------------------------------


def fixture_name(case: StatusCase) -> str:
    return f"testdata/{case.argocd.lower()}_{case.name.lower().replace('-', '_')}.yaml"


def argo_files(kind: str) -> dict[Path, str]:
    """health_test.yaml and testdata/*.yaml of `kind`, as docs/status.md's rows render them."""
    root = SCRIPTS[kind].parent
    files: dict[Path, str] = {}
    tests = []
    for case in CASES[kind]:
        name = fixture_name(case)
        assert root / name not in files, f"two rows of docs/status.md make {name}"
        files[root / name] = yaml.safe_dump(case.obj, sort_keys=False)
        message = expected_message(case)
        status = {"status": case.argocd, **({"message": message} if message else {})}
        tests.append({"healthStatus": status, "inputPath": name})
    files[root / "health_test.yaml"] = yaml.safe_dump({"tests": tests}, sort_keys=False)
    return files


@pytest.mark.parametrize("kind", STATUS_KINDS)
def test_argo_cd_test_files_are_what_the_doc_renders_today(kind: str) -> None:
    root = SCRIPTS[kind].parent
    wanted = argo_files(kind)
    on_disk = {path: path.read_text() for path in (root / "testdata").glob("*.yaml")}
    on_disk[root / "health_test.yaml"] = (root / "health_test.yaml").read_text()
    stale = sorted(str(p.relative_to(REPO)) for p in wanted.keys() | on_disk.keys()
                   if wanted.get(p) != on_disk.get(p))  # fmt: skip
    assert not stale, f"out of date: {stale}; run .venv/bin/python -m tests.unit.test_argocd_health"


@pytest.mark.parametrize("kind", STATUS_KINDS)
def test_health_test_yaml_passes_as_argo_cd_runs_it(kind: str) -> None:
    root = SCRIPTS[kind].parent
    spec = yaml.safe_load((root / "health_test.yaml").read_text())
    assert len(spec["tests"]) == len(CASES[kind])
    for test in spec["tests"]:
        obj = yaml.safe_load((root / test["inputPath"]).read_text())
        found = argocd_health(SCRIPTS[kind].read_text(), obj)
        # Argo CD's HealthStatus drops an empty message (json omitempty).
        got = {k: v for k, v in found.items() if v != ""}
        assert got == test["healthStatus"], test["inputPath"]


def main() -> int:
    """Rewrite every kind's health_test.yaml and testdata/ from docs/status.md."""
    for kind in STATUS_KINDS:
        root = SCRIPTS[kind].parent
        for old in (root / "testdata").glob("*.yaml"):
            old.unlink()
        for path, text in argo_files(kind).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
