"""Bounds on untrusted parsed values: depth, collection sizes, string lengths, exact integers.

Everything Rolekeeper reads from a pull request or the API server is a tree of JSON-like
values. Before any recursive or quadratic code sees one, `check` walks it once, iteratively
(no recursion, so a 100,000-deep value cannot overflow the stack), and says what is too big or
not JSON. The manifest loader and the kinds' parsers share these checks, so `plan` and the
operator refuse the same input with the same message.

Why each rule:

- depth: Kopf and `copy.deepcopy` recurse; ~300 levels crash them. No IAM object is deeper
  than about 10 levels.
- collection sizes: several parsers are O(n log n) or worse per list; IAM's own quotas keep
  real lists in the tens.
- integers beyond 2**53 - 1: JSON numbers are IEEE doubles for the API server and most tools,
  so such a number is silently rounded (`99999999999999999999` becomes `1e20`) and the plan
  would show a value the operator never sends. Refused; quoting it keeps it exact.
- non-string mapping keys: JSON has none; `sorted` of mixed keys raises TypeError.
- NaN and infinities: not JSON.
"""

from __future__ import annotations

import datetime
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_BOUNDS", "MAX_SAFE_INTEGER", "Bounds", "BoundsError", "check", "describe"]

# The largest integer every JSON implementation (IEEE double) carries exactly.
MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class Bounds:
    """Limits on one parsed value (a Kubernetes object or a part of one)."""

    max_depth: int = 32
    """Nesting levels, the root counting as 1 (an IAMRole's deepest field is at about 10)."""
    max_items: int = 5_000
    """Elements of one list or keys of one mapping."""
    max_nodes: int = 250_000
    """Values in the whole tree (every scalar, list and mapping, aliases expanded)."""
    max_string: int = 262_144
    """Characters in one string (Kubernetes caps all annotations of an object at 256 KiB)."""


DEFAULT_BOUNDS = Bounds()


class BoundsError(ValueError):
    """A value outside the bounds; `path` is where (`spec.tags["a"]`), the message says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.problem = message


def describe(value: Any) -> str:
    """A short, safe description of a scalar for messages (never str() of a huge int)."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        # str() of an int over 4,300 digits raises ValueError (CVE-2020-10735 guard).
        if value.bit_length() > 64:
            return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    return f"{type(value).__name__} {reprlib.repr(value)}"  # reprlib: bounded length


_SCALARS = (str, bool, int, float, type(None), datetime.date)


def _scalar_problem(value: Any, bounds: Bounds) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, datetime.date):
        return None  # dates are YAML timestamps; policy documents turn them back into text
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            return (
                f"{describe(value)} is larger than JSON can carry exactly "
                f"(limit ±{MAX_SAFE_INTEGER}); quote it to keep it as text"
            )
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} is not a JSON number"
    if isinstance(value, str):
        if len(value) > bounds.max_string:
            return f"a string of {len(value):,} characters exceeds the limit {bounds.max_string:,}"
        return None
    return f"{describe(value)} is not a JSON value (only strings, numbers, booleans, null)"


def _path(frame: tuple[Any, ...] | None, root: str) -> str:
    parts: list[str | int] = []
    while frame is not None:
        _, _, parent, key = frame
        if key is not None:
            parts.append(key)
        frame = parent
    text = root
    for part in reversed(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("-", "").replace("_", "").isalnum():
            text = f"{text}.{part}" if text else part
        else:
            text += "[" + repr(part[:60]) + "]"
    return text


def check(value: Any, bounds: Bounds = DEFAULT_BOUNDS, root: str = "") -> None:
    """Raise BoundsError for the first part of `value` outside `bounds` or not JSON-like.

    Linear in the size of `value` (shared subtrees, e.g. YAML aliases, count every time they
    appear) and stops after `bounds.max_nodes` values, so it is bounded for any input.
    """
    # A frame is (value, depth, parent frame, key in parent): the path is built only on error.
    stack: list[tuple[Any, ...]] = [(value, 1, None, None)]
    seen = 0
    while stack:
        frame = stack.pop()
        item, depth = frame[0], frame[1]
        seen += 1
        if seen > bounds.max_nodes:
            raise BoundsError(root, f"more than {bounds.max_nodes:,} values in total")
        if isinstance(item, _SCALARS):
            problem = _scalar_problem(item, bounds)
            if problem:
                raise BoundsError(_path(frame, root), problem)
            continue
        if depth > bounds.max_depth:
            raise BoundsError(_path(frame, root), f"nested deeper than {bounds.max_depth} levels")
        if isinstance(item, Mapping):
            if len(item) > bounds.max_items:
                raise BoundsError(
                    _path(frame, root),
                    f"{len(item):,} keys exceed the limit {bounds.max_items:,}",
                )
            # Pushed in reverse so the first problem reported is the first in the document.
            for key, child in reversed(list(item.items())):
                if not isinstance(key, str):
                    raise BoundsError(
                        _path(frame, root),
                        f"a key must be a string, got {describe(key)}; quote it "
                        "(YAML reads unquoted yes/no/on/off, numbers and dates as non-strings)",
                    )
                stack.append((child, depth + 1, frame, key))
        elif isinstance(item, list | tuple):
            if len(item) > bounds.max_items:
                raise BoundsError(
                    _path(frame, root),
                    f"{len(item):,} items exceed the limit {bounds.max_items:,}",
                )
            stack.extend(
                (item[i], depth + 1, frame, i) for i in range(len(item) - 1, -1, -1)
            )
        else:
            raise BoundsError(_path(frame, root), _scalar_problem(item, bounds) or "not JSON")
