"""Manifests in: IAM objects read from files, directories and stdin, each with where it came from.

Only this module reads a pull request's files; it knows nothing of AWS or of what the objects
mean, only which documents are Rolekeeper objects and where they start.

The input is untrusted (`rolekeeper plan` runs on strangers' pull requests), so reading it is
bounded for any input (`Caps`, docs/untrusted-input.md): files are read up to a size cap,
never through a symlink that leaves the tree given or into a device or FIFO; YAML is composed
from parser events here, iteratively, checking depth, collection sizes, alias expansion and
document counts *before* anything is constructed (PyYAML's own composer recurses, and its
constructor expands aliases, so a 970-byte "billion laughs" would grow without bound); the
constructed values are then checked by `controller.core.bounds`. Whatever is wrong becomes a
`Problem` for that file (never an exception), and other files are read as usual.
"""

from __future__ import annotations

import os
import stat
import sys
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import yaml

from controller.core import bounds
from controller.kinds.registry import GROUP, KIND_NAMES

GUARDRAIL_KIND = "IAMGuardrail"
ACCOUNT_KIND = "IAMAccount"

SUFFIXES = (".yaml", ".yml", ".json")

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Caps:
    """How much untrusted input one `load` reads (docs/untrusted-input.md lists each number)."""

    max_file_bytes: int = 2 * 1024 * 1024
    """Bytes of one file (or of stdin); a Kubernetes object cannot exceed 1.5 MiB in etcd."""
    max_total_bytes: int = 32 * 1024 * 1024
    """Bytes of all files together."""
    max_files: int = 2_000
    """Files read from the paths given (directories included)."""
    max_documents: int = 1_000
    """YAML documents in one file."""
    max_aliases: int = 1_000
    """YAML alias references (`*name`) in one file; Kubernetes manifests rarely use any."""
    bounds: bounds.Bounds = bounds.DEFAULT_BOUNDS
    """Depth, list length and string length of every document; `max_nodes` caps the nodes of
    a whole file with every alias expanded (what construction and later copies would build)."""


DEFAULT_CAPS = Caps()


def printable(text: str) -> str:
    """`text` with control, format and line-separator characters written as escapes.

    File names and object fields are chosen by whoever wrote the pull request: a newline could
    start a fake Markdown heading, an ANSI sequence repaint a terminal, U+202E reverse what a
    reviewer reads. Ordinary text (including non-ASCII letters and emoji) is unchanged.
    """
    if text.isprintable():  # the common case, in C
        return text
    out = []
    for char in text:
        if char.isprintable() or char == " ":
            out.append(char)
        elif unicodedata.category(char) in ("Zs",):
            out.append(" ")
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


@dataclass(frozen=True)
class Source:
    """Where an object was read: file (or "-" for stdin), 1-based document and line, List item."""

    file: str
    document: int
    line: int
    item: int | None = None

    def __str__(self) -> str:
        name = "<stdin>" if self.file == "-" else printable(self.file)
        if not self.document:
            return name  # the file as a whole (it could not be read)
        where = f"document {self.document}" + (
            f", items[{self.item}]" if self.item is not None else ""
        )
        return f"{name}:{self.line} ({where})"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "document": self.document, "line": self.line, "item": self.item}


@dataclass(frozen=True)
class Manifest:
    """One IAMRole or IAMUser object as written, with where it came from."""

    source: Source
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))


