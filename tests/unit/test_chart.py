"""The Helm chart's files without helm: one source for the CRDs, versions, the values schema.

Covers: charts/rolekeeper/crds/ holds exactly the repo's CRDs (crds/*.yaml and
manifests/crds/kopf-peering.yaml), byte for byte, as plain files (no symlinks: Flux's chart
loader refuses links out of the chart); the chart's appVersion is the package version and the
image tag kustomize sets; values.yaml and ci/all-options-values.yaml validate against
values.schema.json, which refuses unknown keys and documents every key values.yaml has.
The rendering itself (helm against kustomize, on an API server) is tests/e2e/test_helm.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from controller import __version__

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "rolekeeper"
SOURCES = [*sorted((REPO / "crds").glob("*.yaml")), REPO / "manifests" / "crds" / "kopf-peering.yaml"]
SYNC_HINT = "run `make chart-crds` to copy crds/ and manifests/crds/ into the chart"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def schema() -> Any:
    return yaml.safe_load((CHART / "values.schema.json").read_text())


def test_chart_crds_are_the_repo_crds_byte_for_byte() -> None:
    copies = sorted((CHART / "crds").iterdir())

    assert [p.name for p in copies] == sorted(p.name for p in SOURCES), SYNC_HINT
    for source in SOURCES:
        copy = CHART / "crds" / source.name
        assert not copy.is_symlink()
        assert copy.read_bytes() == source.read_bytes(), f"{copy} differs: {SYNC_HINT}"


def test_chart_has_no_symlinks() -> None:
    assert [p for p in CHART.rglob("*") if p.is_symlink()] == []


def test_app_version_is_the_package_and_kustomize_image_version() -> None:
    chart = load(CHART / "Chart.yaml")
    [image] = load(REPO / "manifests" / "kustomization.yaml")["images"]

    assert chart["appVersion"] == __version__ == image["newTag"]


@pytest.mark.parametrize("values", ["values.yaml", "ci/all-options-values.yaml"])
def test_values_files_validate_against_the_schema(values: str) -> None:
    jsonschema.validate(load(CHART / values), schema())


@pytest.mark.parametrize(("change", "message"), [
    ({"replica": 3}, "Additional properties are not allowed ('replica'"),
    ({"image": {"repository": "r", "digest": "latest"}}, "does not match"),
    ({"guardrails": [{"name": "g"}]}, "'spec' is a required property"),
    ({"metrics": {"serviceMonitr": {}}}, "Additional properties are not allowed"),
    ({"driftInterval": 0}, "less than or equal to the minimum of 0"),
])
def test_schema_refuses_mistakes(change: dict[str, Any], message: str) -> None:
    values = {**load(CHART / "values.yaml"), **change}

    with pytest.raises(jsonschema.ValidationError, match=message.replace("(", r"\(")):
        jsonschema.validate(values, schema())


def test_schema_and_values_yaml_name_the_same_keys() -> None:
    """Every option is in values.yaml (with its comment) and in the schema, nested too."""
    def keys(values: Any, node: Any, prefix: str = "") -> set[str]:
        found: set[str] = set()
        for name, sub in (node.get("properties") or {}).items():
            found.add(prefix + name)
            if sub.get("additionalProperties") is False and isinstance(values.get(name), dict):
                found |= keys(values[name], sub, f"{prefix}{name}.")
        return found

    def value_keys(values: Any, node: Any, prefix: str = "") -> set[str]:
        found: set[str] = set()
        for name, value in values.items():
            found.add(prefix + name)
            sub = (node.get("properties") or {}).get(name, {})
            if sub.get("additionalProperties") is False and isinstance(value, dict):
                found |= value_keys(value, sub, f"{prefix}{name}.")
        return found

    values = load(CHART / "values.yaml")
    assert keys(values, schema()) - {"global"} == value_keys(values, schema())
