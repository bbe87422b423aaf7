"""docs/status.md against the real kstatus library (what Flux and kpt compute), not a port of it.

Covers:
- the doc's reason table names every `Reason` (AWSError twice: retrying and terminal), and its
  Ready / Reconciling / Stalled columns are what `core.status.render` writes;
- `core.status.PROGRESS` says what the doc's kstatus column says;
- `sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute` (hack/kstatus, built and cached by
  hack/build-kstatus.sh) returns the doc's kstatus column for every row and every kind with a
  status, edge cases included (no status, stale observedGeneration, deletionTimestamp), with
  the Reconciling / Stalled message;
- the control: the same terminal error rendered the way the operator did before Stalled existed
  (Ready=False alone) is only InProgress for kstatus, so the Failed rows prove the conditions.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from controller.core.status import Progress, Reason
from tests.harness.gitops import kstatus, kstatus_binary
from tests.helpers import STATUS_KINDS, StatusCase, status_cases, status_object

CASES = {kind: status_cases(kind) for kind in STATUS_KINDS}
ROWS = CASES["IAMRole"]
PARAMS = [
    pytest.param(kind, index, id=f"{kind}-{case.name}")
    for kind, cases in CASES.items()
    for index, case in enumerate(cases)
]


def compute(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """kstatus's {status, message} for each object; skips without Go (never under CI=true)."""
    binary = kstatus_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("no kstatus binary in CI (hack/build-kstatus.sh needs Go)")
        pytest.skip("no Go toolchain: hack/build-kstatus.sh cannot build the kstatus checker")
    return kstatus(binary, objects)


@pytest.fixture(scope="module")
def results() -> dict[str, list[dict[str, str]]]:
    everything = [case.obj for cases in CASES.values() for case in cases]
    answers = iter(compute(everything))
    return {kind: [next(answers) for _ in cases] for kind, cases in CASES.items()}


# --- the doc against the code (no binary needed) -----------------------------------------------


def test_the_doc_names_every_reason_and_both_kinds_of_aws_error() -> None:
    named = [case.name for case in ROWS if case.conditions]
    assert {case.verdict.reason for case in ROWS if case.conditions and case.verdict} == set(Reason)
    assert len(named) == len(set(named)) == len(Reason) + 1
    assert {"AWSError", "AWSError-retrying"} <= set(named)


def test_the_doc_names_the_edge_cases() -> None:
    edges = [case.name for case in ROWS if not case.conditions]
    assert edges == ["no-status", "stale-generation", "deletion-retried", "deletion-stuck"]


@pytest.mark.parametrize("case", [c for c in ROWS if c.conditions], ids=lambda c: c.name)
def test_the_doc_shows_the_conditions_render_writes(case: StatusCase) -> None:
    found = {c["type"]: c["status"] for c in case.obj["status"]["conditions"]}
    shown = {t: found.get(t, "absent") for t in ("Ready", "Reconciling", "Stalled")}
    assert shown == case.conditions


@pytest.mark.parametrize("case", [c for c in ROWS if c.conditions], ids=lambda c: c.name)
def test_the_code_table_says_what_the_doc_says(case: StatusCase) -> None:
    assert case.verdict is not None
    assert case.verdict.progress is Progress(case.kstatus)


# --- the doc against kstatus --------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "index"), PARAMS)
def test_kstatus_computes_what_the_doc_says(
    kind: str, index: int, results: dict[str, list[dict[str, str]]]
) -> None:
    case, answer = CASES[kind][index], results[kind][index]
    assert "error" not in answer, answer
    assert answer["status"] == case.kstatus
    if case.conditions and case.kstatus in ("InProgress", "Failed"):
        # Flux shows the Reconciling / Stalled message: the operator's own words.
        assert case.verdict is not None and answer["message"] == case.verdict.message


def test_stale_generation_names_both_generations(results: dict[str, list[dict[str, str]]]) -> None:
    [answer] = [
        a for c, a in zip(ROWS, results["IAMRole"], strict=True) if c.name == "stale-generation"
    ]
    assert answer["message"] == "IAMRole generation is 2, but latest observed generation is 1"


def test_ready_false_alone_was_only_in_progress() -> None:
    """The control: before Stalled, a terminal error never failed a Flux health check."""
    stalled = next(c for c in ROWS if c.name == "AWSError")
    old = status_object("IAMRole", stalled.verdict)
    old["status"]["conditions"] = [c for c in old["status"]["conditions"] if c["type"] == "Ready"]
    [before, after] = compute([old, stalled.obj])
    assert (before["status"], after["status"]) == ("InProgress", "Failed")
