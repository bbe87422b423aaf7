"""IAM policy documents: canonical form, semantic equivalence, readable diff, grammar checks.

Rolekeeper compares what a user wrote with what AWS hands back. The two rarely match
as text: AWS rewrites bare account ids to root ARNs, users write a one-element list
where AWS writes a string, YAML turns `true` into a boolean. Comparing text caused
one update per second per role in other operators (ACK community issue 1869); this
module compares meaning instead, so a document that means the same never diffs.

Two forms are used:

- the *expanded* form (private): every value set (Action, Resource, principal values,
  condition values) is a sorted list without duplicates. Comparison and diff use it.
- the *canonical* form (`canonical`): the expanded form with one-element lists written
  as plain strings, the style of AWS's own managed policies. It is what we send.

Judgement calls, each deliberate:

- Sid and Id are kept and compared. They grant nothing, but AWS stores them verbatim,
  so a Sid edit produces exactly one update and never a loop.
- Action names are compared case-sensitively although IAM matches them
  case-insensitively: AWS keeps the case we send, so a case edit is one update.
- Condition keys are compared case-sensitively (see `_expand_condition`).

Documents come from pull requests and the API server, so every public function is total over
any input: `parse` bounds depth, sizes and numbers first (`controller.core.bounds`, with the
limits in `BOUNDS`), and anything else wrong is a PolicyError, never a RecursionError, a
TypeError from sorting mixed keys or a ValueError from a 5,000-digit number.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

from controller.core import bounds

__all__ = [
    "DEFAULT_VERSION",
    "Document",
    "PolicyError",
    "canonical",
    "describe_diff",
    "equivalent",
    "parse",
    "size",
    "to_json",
    "validate",
]

Document = dict[str, Any]

DEFAULT_VERSION = "2012-10-17"
VERSIONS = ("2012-10-17", "2008-10-17")
TOP_KEYS = ("Version", "Id", "Statement")
# Also the key order of a canonical statement, so a reviewer reads it top-down.
STATEMENT_KEYS = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
VALUE_SET_KEYS = ("Action", "NotAction", "Resource", "NotResource")
PRINCIPAL_KEYS = ("Principal", "NotPrincipal")
PRINCIPAL_TYPES = ("AWS", "CanonicalUser", "Federated", "Service")
CONDITION_OPERATORS = (
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
)

_ACCOUNT_ID = re.compile(r"\d{12}")
_ARN_PARTITION = re.compile(r"arn:(aws[a-z0-9-]*):")
_ACTION = re.compile(r"\*|[A-Za-z0-9-]+:[A-Za-z0-9*?]+")
_SID = re.compile(r"[A-Za-z0-9]*")
# `Null` takes no IfExists suffix; every other operator does (IAM condition grammar).
_OPERATOR = re.compile(
    r"(?:ForAllValues:|ForAnyValue:)?(?:(?:{})(?:IfExists)?|Null)".format(
        "|".join(CONDITION_OPERATORS)
    )
)


class PolicyError(ValueError):
    """A policy document that cannot be read; the message says what is wrong."""


# No document within IAM's largest quota (10,240 characters of inline policies per role) has
# more than ~2,600 list items or is deeper than 7 levels; the bounds leave room for an invalid
# document to be read and reported, and keep the recursive code below safe and fast.
BOUNDS = bounds.Bounds(max_depth=16, max_items=4_096, max_nodes=100_000, max_string=65_536)


# --- parsing -----------------------------------------------------------------------


def parse(doc: Mapping[str, Any] | str) -> Document:
    """Return the document as a fresh dict: a mapping is deep-copied, a string is JSON."""
    if isinstance(doc, str):
        if len(doc) > BOUNDS.max_nodes * 8:
            raise PolicyError(f"a JSON text of {len(doc):,} characters is too large to read")
        try:
            value = json.loads(doc)
        except json.JSONDecodeError as e:
            raise PolicyError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
        except RecursionError as e:
            raise PolicyError(f"nested deeper than {BOUNDS.max_depth} levels") from e
        except ValueError as e:  # a number of more than 4,300 digits
            raise PolicyError(f"not valid JSON: {e}") from e
    else:
        value = doc
    try:
        # Before any copy: a YAML alias shared a thousand times is one object until copied.
        bounds.check(value, BOUNDS)
    except bounds.BoundsError as e:
        raise PolicyError(str(e)) from e
    if not isinstance(doc, str):
        value = _plain(value)
    if not isinstance(value, dict):
        raise PolicyError(f"must be a JSON object, got {_json_type(value)}")
    return value


def _plain(value: Any) -> Any:
    """Deep copy into plain JSON values; Kopf hands read-only mapping views, PyYAML dates.

    Only called on values `bounds.check` accepted: depth and expanded size are bounded.
    """
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    # An unquoted `Version: 2012-10-17` in YAML is a date; in the policy it is text.
    if isinstance(value, datetime.date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float):
        return value  # immutable: nothing to copy
    raise PolicyError(f"{type(value).__name__} {value!r} is not a JSON value")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


# --- canonical form ----------------------------------------------------------------


def canonical(doc: Mapping[str, Any] | str, partition: str = "aws") -> Document:
    """What AWS would store, in a stable order; bare account ids become root ARNs.

    Total over any JSON object: parts that are not valid policy grammar are kept as
    they are (only re-ordered), so `validate` can report them and a diff can show them.
    """
    return _collapse(_expand(parse(doc), partition))


def to_json(doc: Mapping[str, Any] | str, *, partition: str = "aws") -> str:
    """Compact JSON of the canonical form: what we send to AWS."""
    # ensure_ascii=False: IAM counts characters, and "\u00e9" would count six.
    return json.dumps(
        canonical(doc, partition), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def size(doc: Mapping[str, Any] | str, *, partition: str = "aws") -> int:
    """Characters IAM counts toward its size quotas for this document.

    IAM ignores whitespace outside strings. We measure the canonical form rather than
    the user's text because that is what we send and AWS stores: it can be longer
    (bare ids become ARNs, Version is added) or shorter (lists collapse, duplicates go).
    """
    return len(to_json(doc, partition=partition))


def _expand(doc: Document, partition: str) -> Document:
    out: Document = {"Version": doc.get("Version", DEFAULT_VERSION)}
    if "Id" in doc:
        out["Id"] = doc["Id"]
    statements = doc.get("Statement", [])
    if not isinstance(statements, list):
        statements = [statements]
    out["Statement"] = _sorted_unique(_expand_statement(s, partition) for s in statements)
    for key in sorted(doc.keys() - set(TOP_KEYS)):
        out[key] = doc[key]
    return out


def _expand_statement(statement: Any, partition: str) -> Any:
    if not isinstance(statement, dict):
        return statement
    out: Document = {}
    for key, value in statement.items():
        if key == "Effect":
            out[key] = _effect(value)
        elif key in VALUE_SET_KEYS:
            out[key] = _value_set(value)
        elif key in PRINCIPAL_KEYS:
            principal = _expand_principal(value, partition)
            if principal != {}:  # an empty principal names nobody: same as none at all
                out[key] = principal
        elif key == "Condition":
            condition = _expand_condition(value)
            if condition != {}:
                out[key] = condition
        else:
            out[key] = value
    return _ordered(out, STATEMENT_KEYS)


def _effect(value: Any) -> Any:
    # validate() rejects "allow"; for comparison it still means Allow.
    if isinstance(value, str) and value.lower() in ("allow", "deny"):
        return value.capitalize()
    return value


def _expand_principal(value: Any, partition: str) -> Any:
    # AWS documents "*" and {"AWS": "*"} as the same principal (everyone).
    if value == "*":
        value = {"AWS": "*"}
    if not isinstance(value, dict):
        return value
    out: Document = {}
    for kind in sorted(value):
        values = value[kind]
        if kind == "AWS":
            values = [_root_arn(v, partition) for v in _as_list(values)]
        values = _value_set(values)
        if values != []:
            out[kind] = values
    return out


def _root_arn(value: Any, partition: str) -> Any:
    # AWS stores a bare account id as that account's root ARN and returns it so.
    if isinstance(value, str) and _ACCOUNT_ID.fullmatch(value):
        return f"arn:{partition}:iam::{value}:root"
    return value


def _expand_condition(value: Any) -> Any:
    """Operators and keys sorted, values as sorted string sets.

    Keys are compared case-sensitively. IAM documents condition key *names* as
    case-insensitive, but the tail of some keys is data (tag keys in
    aws:ResourceTag/<key>, the OIDC provider id in "oidc.eks...:sub") and we are not
    sure every service folds those. AWS returns keys as we sent them, so case
    sensitivity costs at most one update after a case-only edit, never a loop.
    """
    if not isinstance(value, dict):
        return value
    out: Document = {}
    for operator in sorted(value):
        block = value[operator]
        if isinstance(block, dict):
            block = {key: _value_set(block[key], _condition_text) for key in sorted(block)}
            if block == {}:  # an operator with no keys constrains nothing
                continue
        out[operator] = block
    return out


def _condition_text(value: Any) -> Any:
    # IAM evaluates condition values as strings; YAML and JSON give us true / 5.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return value


def _value_set(value: Any, normalize: Callable[[Any], Any] = lambda v: v) -> list[Any]:
    return _sorted_unique(normalize(item) for item in _as_list(value))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _sorted_unique(items: Iterable[Any]) -> list[Any]:
    by_key = {_order_key(item): item for item in items}
    return [by_key[key] for key in sorted(by_key)]


def _order_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _ordered(mapping: Document, first: Iterable[str]) -> Document:
    leading = [key for key in first if key in mapping]
    rest = sorted(mapping.keys() - set(leading))
    return {key: mapping[key] for key in [*leading, *rest]}


def _collapse(expanded: Document) -> Document:
    out = dict(expanded)
    out["Statement"] = [_collapse_statement(s) for s in expanded["Statement"]]
    return out


def _collapse_statement(statement: Any) -> Any:
    if not isinstance(statement, dict):
        return statement
    out = dict(statement)
    for key in VALUE_SET_KEYS:
        if key in out:
            out[key] = _single(out[key])
    for key in PRINCIPAL_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = {kind: _single(v) for kind, v in out[key].items()}
    if isinstance(out.get("Condition"), dict):
        out["Condition"] = {
            op: {k: _single(v) for k, v in block.items()} if isinstance(block, dict) else block
            for op, block in out["Condition"].items()
        }
    return out


def _single(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


# --- equivalence and diff ----------------------------------------------------------


def equivalent(a: Mapping[str, Any] | str, b: Mapping[str, Any] | str) -> bool:
    """True when both documents grant the same, however each is written."""
    return _matching_partition(parse(a), parse(b)) is not None


def _matching_partition(a: Document, b: Document) -> str | None:
    """The partition under which `a` and `b` expand equally, if any.

    A bare account id means the root of that account in the partition the document
    lives in, which the document alone does not say. A user writes "123456789012",
    AWS China returns "arn:aws-cn:iam::123456789012:root"; both live in one account,
    so it is enough that some partition makes them equal.
    """
    for partition in _candidate_partitions(a, b):
        if _expand(a, partition) == _expand(b, partition):
            return partition
    return None


def _candidate_partitions(a: Document, b: Document) -> list[str]:
    found = [*_partitions(a), *_partitions(b), "aws"]
    return list(dict.fromkeys(found))


def _partitions(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        match = _ARN_PARTITION.match(value)
        if match:
            yield match.group(1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _partitions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _partitions(item)


def describe_diff(
    old: Mapping[str, Any] | str | None, new: Mapping[str, Any] | str | None
) -> list[str]:
    """Readable lines for what changes from `old` to `new`; [] when equivalent.

    `None` stands for "no document": from None everything is added, to None removed.
    Statement indices are positions in the canonical (sorted) form: of `new` for
    additions and changes, of `old` for removals.
    """
    old_doc = parse(old) if old is not None else None
    new_doc = parse(new) if new is not None else None
    if old_doc is None and new_doc is None:
        return []
    if (
        old_doc is not None
        and new_doc is not None
        and _matching_partition(old_doc, new_doc) is not None
    ):
        return []
    # No partition makes them equal: read bare ids in the partition the documents name.
    partition = _candidate_partitions(old_doc or {}, new_doc or {})[0]
    nothing: Document = {"Statement": []}
    before = nothing if old_doc is None else _expand(old_doc, partition)
    after = nothing if new_doc is None else _expand(new_doc, partition)
    return _diff_lines(before, after)


# (sort key from the path, 0 for removal / 1 for addition, text)
_Line = tuple[tuple[tuple[int, str], ...], int, str]


def _diff_lines(before: Document, after: Document) -> list[str]:
    # Imported on first use: deepdiff pulls in pydantic (~20 MiB resident), and an operator
    # that only creates and checks entities never needs a diff in words.
    from deepdiff import DeepDiff  # noqa: PLC0415

    # Pair statements even when most of them changed (intersection 1), and describe a
    # paired statement field by field rather than as one opaque replacement.
    diff = DeepDiff(
        before,
        after,
        ignore_order=True,
        cutoff_intersection_for_pairs=1,
        threshold_to_diff_deeper=0,
        view="tree",
    )
    lines: list[_Line] = []
    for report, levels in diff.items():
        for level in levels:
            lines.extend(_level_lines(report, level))
    return [text for *_, text in sorted(lines)]


def _level_lines(report: str, level: Any) -> Iterator[_Line]:
    """(sort key, removal before addition, text) for one deepdiff report."""
    old_path: list[Any] = level.path(output_format="list")
    new_path: list[Any] = level.path(output_format="list", use_t2=True)
    if report in ("dictionary_item_removed", "iterable_item_removed"):
        yield _line(old_path, level.t1, f"- {_shown(level.t1)}")
    elif report in ("dictionary_item_added", "iterable_item_added"):
        yield _line(new_path, level.t2, f"+ {_shown(level.t2)}")
    elif new_path and isinstance(new_path[-1], int):
        # A member of a set was swapped for another: that is one removal, one addition.
        yield _line(old_path, level.t1, f"- {_shown(level.t1)}")
        yield _line(new_path, level.t2, f"+ {_shown(level.t2)}")
    else:
        yield _line(new_path, None, f"{_shown(level.t1)} -> {_shown(level.t2)}")


def _line(path: list[Any], value: Any, change: str) -> _Line:
    # A set member is named by its set: its position in a sorted list means nothing.
    # A statement keeps its index, there is no better name for it.
    if path and isinstance(path[-1], int) and not isinstance(value, dict | list):
        path = path[:-1]
    return _path_key(path), int(change.startswith("+")), f"{_render_path(path)}: {change}"


def _path_key(path: list[Any]) -> tuple[tuple[int, str], ...]:
    """Sort lines by statement index, then fields in document order (Effect, Action...)."""
    order = [*TOP_KEYS, *STATEMENT_KEYS]
    return tuple(
        (0, f"{p:09d}") if isinstance(p, int) else (1, f"{_rank(order, p):02d}{p}") for p in path
    )


def _rank(order: list[str], key: str) -> int:
    return order.index(key) if key in order else len(order)


def _render_path(path: list[Any]) -> str:
    text = ""
    for part in path:
        text = f"{text}[{part}]" if isinstance(part, int) else _join(text, part)
    return text


def _join(prefix: str, key: str) -> str:
    """`prefix.key`, or `prefix["key"]` when the key itself has dots or brackets."""
    if not re.fullmatch(r"[^.\[\]\s\"]+", key):
        # e.g. "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"
        return f"{prefix}[{json.dumps(key)}]"
    return f"{prefix}.{key}" if prefix else key


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(_display(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _display(value: Any) -> Any:
    """Write one-element lists as their element, the way the canonical form does."""
    if isinstance(value, dict):
        return {key: _display(item) for key, item in value.items()}
    if isinstance(value, list):
        return _single([_display(item) for item in value])
    return value


# --- grammar -----------------------------------------------------------------------


def validate(
    doc: Mapping[str, Any] | str, kind: Literal["trust", "identity"], field: str
) -> list[str]:
    """Grammar errors, each starting with the path of the offending field.

    `kind` is "trust" for a role's assume-role policy, "identity" for inline and
    managed permission policies. Stricter than comparison: AWS accepts only "Allow"
    and "Deny" as written, so "allow" is reported here even though it compares equal.
    """
    try:
        document = parse(doc)
    except PolicyError as e:
        return [f"{field}: {e}"]
    errors = list(_check_document(document, field))
    for path, statement in _statements(document, field):
        errors.extend(_check_statement(statement, kind, path))
    return errors


def _check_document(document: Document, field: str) -> Iterator[str]:
    for key in sorted(document.keys() - set(TOP_KEYS)):
        yield f"{field}: unknown key {key!r} (allowed: {', '.join(TOP_KEYS)})"
    version = document.get("Version", DEFAULT_VERSION)
    if version not in VERSIONS:
        yield f"{field}.Version: must be {' or '.join(VERSIONS)}, got {_quoted(version)}"
    if not isinstance(document.get("Id", ""), str):
        yield f"{field}.Id: must be a string"
    statements = document.get("Statement")
    if statements is None:
        yield f"{field}: Statement is required"
    elif statements == []:
        yield f"{field}.Statement: must not be empty"
    elif not isinstance(statements, dict | list):
        got = _json_type(statements)
        yield f"{field}.Statement: must be an object or a list of objects, got {got}"


def _statements(document: Document, field: str) -> Iterator[tuple[str, Any]]:
    statements = document.get("Statement")
    if isinstance(statements, dict):
        yield f"{field}.Statement", statements
    elif isinstance(statements, list):
        for index, statement in enumerate(statements):
            yield f"{field}.Statement[{index}]", statement


def _check_statement(statement: Any, kind: str, path: str) -> Iterator[str]:
    if not isinstance(statement, dict):
        yield f"{path}: must be an object, got {_json_type(statement)}"
        return
    for key in sorted(statement.keys() - set(STATEMENT_KEYS)):
        yield f"{path}: unknown key {key!r} (allowed: {', '.join(STATEMENT_KEYS)})"
    if "Sid" in statement and not (
        isinstance(statement["Sid"], str) and _SID.fullmatch(statement["Sid"])
    ):
        yield f"{path}.Sid: must contain only letters and digits, got {_quoted(statement['Sid'])}"
    yield from _check_effect(statement, path)
    yield from _check_actions(statement, path)
    if kind == "trust":
        yield from _check_trust(statement, path)
    else:
        yield from _check_identity(statement, path)
    if "Condition" in statement:
        yield from _check_condition(statement["Condition"], f"{path}.Condition")


def _check_effect(statement: Document, path: str) -> Iterator[str]:
    if "Effect" not in statement:
        yield f"{path}: Effect is required"
    elif statement["Effect"] not in ("Allow", "Deny"):
        hint = " (case-sensitive)" if _effect(statement["Effect"]) in ("Allow", "Deny") else ""
        yield f"{path}.Effect: must be Allow or Deny{hint}, got {_quoted(statement['Effect'])}"


def _check_actions(statement: Document, path: str) -> Iterator[str]:
    yield from _exactly_one(statement, "Action", "NotAction", path)
    for key in ("Action", "NotAction"):
        if key in statement:
            yield from _check_strings(
                statement[key],
                f"{path}.{key}",
                _ACTION.fullmatch,
                "is not an action; expected 'service:ActionName' or '*'",
            )


def _check_identity(statement: Document, path: str) -> Iterator[str]:
    for key in PRINCIPAL_KEYS:
        if key in statement:
            yield f"{path}: {key} is not allowed in an identity policy"
    yield from _exactly_one(statement, "Resource", "NotResource", path)
    for key in ("Resource", "NotResource"):
        if key in statement:
            yield from _check_strings(
                statement[key], f"{path}.{key}", _is_resource, "is not an ARN or '*'"
            )


def _check_trust(statement: Document, path: str) -> Iterator[str]:
    for key in ("Resource", "NotResource"):
        if key in statement:
            yield f"{path}: {key} is not allowed in a trust policy"
    yield from _exactly_one(statement, "Principal", "NotPrincipal", path, " in a trust policy")
    if "NotPrincipal" in statement and statement.get("Effect") == "Allow":
        yield f"{path}: NotPrincipal with Effect Allow is not allowed"
    for key in PRINCIPAL_KEYS:
        if key in statement:
            yield from _check_principal(statement[key], f"{path}.{key}")


def _check_principal(principal: Any, path: str) -> Iterator[str]:
    if principal == "*":
        return
    if not isinstance(principal, dict):
        got = _quoted(principal)
        yield f"{path}: must be '*' or an object such as {{\"Service\": ...}}, got {got}"
        return
    if not principal:
        yield f"{path}: must name at least one principal"
    for kind, values in principal.items():
        if kind not in PRINCIPAL_TYPES:
            yield f"{path}: unknown principal type {kind!r} (allowed: {', '.join(PRINCIPAL_TYPES)})"
        else:
            yield from _check_strings(values, f"{path}.{kind}", lambda _: True, "")


def _check_condition(condition: Any, path: str) -> Iterator[str]:
    if not isinstance(condition, dict):
        yield f"{path}: must be an object of operator -> {{key: value}}"
        return
    for operator, block in condition.items():
        if not _OPERATOR.fullmatch(operator):
            yield f"{path}: unknown operator {operator!r}"
        if not isinstance(block, dict):
            yield f"{_join(path, operator)}: must be an object of key -> value"
            continue
        if not block:
            # Also what a key with a null value becomes once the API server prunes it: refused
            # the same way in `plan` (which sees the null) and by the operator (which sees {}).
            yield f"{_join(path, operator)}: names no condition key (a null value is dropped)"
        for key, value in block.items():
            if not all(_is_condition_scalar(v) for v in _as_list(value)) or value == []:
                yield (
                    f"{_join(_join(path, operator), key)}: must be a string, number, "
                    "boolean or a non-empty list of them"
                )


def _exactly_one(statement: Document, a: str, b: str, path: str, where: str = "") -> Iterator[str]:
    if a in statement and b in statement:
        yield f"{path}: use exactly one of {a} or {b}, not both"
    elif a not in statement and b not in statement:
        yield f"{path}: {a} or {b} is required{where}"


def _check_strings(
    value: Any, path: str, ok: Callable[[str], object], problem: str
) -> Iterator[str]:
    values = _as_list(value)
    if value == [] or not all(isinstance(v, str) for v in values):
        yield f"{path}: must be a string or a non-empty list of strings"
        return
    for item in values:
        if not ok(item):
            yield f"{path}: {item!r} {problem}"


def _is_resource(value: str) -> bool:
    return value == "*" or value.startswith("arn:")


def _is_condition_scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int | float)


def _quoted(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, default=str)