@dataclass(frozen=True)
class Problem:
    """Input that could not be read as objects at all (unreadable file, malformed YAML)."""

    source: Source
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass
class Input:
    """Everything read from the paths: our objects, unreadable input, other kinds skipped."""

    manifests: list[Manifest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[tuple[Source, str]] = field(default_factory=list)  # (where, "Kind ns/name")
    guardrails: list[Manifest] = field(default_factory=list)  # IAMGuardrail objects
    # Namespace objects' labels, by name: what guardrails select namespaces by.
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    accounts: list[Manifest] = field(default_factory=list)  # IAMAccount objects


def load(
    paths: Sequence[str], stdin: TextIO | None = None, caps: Caps = DEFAULT_CAPS
) -> Input:
    """Read IAMRole/IAMUser objects from files, directories (recursive) and "-" (stdin).

    Never raises for bad input: each unreadable, oversized or malformed file is a Problem.
    """
    found = Input()
    budget = _Budget(caps)
    for path in paths:
        if path == "-":
            text = (stdin or sys.stdin).read(caps.max_file_bytes + 1)
            if len(text) > caps.max_file_bytes:
                found.problems.append(Problem(Source("-", 0, 0), _too_large(caps)))
                continue
            _load_text(text, "-", found, caps)
            continue
        for file, refusal in _files(Path(path), caps):
            reason = refusal or budget.take()
            if reason is not None:
                found.problems.append(Problem(Source(str(file), 0, 0), reason))
                continue
            text_or_problem = _read(file, caps, budget)
            if isinstance(text_or_problem, _Refusal):
                found.problems.append(Problem(Source(str(file), 0, 0), text_or_problem.message))
                continue
            _load_text(text_or_problem, str(file), found, caps)
    return found


@dataclass(frozen=True)
class _Refusal:
    message: str


class _Budget:
    """Files and bytes left for the whole `load` (all paths together)."""

    def __init__(self, caps: Caps) -> None:
        self.files = caps.max_files
        self.bytes = caps.max_total_bytes

    def take(self) -> str | None:
        if self.files <= 0:
            return "not read: more input files than the limit of this run"
        self.files -= 1
        return None


def _too_large(caps: Caps) -> str:
    return f"larger than the limit of {caps.max_file_bytes:,} bytes; not read"


def _files(target: Path, caps: Caps) -> Iterator[tuple[Path, str | None]]:
    """The files to read under `target`, each with a reason to refuse it (None: read it).

    A symlink is followed only to a place inside the tree given: the directory for a directory
    argument, the working directory for a file argument (a PR can commit a link to
    /dev/zero, ~/.aws/credentials or a runner's secrets).
    """
    if not target.is_dir() or (target.is_symlink() and not _inside(target, Path.cwd())):
        yield target, _link_refusal(target, Path.cwd())
        return
    root = target.resolve()
    found: list[tuple[Path, str | None]] = []
    for directory, subdirs, names in os.walk(target, followlinks=False):
        # .git, .github and friends hold no manifests, but may hold workflow YAML.
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in names:
            file = Path(directory, name)
            if name.startswith(".") or file.suffix not in SUFFIXES:
                continue
            found.append((file, _link_refusal(file, root)))
        for name in subdirs:
            if Path(directory, name).is_symlink():
                found.append((Path(directory, name), "symbolic link to a directory: not followed"))
    found.sort(key=lambda pair: str(pair[0]))
    yield from found


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _link_refusal(file: Path, root: Path) -> str | None:
    if file.is_symlink() and not _inside(file, root):
        return f"symbolic link to a place outside {printable(str(root))}: not followed"
    return None


def _read(file: Path, caps: Caps, budget: _Budget) -> str | _Refusal:
    """The file's text, reading at most the cap + 1 bytes, from regular files only."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return _Refusal(f"cannot read: {exc.strerror or exc}")
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return _Refusal("cannot read: is a directory")
        if not stat.S_ISREG(mode):
            return _Refusal("not a regular file (a device, FIFO or socket): not read")
        limit = min(caps.max_file_bytes, budget.bytes)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        return _Refusal(f"cannot read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if size > caps.max_file_bytes:
        return _Refusal(_too_large(caps))
    if size > budget.bytes:
        return _Refusal(
            f"not read: all input together exceeds {caps.max_total_bytes:,} bytes"
        )
    budget.bytes -= size
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        return _Refusal(f"cannot read: not UTF-8 (byte {exc.start + 1})")


class _TooBig(Exception):
    """Input over a cap, found while composing: where and what."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class _Frame:
    """An open sequence or mapping while composing."""

    node: yaml.Node
    anchor: str | None
    start: int  # nodes composed (aliases expanded) before this one
    children: int = 0
    height: int = 0  # levels of collections below this one, aliases expanded
    key: yaml.Node | None = None  # a mapping's pending key


@dataclass
class _Composer:
    """YAML nodes from parser events, without recursion, refusing what exceeds `caps` early.

    The same nodes PyYAML's composer builds, so the loader's constructor and the source lines
    work as before; but depth, collection sizes, aliases and the expanded size (an alias counts
    as the whole node it names) are checked on every event, so a billion-laughs document is
    refused after reading its few hundred bytes, and no constructor recursion goes deep.
    """

    loader: Any
    caps: Caps
    document: int = 0  # 1-based number of the document being read (0: none yet)
    nodes: int = 0
    aliases: int = 0
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # anchor: (nodes, height)
    anchored: dict[str, yaml.Node] = field(default_factory=dict)

    def documents(self) -> Iterator[yaml.Node | None]:
        loader = self.loader
        loader.get_event()  # StreamStart
        while not loader.check_event(yaml.StreamEndEvent):
            loader.get_event()  # DocumentStart
            self.document += 1
            if self.document > self.caps.max_documents:
                raise _TooBig(1, f"more than {self.caps.max_documents:,} YAML documents")
            self.sizes, self.anchored = {}, {}  # anchors are per document
            node = self._compose()
            loader.get_event()  # DocumentEnd
            yield node

    def _compose(self) -> yaml.Node | None:
        loader, bounded = self.loader, self.caps.bounds
        stack: list[_Frame] = []
        root: yaml.Node | None = None
        while True:
            event: Any = loader.get_event()  # CParser's events carry its own Mark type
            line = event.start_mark.line + 1
            if isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                done = stack.pop()
                done.node.end_mark = event.end_mark
                height = done.height + 1
                if done.anchor is not None:
                    self.sizes[done.anchor] = (self.nodes - done.start, height)
                node: yaml.Node = done.node
            elif isinstance(event, yaml.AliasEvent):
                anchor = str(event.anchor)
                if anchor not in self.sizes:
                    recursive = anchor in {f.anchor for f in stack}
                    problem = "refers to itself" if recursive else "is not defined"
                    raise _TooBig(line, f"alias *{printable(anchor)} {problem}")
                self.aliases += 1
                if self.aliases > self.caps.max_aliases:
                    raise _TooBig(line, f"more than {self.caps.max_aliases:,} YAML aliases")
                count, height = self.sizes[anchor]
                self._count(line, count)
                if len(stack) + height > bounded.max_depth:
                    raise _TooBig(line, f"nested deeper than {bounded.max_depth} levels")
                node = self.anchored[anchor]
            elif isinstance(event, yaml.ScalarEvent):
                self._count(line, 1)
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                if tag == "tag:yaml.org,2002:int":
                    _check_int(event.value, line)
                marks: tuple[Any, Any] = (event.start_mark, event.end_mark)
                node = yaml.ScalarNode(tag, event.value, *marks, style=event.style)
                height = 0
                self._remember(event.anchor, node, 1, 0)
            else:  # a sequence or mapping starts
                start = self.nodes
                self._count(line, 1)
                if len(stack) + 1 > bounded.max_depth:
                    raise _TooBig(line, f"nested deeper than {bounded.max_depth} levels")
                is_seq = isinstance(event, yaml.SequenceStartEvent)
                kind = yaml.SequenceNode if is_seq else yaml.MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(kind, None, event.implicit)
                new = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
                if event.anchor is not None:
                    self.anchored[event.anchor] = new
                    self.sizes.pop(event.anchor, None)  # redefined: not usable until complete
                stack.append(_Frame(new, event.anchor, start))
                continue
            if not stack:
                root = node
                return root
            self._add(stack[-1], node, height, line)

    def _remember(self, anchor: str | None, node: yaml.Node, count: int, height: int) -> None:
        if anchor is not None:
            self.anchored[anchor] = node
            self.sizes[anchor] = (count, height)

    def _count(self, line: int, count: int) -> None:
        self.nodes += count
        limit = self.caps.bounds.max_nodes
        if self.nodes > limit:
            raise _TooBig(
                line, f"more than {limit:,} YAML nodes (aliases expanded): too large to read"
            )

    def _add(self, parent: _Frame, node: yaml.Node, height: int, line: int) -> None:
        parent.height = max(parent.height, height)
        if isinstance(parent.node, yaml.MappingNode):
            if parent.key is None:
                parent.key = node
                return
            parent.node.value.append((parent.key, node))
            parent.key = None
        else:
            parent.node.value.append(node)
        parent.children += 1
        limit = self.caps.bounds.max_items
        if parent.children > limit:
            what = "keys" if isinstance(parent.node, yaml.MappingNode) else "items"
            raise _TooBig(line, f"more than {limit:,} {what} in one collection")


def _check_int(text: str, line: int) -> None:
    """Refuse a decimal integer JSON cannot carry exactly before int() sees all its digits."""
    digits = text.replace("_", "").lstrip("+-")
    if len(digits) < 16 or not digits.isdigit():
        return  # small, or hex/octal/sexagesimal: bounds.check sees the constructed value
    if len(digits) > 20 or abs(int(digits)) > bounds.MAX_SAFE_INTEGER:
        raise _TooBig(
            line,
            f"integer of {len(digits):,} digits is larger than JSON can carry exactly "
            f"(limit ±{bounds.MAX_SAFE_INTEGER}); quote it to keep it as text",
        )


def _load_text(text: str, file: str, found: Input, caps: Caps = DEFAULT_CAPS) -> None:
    loader = _Loader(text)
    composer = _Composer(loader, caps)
    try:
        for node in composer.documents():
            line = node.start_mark.line + 1 if node is not None else 1
            source = Source(file, composer.document, line)
            if node is None:
                continue
            try:
                data = loader.construct_document(node)
                bounds.check(data, caps.bounds)
            except bounds.BoundsError as exc:
                found.problems.append(Problem(source, printable(str(exc))))
                continue
            except (ValueError, TypeError, OverflowError) as exc:
                # e.g. a timestamp like 2024-02-30: PyYAML raises ValueError, not YAMLError.
                message = f"cannot read a value: {printable(str(exc))}"
                found.problems.append(Problem(source, message))
                continue
            _collect(data, source, node, found)
    except _TooBig as exc:
        source = Source(file, max(composer.document, 1), exc.line)
        found.problems.append(Problem(source, exc.message))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # An error after a document's end (trailing junk) belongs to that document; the parser
        # cannot resynchronise after it, so the rest of the file is lost (reported as this one).
        source = Source(file, max(composer.document, 1), mark.line + 1 if mark else 1)
        problem = getattr(exc, "problem", None) or str(exc)
        column = f" column {mark.column + 1}" if mark else ""
        found.problems.append(Problem(source, f"malformed YAML{column}: {printable(problem)}"))
    finally:
        loader.dispose()


def _collect(data: Any, source: Source, node: Any, found: Input) -> None:
    if data is None:
        return  # an empty document (a trailing ---)
    if not isinstance(data, Mapping):
        found.problems.append(
            Problem(source, f"expected a Kubernetes object, got a {type(data).__name__}")
        )
        return
    kind = data.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list):
        lines = _item_lines(node)
        for index, item in enumerate(data["items"]):
            line = lines[index] if index < len(lines) else source.line
            _collect_one(item, replace(source, line=line, item=index), found)
        return
    _collect_one(data, source, found)


