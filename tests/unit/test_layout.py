"""The shape rules that keep the code easy to see, checked so they survive.

Covers: nothing outside `controller/kinds/` branches on which kind it holds (isinstance checks
against a kind's entity class, comparisons with a kind name), and only the registry imports the
kind modules; the registry lists every kind whose CRD ships, and each kind's plural and name
field match its CRD.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from controller.kinds import registry

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "controller"
KIND_NAMES = "|".join(registry.KIND_NAMES)
BRANCHES = [
    re.compile(r"isinstance\([^)]*\b(Role|User|Credentials|Policy)\b"),
    re.compile(rf"(==|!=|\bin)\s*\(?\s*[\"']({KIND_NAMES})[\"']"),
    re.compile(rf"[\"']({KIND_NAMES})[\"']\s*(==|!=|if\b)"),
    re.compile(r"from controller\.kinds\.(role|user|policy) import|from controller\.kinds import .*\b(role|user|policy)\b"),
]


def _outside_kinds() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "kinds" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", _outside_kinds(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_kind_branch_outside_kinds(path: Path) -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(pattern.search(line) for pattern in BRANCHES)
    ]
    assert not found, "a kind branch belongs in controller/kinds/:\n" + "\n".join(found)


def test_the_guard_sees_a_branch() -> None:
    assert any(p.search('if body["kind"] == "IAMRole":') for p in BRANCHES)
    assert any(p.search("isinstance(entity, Role)") for p in BRANCHES)
    assert any(p.search("isinstance(entity, Policy)") for p in BRANCHES)
    assert any(p.search("from controller.kinds import policy") for p in BRANCHES)
    assert not any(p.search("from controller.core import policy") for p in BRANCHES)


def _crds() -> dict[str, dict[str, str]]:
    found = {}
    for path in (REPO / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        found[crd["spec"]["names"]["kind"]] = crd["spec"]["names"]
    return found


@pytest.mark.parametrize("name", registry.KIND_NAMES)
def test_each_kind_matches_its_crd(name: str) -> None:
    kind = registry.get(name)
    names = _crds()[name]
    assert names["plural"] == kind.plural
    crd = yaml.safe_load((REPO / "crds" / f"{kind.plural}.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert kind.name_field in spec["properties"]
