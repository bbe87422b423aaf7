"""Where a spec field is in a manifest file: (line, column) for a finding on a pull request line.

A finding names a field path ("spec.inlinePolicies.logs.Statement[0].Action"); GitHub code
scanning needs the line and column of that field in the file as written. This module composes
the file's YAML (JSON is YAML too) into nodes, which carry their marks, and walks the path.

Map keys may themselves contain dots (an inline policy "app.v2", a condition key
"oidc.eks...:sub"), so a path is not split on dots up front: at each mapping the longest key
that the rest of the path starts with wins. When the path runs past what the file holds (a
statement Rolekeeper generates, say), the deepest field found is answered: the nearest line a
reviewer can act on.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["FileMap", "locate"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INDEX = re.compile(r"\[(\d+)\]")


class FileMap:
    """One file's YAML documents composed once, to locate many fields in it."""

    def __init__(self, text: str) -> None:
        try:
            self._documents: list[Any] = list(yaml.compose_all(text, Loader=_Loader))
        except yaml.YAMLError:
            self._documents = []  # manifests.load reported it; every field falls back to 1:1

    def locate(self, document: int, path: str, item: int | None = None) -> tuple[int, int]:
        """1-based (line, column) of `path` in the `document`-th (1-based) document.

        `item` is the index in a List's `items` when the object came from a `kind: *List`.
        Falls back to the deepest field found, then (1, 1); never raises on odd input.
        """
        if not 0 < document <= len(self._documents) or self._documents[document - 1] is None:
            return 1, 1
        node = self._documents[document - 1]
        if item is not None:
            node = _element(_value(node, "items"), item) or node
        mark = _walk(node, path).start_mark
        return mark.line + 1, mark.column + 1


def locate(text: str, document: int, path: str, item: int | None = None) -> tuple[int, int]:
    """`FileMap(text).locate(...)` for a single lookup."""
    return FileMap(text).locate(document, path, item)


def _walk(node: Any, path: str) -> Any:
    """The node at `path`: the key node for a mapping entry (the line a reviewer reads)."""
    rest, found = path, node
    while rest:
        index = _INDEX.match(rest)
        if index:
            # A statement written as one object, not a list, is Statement[0].
            element = _element(node, int(index[1]))
            if element is None and not (int(index[1]) == 0 and isinstance(node, yaml.MappingNode)):
                break
            node = found = element if element is not None else node
            rest = rest[index.end() :].lstrip(".")
            continue
        entry = _entry(node, rest)
        if entry is None:
            break
        key, node = entry
        found = key
        rest = rest[len(key.value) :].lstrip(".")
    return found


def _entry(node: Any, rest: str) -> tuple[Any, Any] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    candidates = [
        (key, value)
        for key, value in node.value
        if isinstance(key.value, str) and _starts(rest, key.value)
    ]
    return max(candidates, key=lambda kv: len(kv[0].value), default=None)


def _starts(rest: str, key: str) -> bool:
    return rest == key or rest.startswith((key + ".", key + "["))


def _value(node: Any, key: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v
    return None


def _element(node: Any, index: int) -> Any:
    if isinstance(node, yaml.SequenceNode) and 0 <= index < len(node.value):
        return node.value[index]
    return None
