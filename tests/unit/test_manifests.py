"""The manifest loader on untrusted input (controller.review.manifests), without a subprocess.

Covers:
- YAML that exceeds a cap becomes one Problem naming the cap, before construction (billion
  laughs, depth, items, documents, aliases, expanded nodes), and so do values JSON cannot
  carry (big integers, NaN, binary, sets, non-string keys, impossible dates);
- document numbers and lines of problems (a one-document file's error is document 1);
- files: size caps (per file, total, stdin), non-regular files, symlinks that leave the tree,
  symlinked directories, non-UTF-8, the file-count cap; other files are still read;
- `printable`: ordinary text unchanged, control/format characters escaped;
- `bounds.check` directly: paths in messages, no recursion on deep values.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from controller.core import bounds
from controller.review import manifests
from controller.review.manifests import Caps, Input, load, printable

ROLE = """apiVersion: iam.rolekeeper.dev/v1alpha1
kind: IAMRole
metadata: {name: web, namespace: team-a}
spec:
  assumeRolePolicy: {Statement: []}
"""


def read(text: str, caps: Caps = manifests.DEFAULT_CAPS) -> Input:
    return load(["-"], stdin=io.StringIO(text), caps=caps)


def only_problem(found: Input) -> str:
    [problem] = found.problems
    return str(problem)


LAUGHS = "a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
)

REFUSED = [
    ("billion-laughs", LAUGHS, "more than 250,000 YAML nodes (aliases expanded)"),
    ("depth", "a: " + "[" * 40 + "]" * 40, "nested deeper than 32 levels"),
    ("depth-through-alias", "a: &d " + "[" * 20 + "]" * 20 + "\nb: " + "[" * 15 + "*d" + "]" * 15,
     "nested deeper than 32 levels"),
    ("parser-depth", "a: " + "[" * 20_000, "malformed YAML"),
    ("items", "[" + ",".join(["1"] * 5001) + "]", "more than 5,000 items in one collection"),
    ("keys", "{" + ",".join(f"k{i}: 1" for i in range(5001)) + "}", "more than 5,000 keys"),
    ("documents", "---\na: 1\n" * 1001, "more than 1,000 YAML documents"),
    ("aliases", "a: &a x\nb: [" + ",".join(["*a"] * 1001) + "]", "more than 1,000 YAML aliases"),
    ("recursive-alias", "a: &x {b: *x}", "alias *x refers to itself"),
    ("undefined-alias", "a: *y", "alias *y is not defined"),
    ("5000-digits", "a: " + "7" * 5000, "integer of 5,000 digits is larger than JSON"),
    ("2^53", f"a: {2**53}", "integer of 16 digits is larger than JSON"),
    ("negative-2^53", f"a: {-(2**53)}", "is larger than JSON can carry exactly"),
    ("hex", "a: 0x" + "f" * 30, "an integer of about 37 digits"),
    ("nan", "a: .nan", "a: nan is not a JSON number"),
    ("infinity", "a: -.inf", "a: -inf is not a JSON number"),
    ("binary", "a: !!binary aGk=", "a: bytes b'hi' is not a JSON value"),
    ("set", "a: !!set {x: null}", "is not a JSON value"),
    ("int-key", "spec: {1: a}", "spec: a key must be a string, got integer 1"),
    ("bool-key", "spec: {tags: {on: a}}", "spec.tags: a key must be a string, got boolean true"),
    ("date-key", "spec: {2024-01-01: a}", "a key must be a string, got date"),
    ("impossible-date", "a: 2024-02-30", "cannot read a value: day is out of range"),
    ("unhashable-key", "? [a]\n: b", "found unhashable key"),
    ("long-string", "a: " + "x" * 262_145, "a string of 262,145 characters exceeds the limit"),
    ("scalar-document", "hello", "expected a Kubernetes object, got a str"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_a_message(text: str, message: str) -> None:
    assert message in only_problem(read(text))


@pytest.mark.parametrize("text", [f"a: {2**53 - 1}", f"a: {-(2**53 - 1)}", "a: 1.5e300", "a: '9' "])
def test_largest_exact_numbers_are_read(text: str) -> None:
    assert read(text).problems == []


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param("a: b\n  c: [\n", "<stdin>:2 (document 1)", id="one-document"),
        pytest.param("a: b\n]\n", "<stdin>:2 (document 1)", id="trailing-junk"),
        pytest.param(ROLE + "---\na: [b\n", "<stdin>:8 (document 2)", id="second-document"),
        pytest.param("---\na: 1\n---\nb: " + "[" * 40, "<stdin>:4 (document 2)", id="cap-in-second"),
    ],
)
def test_problem_names_the_document_and_line(text: str, where: str) -> None:
    assert only_problem(read(text)).startswith(where + ": ")


def test_documents_before_a_malformed_one_are_kept() -> None:
    assert len(read(ROLE + "---\na: [b\n").manifests) == 1


def test_a_refused_document_does_not_stop_the_next() -> None:
    found = read("a: .nan\n---\n" + ROLE)
    assert (len(found.problems), len(found.manifests)) == (1, 1)


def test_composed_documents_keep_their_lines() -> None:
    found = read("---\n" + ROLE + "---\nkind: List\napiVersion: v1\nitems:\n- " + ROLE.replace(
        "\n", "\n  ").rstrip() + "\n")
    assert [(m.source.document, m.source.line, m.source.item) for m in found.manifests] == [
        (1, 2, None), (2, 11, 0)]


# --------------------------------------------------------------------------- files


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_file_over_the_cap_is_not_read(tmp_path: Path) -> None:
    file = write(tmp_path / "big.yaml", ROLE + "#" * 100)
    assert "larger than the limit of 100 bytes" in only_problem(
        load([str(file)], caps=Caps(max_file_bytes=100)))


def test_stdin_over_the_cap_is_not_read() -> None:
    assert "larger than the limit" in only_problem(read(ROLE, Caps(max_file_bytes=10)))


def test_total_bytes_cap_refuses_later_files(tmp_path: Path) -> None:
    files = [str(write(tmp_path / f"{i}.yaml", ROLE)) for i in range(3)]
    found = load(files, caps=Caps(max_total_bytes=2 * len(ROLE)))
    assert (len(found.manifests), [p.message for p in found.problems]) == (
        2, [f"not read: all input together exceeds {2 * len(ROLE):,} bytes"])


def test_file_count_cap(tmp_path: Path) -> None:
    for i in range(3):
        write(tmp_path / f"{i}.yaml", ROLE)
    found = load([str(tmp_path)], caps=Caps(max_files=2))
    assert (len(found.manifests), len(found.problems)) == (2, 1)


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/passwd"])
def test_symlink_leaving_a_directory_is_not_followed(tmp_path: Path, target: str) -> None:
    (tmp_path / "m").mkdir()
    write(tmp_path / "m" / "good.yaml", ROLE)
    (tmp_path / "m" / "bad.yaml").symlink_to(target)
    found = load([str(tmp_path / "m")])
    assert len(found.manifests) == 1
    assert "symbolic link to a place outside" in only_problem(Input(problems=found.problems))


def test_symlink_inside_the_directory_is_followed(tmp_path: Path) -> None:
    write(tmp_path / "role.txt", ROLE)
    (tmp_path / "role.yaml").symlink_to(tmp_path / "role.txt")
    assert len(load([str(tmp_path)]).manifests) == 1


def test_symlinked_directory_is_reported_not_walked(tmp_path: Path) -> None:
    (tmp_path / "up").symlink_to("/")
    assert "symbolic link to a directory: not followed" in only_problem(load([str(tmp_path)]))


def test_explicit_symlink_outside_the_working_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "roles.yaml").symlink_to("/dev/zero")
    assert "symbolic link" in only_problem(load(["roles.yaml"]))


def test_device_given_directly_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "not a regular file" in only_problem(load(["/dev/zero"]))


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    assert "not a regular file" in only_problem(load([str(tmp_path / "pipe.yaml")]))


def test_non_utf8_file(tmp_path: Path) -> None:
    file = write(tmp_path / "r.yaml", b"a: caf\xe9\n")
    assert "not UTF-8 (byte 7)" in only_problem(load([str(file)]))


def test_other_files_are_read_after_a_bad_one(tmp_path: Path) -> None:
    bad = write(tmp_path / "a.yaml", LAUGHS)
    good = write(tmp_path / "b.yaml", ROLE)
    found = load([str(bad), str(good)])
    assert (len(found.problems), len(found.manifests)) == (1, 1)


# --------------------------------------------------------------------------- printable


@pytest.mark.parametrize("text", ["roles.yaml", "Café 東京 ✅ 🙂", "a b", "x`y*z#"])
def test_printable_keeps_ordinary_text(text: str) -> None:
    assert printable(text) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [("a\nb", "a\\x0ab"), ("\x1b[2J", "\\x1b[2J"), ("\x9b31m", "\\x9b31m"), ("a\u202eb", "a\\u202eb"),
     ("a\u2028b", "a\\u2028b"), ("zero\u200bwidth", "zero\\u200bwidth"), ("nb\u00a0sp", "nb sp"),
     ("tab\t", "tab\\x09")],
)
def test_printable_escapes_controls(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_source_prints_escaped_file_names() -> None:
    assert str(manifests.Source("a\n# x.yaml", 1, 1)) == "a\\x0a# x.yaml:1 (document 1)"


# --------------------------------------------------------------------------- bounds


def deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"k": [value]}
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"spec": {"tags": {"a": 2**60}}}, "spec.tags.a: integer 1152921504606846976 is larger"),
        ({"spec": [1, {3: 4}]}, "spec[1]: a key must be a string, got integer 3"),
        (deep(100_000), "nested deeper than 32 levels"),
        ({"a b": float("nan")}, "['a b']: nan is not a JSON number"),
        ([[1] * 4_000] * 100, "more than 250,000 values in total"),
    ],
)
def test_bounds_check_says_where(value: Any, message: str) -> None:
    with pytest.raises(bounds.BoundsError, match=None) as error:
        bounds.check(value)
    assert message in str(error.value)


def test_bounds_describe_never_prints_a_huge_integer() -> None:
    assert bounds.describe(10**5000) == "an integer of about 5001 digits"
