"""The bad-input catalogue (tests/e2e/badinput.py) offline, and its table in docs/reliability.md.

Covers: docs/reliability.md embeds exactly the table the catalogue generates (so the published
outcomes are the tested ones) and names every case id; the catalogue has at least 30 cases with
unique ids that are valid object names; each case's outcome agrees with the two validators that
run before AWS: `rejected` cases break the CRD schema (offline walker of tests/unit/test_crds.py;
the metadata-level rule is checked by its CEL condition), every stored case passes it;
`InvalidSpec` cases fail Rolekeeper's own parser with the catalogued message, and `Conflict` /
`AWSError` cases pass it (only AWS, or the account, can refuse them); only `AWSError` cases list
AWS writes. The e2e test (tests/e2e/test_reliability_bad_input.py) proves the same against the
real API server, operator and AWS endpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.core.errors import SpecError
from controller.kinds import registry
from tests.e2e import badinput
from tests.unit.test_crds import node_at, violations

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
BEGIN, END = "<!-- badinput:begin -->", "<!-- badinput:end -->"
CASES = {case.id: case for case in badinput.CASES}
# Checked by the CRD's root-level CEL rule (it sees metadata.name), not by the spec schema.
METADATA_RULE = {"metadata-name-over-64"}


def test_doc_embeds_the_generated_table() -> None:
    text = DOC.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "table markers missing"
    embedded = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert embedded == badinput.markdown_table(), (
        "docs/reliability.md is out of date: paste `python -m tests.e2e.badinput` between the markers"
    )


def test_doc_names_every_case() -> None:
    text = DOC.read_text()
    missing = [case_id for case_id in CASES if f"`{case_id}`" not in text]
    assert not missing


def test_catalogue_shape() -> None:
    assert len(badinput.CASES) >= 30
    assert len(CASES) == len(badinput.CASES), "duplicate case ids"
    assert {c.outcome for c in badinput.CASES} == {
        "rejected", "InvalidSpec", "Conflict", "DependencyNotReady", "AWSError"}
    for case in badinput.CASES:
        name = case.obj("p")["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 253, case.id
        assert bool(case.writes) == (case.outcome == "AWSError"), case.id


@pytest.mark.parametrize("case", badinput.CASES, ids=lambda c: c.id)
def test_outcome_agrees_with_the_validators(case: badinput.Case) -> None:
    obj = case.obj("rk-bad-offline")
    if case.id in METADATA_RULE:
        assert "roleName" not in obj["spec"] and len(obj["metadata"]["name"]) > 64
        return
    found = violations(node_at(case.kind, "spec"), obj["spec"])
    if case.outcome == "rejected":
        assert found, "the CRD schema would store this"
        return
    assert found == [], "the CRD schema would refuse this"
    obj["metadata"].update(namespace="team", uid="uid-1", generation=1)
    if case.outcome == "InvalidSpec":
        with pytest.raises(SpecError) as refused:
            registry.parse(obj)
        assert case.fragment in str(refused.value)
    else:
        registry.parse(obj)
