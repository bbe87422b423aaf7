"""SARIF 2.1.0 for `rolekeeper lint --format sarif`: findings on the pull request's lines.

GitHub code scanning (and other SARIF viewers) annotate a line from a result's
physicalLocation, and rank it by the rule's `security-severity` property. Suppressed findings
are emitted with a `suppressions` entry carrying the reason, as SARIF intends, so the viewer
shows them as dismissed rather than losing them. Input that could not be linted (malformed
YAML, an invalid spec) is a result of the rule RK-INPUT-001 at its line, so the author sees it
where they typed it, and makes the invocation unsuccessful.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from controller.core.findings import RULES, Rule, Severity

__all__ = ["INPUT_RULE", "Location", "sarif_log"]

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/rolekeeper/rolekeeper/blob/main/docs/findings.md"
INPUT_RULE = Rule(
    "RK-INPUT-001", Severity.HIGH, "The manifest could not be linted",
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/",
)  # fmt: skip

# GitHub's scale: >= 9.0 critical, >= 7.0 high, >= 4.0 medium, above 0 low.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.1",
}
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


class Location:
    """Where a result is: file, 1-based line and column, the object and its field."""

    __slots__ = ("column", "field", "file", "line", "obj")

    def __init__(self, file: str, line: int, column: int, obj: str, field: str) -> None:
        self.file, self.line, self.column, self.obj, self.field = file, line, column, obj, field


def sarif_log(
    results: Sequence[tuple[Location, str, str, str | None]], *, tool_version: str
) -> dict[str, Any]:
    """A SARIF log of one run; each result is (where, rule id, message, suppression reason)."""
    rules = [*RULES.values(), INPUT_RULE]
    index = {rule.id: i for i, rule in enumerate(rules)}
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "rolekeeper",
                "semanticVersion": tool_version,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(rule) for rule in rules],
            }},
            "invocations": [{"executionSuccessful": not any(
                rule_id == INPUT_RULE.id for _, rule_id, _, _ in results
            )}],
            "results": [
                _result(where, rule_id, message, reason, rules[index[rule_id]], index[rule_id])
                for where, rule_id, message, reason in results
            ],
        }],
    }  # fmt: skip


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": "".join(word.capitalize() for word in rule.title.split() if word.isalnum()),
        "shortDescription": {"text": rule.title},
        "helpUri": rule.link,
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "security-severity": _SECURITY_SEVERITY[rule.severity],
            "tags": ["security", "iam"],
        },
    }


def _result(
    where: Location, rule_id: str, message: str, reason: str | None, rule: Rule, index: int
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": index,
        "level": _LEVEL[rule.severity],
        "message": {"text": message},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": {"uri": _uri(where.file)},
                "region": {"startLine": where.line, "startColumn": where.column},
            },
            "logicalLocations": [{
                "fullyQualifiedName": f"{where.obj} {where.field}".strip(), "kind": "member",
            }],
        }],
        "partialFingerprints": {"rolekeeper/v1": f"{rule_id}:{where.obj}:{where.field}"},
    }  # fmt: skip
    if reason is not None:
        result["suppressions"] = [{"kind": "inSource", "justification": reason}]
    return result


def _uri(file: str) -> str:
    """A URI reference for a path as given: relative stays relative (GitHub resolves it)."""
    if file == "-":
        return "stdin"
    path = Path(file)
    return path.as_uri() if path.is_absolute() else quote(path.as_posix())

