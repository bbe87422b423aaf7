"""`rolekeeper lint`'s SARIF as a GitLab Code Quality report (`artifacts:reports:codequality`).

GitLab does not read SARIF; its Code Quality widget (every tier) reads a list of Code Climate
issues: description, check_name, fingerprint, severity and location (path, lines.begin).
Suppressed findings are left out (code scanning shows them as dismissed; Code Quality has no
such state). The fingerprint is the finding's own (`rolekeeper/v1`: rule, object, field) with
its file, so a finding keeps its identity when lines move. Standard library only: it runs with
the venv's Python in `ci/rolekeeper-ci.sh lint`.

    python ci/codequality.py rolekeeper.sarif > codequality.json
"""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

# GitHub's security-severity scale (controller/review/sarif.py) onto Code Climate's names.
_SEVERITY = ((9.0, "blocker"), (7.0, "critical"), (4.0, "major"), (1.0, "minor"))


def severity(score: str) -> str:
    value = float(score)
    return next((name for floor, name in _SEVERITY if value >= floor), "info")


def path_of(uri: str) -> str:
    """The repository-relative path of a SARIF artifact URI (relative stays relative)."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
        try:
            return path.relative_to(Path.cwd()).as_posix()
        except ValueError:
            return path.as_posix()
    return urllib.parse.unquote(uri)


def issues(log: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for run in log["runs"]:
        rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
        for result in run["results"]:
            if result.get("suppressions"):
                continue
            physical = result["locations"][0]["physicalLocation"]
            path = path_of(physical["artifactLocation"]["uri"])
            line = physical.get("region", {}).get("startLine", 1)
            identity = result.get("partialFingerprints", {}).get("rolekeeper/v1") or (
                f"{result['ruleId']}:{line}:{result['message']['text']}"
            )
            rule = rules.get(result["ruleId"], {})
            out.append({
                "type": "issue",
                "check_name": result["ruleId"],
                "description": result["message"]["text"],
                "categories": ["Security"],
                "severity": severity(rule.get("properties", {}).get("security-severity", "0")),
                "fingerprint": hashlib.sha256(f"{path}\0{identity}".encode()).hexdigest(),
                "location": {"path": path, "lines": {"begin": line}},
            })  # fmt: skip
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: codequality.py FILE.sarif", file=sys.stderr)
        return 2
    try:
        log = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        report = issues(log)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        # No SARIF (lint could not start): an empty report, and the lint step's log says why.
        print(f"codequality: no report from {argv[0]}: {exc!r}", file=sys.stderr)
        report = []
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
