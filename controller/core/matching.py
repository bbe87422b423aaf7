"""Pattern matching by meaning: IAM actions, ARNs and names with a `{namespace}` placeholder.

Guardrails must judge what a document *means*, not how it is written: a denied `iam:PassRole`
is granted just as much by `iam:*`, `iam:Pass*`, `*` or `NotAction: [s3:*]` as by the literal
name. Every question here is asked about wildcard patterns on both sides (a guardrail's
`iam:*` against a statement's `iam:Pass*`), so the core operation is glob *overlap* ("can one
string match both?") and glob *cover* ("does every string of one match the other?").

Direction of error, chosen deliberately: when a question cannot be answered exactly, the
answer is the one that makes a guardrail refuse. Concretely:

- a statement is taken to grant an action when any of its patterns overlaps it, whatever its
  Resource and Condition (a conditional grant is still a grant);
- `NotAction` is taken to exclude an action only when one single NotAction entry covers it (a
  union of entries that covers it together is not recognised, so it over-reports);
- a Deny statement cancels a grant only when it is unconditional, on `Resource: "*"`, and one
  of its own patterns covers the action;
- deny lists match case-insensitively (over-matching is safe) while allow lists match
  case-sensitively (under-matching is safe), except actions, which IAM itself always matches
  case-insensitively.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

__all__ = [
    "NAMESPACE",
    "Hit",
    "action_matches",
    "arn_matches",
    "covers",
    "document_allows_any",
    "document_grants",
    "is_wildcard_resource",
    "name_matches",
    "overlaps",
    "pattern_regex",
    "statement_actions",
    "statement_grants",
    "statements",
    "substitute",
]

NAMESPACE = "{namespace}"
_ARN_PARTS = 6


class Hit(NamedTuple):
    """One statement granting a denied action: where, through what, and which denial it hits."""

    statement: int  # index in the document's Statement list (0 for a single statement object)
    pattern: str  # what in the statement grants it: an Action entry, or "NotAction [...]"
    denied: str  # the denied pattern it hits, as the guardrail wrote it


# --- glob algebra ----------------------------------------------------------------------


def overlaps(a: str, b: str, *, ignore_case: bool = True) -> bool:
    """Whether some string matches both glob patterns (`*` any run, `?` one character)."""
    if ignore_case:
        a, b = a.lower(), b.lower()
    return _overlaps(a, b)


@functools.lru_cache(maxsize=4096)
def _overlaps(a: str, b: str) -> bool:
    @functools.cache
    def step(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            # a's star matches nothing more, or swallows one character that b produces.
            if step(i + 1, j):
                return True
            return j < len(b) and step(i, j + 1)
        if j < len(b) and b[j] == "*":
            return step(i, j + 1) or (i < len(a) and step(i + 1, j))
        if i == len(a) or j == len(b):
            return False
        return (a[i] == b[j] or "?" in (a[i], b[j])) and step(i + 1, j + 1)

    return step(0, 0)


def covers(general: str, specific: str, *, ignore_case: bool = True) -> bool:
    """Whether every string matching `specific` also matches `general` (both globs).

    Exact for single patterns: a `?` of `general` never stands for a `*` of `specific`, whose
    run may be empty or long.
    """
    if ignore_case:
        general, specific = general.lower(), specific.lower()
    return _covers(general, specific)


@functools.lru_cache(maxsize=4096)
def _covers(g: str, s: str) -> bool:
    @functools.cache
    def step(i: int, j: int) -> bool:
        if i == len(g):
            return j == len(s)
        if g[i] == "*":
            return step(i + 1, j) or (j < len(s) and step(i, j + 1))
        if j == len(s) or s[j] == "*":
            return False
        if g[i] == "?":
            return step(i + 1, j + 1)
        return g[i] == s[j] and step(i + 1, j + 1)

    return step(0, 0)


def pattern_regex(
    pattern: str, namespace: str | None = None, *, ignore_case: bool = False
) -> re.Pattern[str]:
    """A glob with an optional `{namespace}` placeholder as a compiled, anchored regex.

    The namespace is substituted as a literal and everything else except `*` and `?` is
    escaped, so a `.` or `+` in a name pattern means itself.
    """
    return _compile(pattern, namespace, ignore_case)


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str, namespace: str | None, ignore_case: bool) -> re.Pattern[str]:
    pieces = pattern.split(NAMESPACE)
    literal = re.escape(namespace) if namespace is not None else "(?!)"  # unknown: no match
    body = literal.join(_glob_body(piece) for piece in pieces)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _glob_body(piece: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in piece)


def substitute(pattern: str, namespace: str | None) -> str:
    """The pattern with `{namespace}` replaced: by the namespace, or by `*` when unknown."""
    return pattern.replace(NAMESPACE, namespace if namespace is not None else "*")


# --- names and ARNs --------------------------------------------------------------------


def name_matches(
    pattern: str, value: str, namespace: str | None = None, *, ignore_case: bool = False
) -> bool:
    """Whether a name or path matches a glob that may contain `{namespace}`."""
    return pattern_regex(pattern, namespace, ignore_case=ignore_case).fullmatch(value) is not None


def arn_matches(
    pattern: str, arn: str, namespace: str | None = None, *, ignore_case: bool = False
) -> bool:
    """Whether an ARN matches an ARN pattern the way IAM's ArnLike does.

    Like ArnLike, each of the six colon-separated parts is matched on its own, so a `*` in the
    account part never swallows the resource part, and a pattern of fewer parts matches
    nothing. A pattern that is not an ARN at all (`*`) is matched as a whole.
    """
    pattern_parts = pattern.split(":", _ARN_PARTS - 1)
    arn_parts = arn.split(":", _ARN_PARTS - 1)
    if pattern_parts[0] != "arn":
        return name_matches(pattern, arn, namespace, ignore_case=ignore_case)
    if len(pattern_parts) != _ARN_PARTS or len(arn_parts) != _ARN_PARTS:
        return False
    return all(
        name_matches(p, a, namespace, ignore_case=ignore_case)
        for p, a in zip(pattern_parts, arn_parts, strict=True)
    )


# --- actions and statements ------------------------------------------------------------


def action_matches(pattern: str, action: str) -> bool:
    """Whether an IAM action pattern (`iam:Pass*`, `*`) matches an action, as IAM does."""
    return name_matches(pattern, action, ignore_case=True)


def statements(doc: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The statements of a document with their index; a single statement object is index 0."""
    found = doc.get("Statement")
    items = [found] if isinstance(found, Mapping) else found if isinstance(found, list) else []
    for index, statement in enumerate(items):
        if isinstance(statement, Mapping):
            yield index, statement


