"""`rolekeeper lint PATH…`: security findings on manifests, offline, as text, JSON or SARIF.

No AWS call is made: each IAMRole/IAMUser read from the paths is parsed into its kind-neutral
view and judged by `controller.core.findings`, with the object's suppression annotation
applied. Every finding carries the file, line and column of its field, so a CI job can hand
the SARIF to GitHub code scanning and the author sees it on the line they wrote.

Exit codes (what CI acts on): 0 nothing at or above `--fail-on`; 1 an unsuppressed finding at
or above it; 2 some input could not be linted (unreadable file, malformed YAML, invalid spec),
reported like a finding and never as a traceback. This module returns the text and never
prints: cli.py does.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.core import catalogue
from controller.core.findings import SUPPRESS_ANNOTATION, Finding, Severity, findings_for, suppress
from controller.review.positions import FileMap
from controller.review.sarif import INPUT_RULE, Location, sarif_log

if TYPE_CHECKING:
    from controller.review.manifests import Manifest

__all__ = ["FORMATS", "add_lint_arguments", "lint"]

FORMATS = ("text", "json", "sarif")
TOOL_VERSION = "0.1.0"
_FIELD = re.compile(r"((?:spec|metadata)(?:\.[^\s:]+|\[\d+\])*):")


@dataclass(frozen=True)
class _Result:
    """One line of the report: a finding, or input that could not be linted (finding None)."""

    where: Location
    finding: Finding | None
    error: str = ""


def add_lint_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rolekeeper lint`, for cli.py to add to its subparser."""
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="manifest files or directories (recursive), or - for stdin")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="text",
                        help="text for people, json for scripts, sarif for code scanning")
    parser.add_argument("--fail-on", choices=[str(s) for s in Severity], default=None,
                        help="exit 1 when an unsuppressed finding is this severe or worse")
    parser.add_argument("--account-id", default=None,
                        help="the AWS account the objects live in: lets trust in other "
                        "accounts be checked for sts:ExternalId or MFA (RK-TRUST-003)")  # fmt: skip


def lint(
    paths: Sequence[str],
    fmt: str = "text",
    fail_on: str | None = None,
    *,
    account_id: str | None = None,
) -> tuple[int, str]:
    """Lint the manifests under `paths`; (exit code, report in `fmt`)."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    threshold = Severity(fail_on.lower()) if fail_on else None
    results = _results(paths, account_id)
    return _exit_code(results, threshold), _render(results, fmt)


def _results(paths: Sequence[str], account_id: str | None) -> list[_Result]:
    # Imported here: the manifests module pulls in the kinds registry, which `rolekeeper
    # --help` need not load.
    from controller.review.manifests import load  # noqa: PLC0415

    found = load(paths)
    maps: dict[str, FileMap | None] = {}
    results = [
        _Result(Location(p.source.file, p.source.line, 1, "", ""), None, p.message)
        for p in found.problems
    ]
    for manifest in found.manifests:
        file_map = maps.setdefault(manifest.source.file, _file_map(manifest.source.file))
        results += _lint_one(manifest, file_map, account_id)
    return results


def _lint_one(
    manifest: Manifest, file_map: FileMap | None, account_id: str | None
) -> list[_Result]:
    from controller.kinds.registry import view_of  # noqa: PLC0415
    from controller.review.manifests import meta  # noqa: PLC0415

    obj = manifest.obj
    name = f"{manifest.kind} {meta(obj, 'namespace')}/{meta(obj, 'name')}"
    try:
        view = view_of(obj)
    except ValueError as exc:  # SpecError is a ValueError listing every broken rule
        return [
            _Result(_where(manifest, file_map, name, _error_field(e)), None, f"{name}: {e}")
            for e in getattr(exc, "errors", [str(exc)])
        ]
    annotation = _annotations(obj).get(SUPPRESS_ANNOTATION, "")
    return [
        _Result(_where(manifest, file_map, name, finding.field), finding)
        for finding in suppress(findings_for(view, account_id=account_id), annotation)
    ]


def _where(manifest: Manifest, file_map: FileMap | None, name: str, field: str) -> Location:
    source = manifest.source
    if file_map is None or not field:
        return Location(source.file, source.line, 1, name, field)
    line, column = file_map.locate(source.document, field, source.item)
    return Location(source.file, line, column, name, field)


def _error_field(error: str) -> str:
    """The field a spec error starts with ("spec.maxSessionDuration: 60 is below..."), or ""."""
    match = _FIELD.match(error)
    return match[1] if match else ""


def _file_map(file: str) -> FileMap | None:
    if file == "-":
        return None  # stdin was read by load(); lines fall back to each object's start
    try:
        return FileMap(Path(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping):
        return {}
    return {str(k): str(v) for k, v in annotations.items()}


def _exit_code(results: Sequence[_Result], threshold: Severity | None) -> int:
    if any(r.finding is None for r in results):
        return 2
    if threshold is not None and any(
        r.finding and not r.finding.suppressed and r.finding.severity.at_least(threshold)
        for r in results
    ):
        return 1
    return 0


# --- rendering -----------------------------------------------------------------------


def _render(results: Sequence[_Result], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(_json(results), indent=2, ensure_ascii=False) + "\n"
    if fmt == "sarif":
        log = sarif_log([_sarif(r) for r in results], tool_version=TOOL_VERSION)
        return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
    return _text(results)


def _text(results: Sequence[_Result]) -> str:
    lines = []
    for r in results:
        at = f"{r.where.file}:{r.where.line}:{r.where.column}"
        if r.finding is None:
            lines.append(f"{at}: error {INPUT_RULE.id} {r.error}")
            continue
        f = r.finding
        lines.append(f"{at}: {f.severity} {f.id} {r.where.obj} {f.field}: {f.message} ({f.link})")
        if f.suppressed:
            lines.append(f"    suppressed: {f.reason}")
    lines.append(_summary(results))
    return "\n".join(lines) + "\n"


def _summary(results: Sequence[_Result]) -> str:
    findings = [r.finding for r in results if r.finding is not None]
    suppressed = sum(f.suppressed for f in findings)
    errors = len(results) - len(findings)
    return (
        f"{len(findings)} finding(s), {suppressed} suppressed, {errors} input error(s); "
        f"action catalogue {catalogue.version() or 'not installed (unknown actions unchecked)'}"
    )


def _json(results: Sequence[_Result]) -> dict[str, Any]:
    def place(r: _Result) -> dict[str, Any]:
        return {"file": r.where.file, "line": r.where.line, "column": r.where.column,
                "object": r.where.obj}  # fmt: skip

    return {
        "findings": [{**place(r), **r.finding.to_json()} for r in results if r.finding],
        "errors": [{**place(r), "message": r.error} for r in results if r.finding is None],
        "catalogue": catalogue.version(),
        "summary": _summary(results),
    }


def _sarif(r: _Result) -> tuple[Location, str, str, str | None]:
    if r.finding is None:
        return r.where, INPUT_RULE.id, r.error, None
    f = r.finding
    return r.where, f.id, f"{f.message} ({f.field})", f.reason if f.suppressed else None
