"""Formats of a `rolekeeper plan`: text for terminals, Markdown for PR comments, JSON for tools.

Every string that came from the input (file names, object names, AWS names, descriptions, tag
and policy values, messages quoting them) is untrusted: a pull request chooses it. Each format
escapes it for where it lands, so it is shown but never interpreted: no control characters or
ANSI sequences reach a terminal or CI log (`printable`), no Markdown block (heading, list,
quote) or HTML starts inside a comment (`_escape`, `_code`, `_html`), and JSON stays JSON with
the characters that terminals and JavaScript treat specially written as JSON escapes. Ordinary
text is unchanged, so the golden outputs are byte-identical.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from controller.review.compute import PLAN_FORMAT, Change, Review, document_field
from controller.review.manifests import printable

if TYPE_CHECKING:
    from controller.core.actions import Action

# Every format is a pure function of the Review (no clock, no ids): the golden tests rely on it.

SYMBOLS = {
    "create": "+",
    "update": "~",
    "delete": "-",
    "noop": "=",
    "denied": "!",
    "conflict": "!",
    "refused": "!",
    "invalid": "!",
}
# ANSI SGR codes per action; only used when stdout is a terminal.
COLORS = {
    "create": "32",
    "update": "33",
    "delete": "31",
    "noop": "2",
    "denied": "1;31",
    "conflict": "1;31",
    "refused": "1;31",
    "invalid": "1;31",
    "+": "32",
    "-": "31",
}
DOCUMENT_PARAMS = ("AssumeRolePolicyDocument", "PolicyDocument")
MARKER = "<!-- rolekeeper-plan -->"


# --- json -------------------------------------------------------------------------------------


def json_document(review: Review) -> dict[str, Any]:
    """The stable, versioned schema documented in docs/plan.md."""
    return {
        "formatVersion": PLAN_FORMAT,
        "changes": [
            {
                "kind": c.kind,
                "namespace": c.namespace,
                "name": c.name,
                "awsName": c.aws_name,
                "action": c.action,
                # Policy documents stay JSON strings, exactly as sent to IAM.
                "calls": [{"api": a.api, "params": dict(a.params)} for a in c.calls],
                "diff": [{"field": d.field, "changes": list(d.changes)} for d in c.diff],
                "message": c.message,
                "source": c.source.to_json() if c.source else None,
                # Added within formatVersion 1: Finding.to_json(), as in status.findings.
                "findings": [f.to_json() for f in c.findings],
            }
            for c in review.changes
        ],
        "summary": review.summary(),
        "errors": [{"source": p.source.to_json(), "message": p.message} for p in review.problems],
        "notes": list(review.notes),
    }


# JSON escapes only U+0000-U+001F; these also act on terminals (DEL, C1 such as CSI U+009B),
# reorder what a reader sees (bidi controls, "Trojan source"), hide text (zero-width) or end a
# JavaScript string (U+2028/9). Written as \u escapes they mean the same to a JSON reader.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def json_text(review: Review) -> str:
    text = json.dumps(json_document(review), indent=2, ensure_ascii=False) + "\n"
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


# --- shared -----------------------------------------------------------------------------------


def headline(review: Review) -> str:
    """`2 to create, 1 to update, 0 to delete, 3 unchanged` (+ problems, when there are any)."""
    n = review.summary()
    parts = [f"{n['create']} to create", f"{n['update']} to update", f"{n['delete']} to delete"]
    parts.append(f"{n['noop']} unchanged")
    for action, one, many in (
        ("denied", "denied by a guardrail", "denied by guardrails"),
        ("conflict", "conflict", "conflicts"),
        ("refused", "refused", "refused"),
        ("invalid", "invalid", "invalid"),
    ):
        if n[action]:
            parts.append(f"{n[action]} {one if n[action] == 1 else many}")
    if review.problems:
        parts.append(f"{len(review.problems)} unreadable input")
    found = [f for c in review.changes for f in c.findings]
    if found:
        suppressed = sum(f.suppressed for f in found)
        parts.append(f"{len(found)} security finding{'s' if len(found) != 1 else ''}"
                     + (f" ({suppressed} suppressed)" if suppressed else ""))  # fmt: skip
    return ", ".join(parts)


def _who(change: Change) -> str:
    return printable(f"{change.kind} {change.namespace}/{change.name}")


def _diff_lines(changes: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """(sign, text) from `policy.describe_diff` lines, so +/- lead as in a unified diff."""
    for line in changes:
        signed = re.fullmatch(r"(.*?): ([+-]) (.*)", line, re.DOTALL)
        if signed:
            yield signed[2], f"{signed[1]}: {signed[3]}"
            continue
        changed = re.fullmatch(r"(.*?): (.*) -> (.*)", line, re.DOTALL)
        if changed:
            yield "-", f"{changed[1]}: {changed[2]}"
            yield "+", f"{changed[1]}: {changed[3]}"
            continue
        yield " ", line


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value if value and not re.search(r"\s|\"", value) else json.dumps(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return json.dumps(value, ensure_ascii=False)


def _tags(value: Any) -> str:
    return printable(", ".join(f"{t['Key']}={t['Value']}" for t in value))


def _pretty(document: str) -> str:
    return printable_lines(json.dumps(json.loads(document), indent=2, ensure_ascii=False))


def printable_lines(text: str) -> str:
    """`printable` on each line: line breaks stay, every other control character is escaped."""
    return "\n".join(printable(line) for line in text.splitlines())


def _inline_params(action: Action) -> list[str]:
    return [
        printable(f"{key}={_scalar(value)}")
        for key, value in action.params.items()
        if key not in DOCUMENT_PARAMS and key != "Tags"
    ]


# --- text -------------------------------------------------------------------------------------


def text(review: Review, color: bool = False) -> str:
    paint: Callable[[str, str], str] = (
        (lambda code, s: f"\033[{code}m{s}\033[0m") if color else (lambda _, s: s)
    )
    out: list[str] = []
    for problem in review.problems:
        out.append(paint("1;31", f"! error {problem.source}: {printable(problem.message)}"))
    for change in review.changes:
        if change.action == "noop" and not change.findings:
            continue
        where = f"  at {change.source}" if change.source else ""
        title = f"{SYMBOLS[change.action]} {change.action} {_who(change)}"
        aws_name = printable(change.aws_name)
        out.append(
            f"{paint(COLORS[change.action], title)}: {change.entity_kind} {aws_name}{where}"
        )
        out.extend(f"    {printable(line)}" for line in change.message.splitlines())
        for finding in change.findings:
            line = f"! {finding.severity} {finding.id} {finding.field}: {finding.message}"
            out.append("    " + paint("1;33", printable(line)) + f" ({printable(finding.link)})")
            if finding.suppressed:
                out.append(f"      suppressed: {printable(finding.reason)}")
        diffs = {d.field: d.changes for d in change.diff}
        for action in change.calls:
            out.append("    " + " ".join([paint("1", action.api), *_inline_params(action)]))
            if "Tags" in action.params:
                out.append(f"      Tags: {_tags(action.params['Tags'])}")
            where_doc = document_field(action)
            if where_doc in diffs:
                out.append(f"      {where_doc}:")
                for sign, line in _diff_lines(diffs[where_doc]):
                    text_line = printable(f"{sign} {line}")
                    out.append("        " + paint(COLORS.get(sign, "0"), text_line))
                continue
            for key in DOCUMENT_PARAMS:
                if key in action.params:
                    out.append(f"      {key}:")
                    out.extend(
                        f"        {line}" for line in _pretty(action.params[key]).splitlines()
                    )
    unchanged = [c for c in review.changes if c.action == "noop"]
    if unchanged:
        names = ", ".join(_who(c) for c in unchanged)
        out.append(paint(COLORS["noop"], f"= {len(unchanged)} unchanged: {names}"))
    out.extend(paint("1;33", f"Note: {printable(note)}") for note in review.notes)
    if out:
        out.append("")
    out.append(f"Plan: {headline(review)}.")
    return "\n".join(out) + "\n"


# --- markdown ---------------------------------------------------------------------------------


def markdown(review: Review) -> str:
    """A PR/MR comment: a headline, one collapsible section per object that is not unchanged."""
    # The marker lets a CI job find and edit its previous comment instead of adding another.
    out = [MARKER, "### Rolekeeper plan", "", f"**{headline(review)}**", ""]
    out.extend(f"> **Note:** {_escape(note)}\n" for note in review.notes)
    if review.problems:
        out.append("**Input that could not be read:**")
        out.append("")
        out.extend(f"- {_code(str(p.source))}: {_escape(p.message)}" for p in review.problems)
        out.append("")
    for change in review.changes:
        if change.action != "noop" or change.findings:
            out.extend(_markdown_change(change))
    unchanged = [c for c in review.changes if c.action == "noop"]
    if unchanged:
        names = ", ".join(_code(_who(c)) for c in unchanged)
        out.append(f"{len(unchanged)} unchanged: {names}")
        out.append("")
    if not review.changes and not review.problems:
        out.extend(["No IAMRole or IAMUser objects in the input.", ""])
    return "\n".join(out)


def _markdown_change(change: Change) -> list[str]:
    symbol = _html(f"{SYMBOLS[change.action]} {change.action}")
    calls = f" ({len(change.calls)} call{'s' if len(change.calls) != 1 else ''})"
    summary = (
        f"<summary><code>{symbol}</code> {_html(change.kind)} "
        f"<b>{_html(change.namespace)}/{_html(change.name)}</b> &rarr; "
        f"{change.entity_kind} <code>{_html(change.aws_name)}</code>"
        f"{calls if change.calls else ''}</summary>"
    )
    out = ["<details>", summary, ""]
    if change.source:
        out.extend([f"From {_code(str(change.source))}.", ""])
    if change.message:
        quoted = [f"> {_escape(line)}" for line in change.message.splitlines()]
        out.extend([*"\n>\n".join(quoted).splitlines(), ""])
    if change.findings:
        out.extend(["**Security findings:**", ""])
        for f in change.findings:
            rule = f"[{f.id}]({_html(f.link)})"
            item = f"- **{f.severity}** {rule} {_code(f.field)}: {_escape(f.message)}"
            if f.suppressed:
                item += f" _(suppressed: {_escape(f.reason)})_"
            out.append(item)
        out.append("")
    diffs = {d.field: d.changes for d in change.diff}
    for number, action in enumerate(change.calls, 1):
        params = " ".join(_code(p) for p in _inline_params(action))
        out.append(f"{number}. **{action.api}** {params}".rstrip())
        # Blank lines keep Tags and documents as paragraphs of the list item, not run-on text.
        if "Tags" in action.params:
            tags = ", ".join(_code(f"{t['Key']}={t['Value']}") for t in action.params["Tags"])
            out.extend(["", f"   Tags: {tags}"])
        where = document_field(action)
        if where in diffs:
            out.extend(["", f"   {_code(where)} changes:"])
            body = "\n".join(
                printable(f"{sign} {line}") for sign, line in _diff_lines(diffs[where])
            )
            out.extend(_fenced("diff", body, indent="   "))
            continue
        for key in DOCUMENT_PARAMS:
            if key in action.params:
                out.extend(["", f"   {key}:"])
                out.extend(_fenced("json", _pretty(action.params[key]), indent="   "))
    if out[-1]:
        out.append("")
    out.extend(["</details>", ""])
    return out


def _fenced(language: str, body: str, indent: str) -> list[str]:
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return [
        f"{indent}{fence}{language}",
        *(f"{indent}{line}" for line in body.splitlines()),
        f"{indent}{fence}",
    ]


def _code(value: str) -> str:
    """An inline code span that survives backticks in the value (IAM descriptions allow them).

    Inside a code span Markdown and HTML are literal; only a line break could end it (a new
    line may start a heading), and `printable` leaves none.
    """
    value = printable(value)
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def _escape(value: str) -> str:
    """Plain text in Markdown: no accidental emphasis, links or HTML (`<metadata.uid>`).

    One line (`printable` escapes line breaks), and it cannot start a block either: a leading
    `#`, `=`, `-`, `+` or `1.` would make a heading, setext underline, list or numbered item.
    """
    text = re.sub(r"([\\`*_\[\]|~])", r"\\\1", html.escape(printable(value), quote=False))
    return re.sub(r"^(\s*)([#=+-]|\d+(?=[.)]))", _escape_block_marker, text)


def _escape_block_marker(match: re.Match[str]) -> str:
    # `\#` and `\-` are Markdown escapes; a digit cannot be escaped, so its `.` or `)` is.
    indent, marker = match[1], match[2]
    return f"{indent}{marker}\\" if marker.isdigit() else f"{indent}\\{marker}"


def _html(value: str) -> str:
    """Text inside an HTML element of the comment (a `<summary>`): one line, tags escaped."""
    return html.escape(printable(value))