def _collect_one(data: Any, source: Source, found: Input) -> None:
    if not isinstance(data, Mapping):
        found.problems.append(Problem(source, f"expected an object, got a {type(data).__name__}"))
        return
    kind = data.get("kind")
    group = str(data.get("apiVersion") or "").split("/")[0]
    if kind in KIND_NAMES and group == GROUP:
        found.manifests.append(Manifest(source, data))
        return
    if kind == GUARDRAIL_KIND and group == GROUP:
        found.guardrails.append(Manifest(source, data))
        return
    if kind == ACCOUNT_KIND and group == GROUP:
        found.accounts.append(Manifest(source, data))
        return
    if kind == "Namespace" and data.get("apiVersion") == "v1" and meta(data, "name"):
        labels = (data.get("metadata") or {}).get("labels") or {}
        if isinstance(labels, Mapping):
            found.namespaces[meta(data, "name")] = {str(k): str(v) for k, v in labels.items()}
            return
    name = "/".join(v for v in (meta(data, "namespace"), meta(data, "name")) if v)
    found.ignored.append((source, f"{data.get('apiVersion')} {kind} {name}".strip()))


def _item_lines(node: Any) -> list[int]:
    """1-based start line of each element of a List's `items`, from the parsed YAML node."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "items" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def meta(obj: Mapping[str, Any], key: str) -> str:
    """metadata.<key> of a raw object as a string ("" when absent)."""
    metadata = obj.get("metadata")
    value = metadata.get(key) if isinstance(metadata, Mapping) else None
    return str(value) if value else ""