def statement_actions(statement: Mapping[str, Any], key: str) -> list[str]:
    """A statement's Action or NotAction as a list of strings (a bare string is one)."""
    return _strings(statement.get(key))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _is_deny(statement: Mapping[str, Any]) -> bool:
    effect = statement.get("Effect")
    return isinstance(effect, str) and effect.lower() == "deny"


def _granting(statement: Mapping[str, Any], action: str) -> str | None:
    """What in an Allow statement grants some action matching the pattern `action`, if any."""
    if _is_deny(statement):
        return None
    for pattern in statement_actions(statement, "Action"):
        if overlaps(pattern, action):
            return pattern
    if "NotAction" in statement:
        excluded = statement_actions(statement, "NotAction")
        if not any(covers(pattern, action) for pattern in excluded):
            return f"NotAction [{', '.join(excluded)}]"
    return None


def statement_grants(statement: Mapping[str, Any], action: str) -> bool:
    """Whether an Allow statement grants `action` (an action or a pattern), by meaning.

    Deny statements grant nothing. Resource and Condition are ignored: see the module
    docstring for why that errs on the refusing side.
    """
    return _granting(statement, action) is not None


def _cancelled(doc: Mapping[str, Any], action: str) -> bool:
    """Whether an unconditional Deny on every resource takes the whole pattern away."""
    for _, statement in statements(doc):
        if not _is_deny(statement) or "Condition" in statement:
            continue
        if _strings(statement.get("Resource")) != ["*"]:
            continue
        if any(covers(p, action) for p in statement_actions(statement, "Action")):
            return True
    return False


def document_allows_any(doc: Mapping[str, Any], denied_patterns: Iterable[str]) -> list[Hit]:
    """Every (statement, denied pattern) where the document may grant a denied action."""
    hits: list[Hit] = []
    for denied in denied_patterns:
        if _cancelled(doc, denied):
            continue
        for index, statement in statements(doc):
            granting = _granting(statement, denied)
            if granting is not None:
                hits.append(Hit(index, granting, denied))
    return sorted(hits)


def document_grants(doc: Mapping[str, Any], action: str) -> bool:
    """Whether the document may grant `action` at all (see `document_allows_any`)."""
    return bool(document_allows_any(doc, [action]))


def is_wildcard_resource(statement: Mapping[str, Any]) -> bool:
    """Whether a statement applies to every resource (of its service).

    True for `Resource: "*"`, an ARN whose resource part is just `*` (`arn:aws:s3:::*`),
    and any `NotResource`, which names the few resources it leaves out.
    """
    if "NotResource" in statement:
        return True
    for resource in _strings(statement.get("Resource")):
        parts = resource.split(":", _ARN_PARTS - 1)
        if resource == "*" or (len(parts) == _ARN_PARTS and parts[-1] == "*"):
            return True
    return False
