"""`rolekeeper lint` (controller.review.lint, .sarif, .positions), offline, on files in tmp_path.

Covered: a finding reported at the file, line and column of its field in every format; SARIF
valid against the official 2.1.0 schema (tests/unit/data, from OASIS); suppressed findings
kept and marked; exit codes (0, 1 at --fail-on, 2 for unreadable input or an invalid spec,
never a traceback); the examples lint clean; field paths located through dotted keys, one-object
statements and List items; the argparse surface; lint never prints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs; only this test uses it
import pytest

from controller.review.lint import add_lint_arguments, lint
from controller.review.positions import locate

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
EXAMPLES = str(Path(__file__).parents[2] / "examples")

PASS_ROLE = """\
apiVersion: iam.rolekeeper.dev/v1alpha1
kind: IAMRole
metadata:
  name: deployer
  namespace: team-a{annotations}
spec:
  roleName: team-a-deployer
  assumeRolePolicy:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Principal: {{Service: ec2.amazonaws.com}}
        Action: sts:AssumeRole
  inlinePolicies:
    deploy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: s3:GetObject
          Resource: arn:aws:s3:::team-a-artifacts/*
        - Effect: Allow
          Action: iam:PassRole
          Resource: "*"
"""
ACTION_LINE, ACTION_COLUMN = 22, 11  # "Action: iam:PassRole" in PASS_ROLE (1-based)
SUPPRESSED = "\n  annotations:\n    iam.rolekeeper.dev/suppress-findings: RK-PERM-003=passes many roles, TICKET-9"


def write(tmp_path: Path, text: str, name: str = "role.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def pass_role(tmp_path: Path) -> str:
    return write(tmp_path, PASS_ROLE.format(annotations=""))


def sarif(paths: list[str], **kw: Any) -> dict[str, Any]:
    return json.loads(lint(paths, "sarif", **kw)[1])  # type: ignore[no-any-return]


def test_text_names_file_line_column_and_fix(pass_role: str) -> None:
    code, text = lint([pass_role])
    assert f"{pass_role}:{ACTION_LINE}:{ACTION_COLUMN}: high RK-PERM-003" in text
    assert "list the role ARNs" in text and code == 0


def test_json_names_the_field_and_line(pass_role: str) -> None:
    [finding] = json.loads(lint([pass_role], "json")[1])["findings"]
    assert (finding["id"], finding["line"], finding["field"]) == (
        "RK-PERM-003", ACTION_LINE, "spec.inlinePolicies.deploy.Statement[1].Action")


def test_sarif_is_valid_against_the_schema(pass_role: str, tmp_path: Path) -> None:
    broken = write(tmp_path, "kind: [", "broken.yaml")
    jsonschema.Draft4Validator(SCHEMA).validate(sarif([pass_role, broken]))


def test_sarif_region_is_the_field(pass_role: str) -> None:
    [result] = sarif([pass_role])["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]
    assert location["region"] == {"startLine": ACTION_LINE, "startColumn": ACTION_COLUMN}
    assert location["artifactLocation"]["uri"].endswith("role.yaml")


def test_sarif_rules_carry_security_severity(pass_role: str) -> None:
    rules = sarif([pass_role])["runs"][0]["tool"]["driver"]["rules"]
    assert {r["id"]: r["properties"]["security-severity"] for r in rules}["RK-PERM-003"] == "8.0"


def test_suppressed_finding_is_kept_and_marked(tmp_path: Path) -> None:
    path = write(tmp_path, PASS_ROLE.format(annotations=SUPPRESSED))
    [result] = sarif([path])["runs"][0]["results"]
    assert result["suppressions"] == [{"kind": "inSource", "justification": "passes many roles, TICKET-9"}]


def test_suppressed_finding_does_not_fail_ci(tmp_path: Path) -> None:
    path = write(tmp_path, PASS_ROLE.format(annotations=SUPPRESSED))
    assert lint([path], fail_on="low")[0] == 0


@pytest.mark.parametrize(("fail_on", "code"), [(None, 0), ("high", 1), ("medium", 1), ("critical", 0)])
def test_fail_on_threshold(pass_role: str, fail_on: str | None, code: int) -> None:
    assert lint([pass_role], fail_on=fail_on)[0] == code


def test_invalid_spec_is_an_input_error_at_its_field(tmp_path: Path) -> None:
    path = write(tmp_path, PASS_ROLE.format(annotations="").replace(
        "  roleName: team-a-deployer\n", "  roleName: team-a-deployer\n  maxSessionDuration: 60\n"))
    code, text = lint([path])
    assert code == 2
    assert f"{path}:8:3: error RK-INPUT-001 IAMRole team-a/deployer: spec.maxSessionDuration" in text


def test_malformed_yaml_is_an_input_error(tmp_path: Path) -> None:
    code, text = lint([write(tmp_path, "kind: [")], "json")
    assert code == 2 and json.loads(text)["errors"][0]["message"].startswith("malformed YAML")


def test_examples_lint_clean() -> None:
    code, text = lint([EXAMPLES], "json", fail_on="info")
    found = json.loads(text)["findings"]
    assert (code, [f for f in found if not f.get("suppressed")]) == (0, [])
    # The CI user's key and the boundary's broad ceiling: suppressed in the examples, with reasons.
    assert sorted((f["object"], f["id"]) for f in found if f.get("suppressed")) == [
        ("IAMPolicy platform/tenant-boundary", "RK-PERM-002"),
        ("IAMUser team-a/ci-deployer", "RK-USER-001")]


def test_unknown_format_is_refused(pass_role: str) -> None:
    with pytest.raises(ValueError, match="format"):
        lint([pass_role], "xml")


def test_lint_never_prints(pass_role: str, capsys: pytest.CaptureFixture[str]) -> None:
    lint([pass_role], "sarif")
    assert capsys.readouterr() == ("", "")


def test_arguments_parse() -> None:
    parser = argparse.ArgumentParser()
    add_lint_arguments(parser)
    args = parser.parse_args(["a.yaml", "--format", "sarif", "--fail-on", "high", "--account-id", "1"])
    assert (args.paths, args.fmt, args.fail_on, args.account_id) == (["a.yaml"], "sarif", "high", "1")


# --- positions ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "path", "expected"), [
    ("a:\n  b.c:\n    d: 1\n", "a.b.c.d", (3, 5)),  # a key with a dot (policy "app.v2")
    ("S:\n  Effect: Allow\n  Action: x\n", "S[0].Action", (3, 3)),  # one statement, no list
    ("a:\n  - x\n  - y\n", "a[1]", (3, 5)),
    ("a:\n  b: 1\n", "a.nope.deeper", (1, 1)),  # deepest field found: a
    ('{"a": {"b": [1, 2]}}', "a.b[1]", (1, 17)),  # JSON is YAML
])
def test_locate(text: str, path: str, expected: tuple[int, int]) -> None:
    assert locate(text, 1, path) == expected


def test_locate_in_second_document_and_list_item() -> None:
    text = "a: 1\n---\nkind: List\nitems:\n  - spec: {x: 1}\n  - spec:\n      x: 2\n"
    assert locate(text, 2, "spec.x", item=1) == (7, 7)


def test_locate_survives_malformed_yaml() -> None:
    assert locate("a: [", 1, "a") == (1, 1)
