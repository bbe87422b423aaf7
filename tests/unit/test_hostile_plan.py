"""Hostile input for `rolekeeper plan`: every case ends with its expected outcome, bounded.

Covers, each as `rolekeeper plan --snapshot <empty account> --format markdown` in a child
process limited to 300 MiB of address space and 5 s of CPU (set in the child: the limit is the
protection being tested, not a timing assert), with a wall-clock timeout:

- every input of issue 14: billion laughs, 100,000 managedPolicies, a symlink to /dev/zero, a
  5,000-digit integer, non-string keys (spec, policy, Condition), 600-level nesting, a number
  over 2^53, file names with a newline / Markdown heading / HTML / ANSI escape, a one-document
  file's parse error (document 1, not 2), and a bad file beside a good one (both reported);
- more: deeper nesting than the parser allows, recursive and undefined aliases, too many
  documents / aliases / items / nodes, oversized files and stdin, FIFOs, symlinks leaving a
  directory, symlinked directories, non-UTF-8, NaN and infinity, YAML-only types (binary,
  set), impossible dates, unquoted boolean keys, unhashable keys, huge strings, huge hex
  integers, scalar documents, missing files, bidi overrides and control characters in names.

Each asserts the exit code, a message fragment, that stderr holds no traceback and that the
output carries no terminal control, Markdown heading or HTML that the input chose. (Hostile
object names end `invalid`, exit 1: IAM's name grammar refuses them, and the names are still
shown, escaped.)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

SNAPSHOT = {"formatVersion": 1, "account": "123456789012", "partition": "aws", "takenAt": "",
            "roles": [], "users": []}
MEMORY = 300 * 1024 * 1024
CPU_SECONDS = 5
WALL_SECONDS = 60  # generous: a shared 2-core machine; the CPU limit is the real bound

ROLE = """apiVersion: iam.rolekeeper.dev/v1alpha1
kind: IAMRole
metadata: {{name: {name}, namespace: team-a}}
spec:
  assumeRolePolicy:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Principal: {{Service: ec2.amazonaws.com}}
        Action: {action}
{extra}"""


def role(name: str = "web", action: str = "sts:AssumeRole", extra: str = "") -> str:
    return ROLE.format(name=name, action=action, extra=extra)


def laughs() -> str:
    """The classic billion-laughs: nine levels of nine aliases, the last one as a role's Action."""
    levels = ['  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"  a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "lol:\n" + "\n".join(levels) + "\n" + role(action="*a8")


def nested(depth: int) -> str:
    return "[" * depth + '"s3:GetObject"' + "]" * depth


# A case writes its input under `tmp` and returns the arguments naming it.
Setup = Callable[[Path], list[str]]


def write(name: str | bytes, content: str | bytes) -> Setup:
    def setup(tmp: Path) -> list[str]:
        path = os.path.join(os.fsencode(tmp), os.fsencode(name))
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
        return [os.fsdecode(name)]
    return setup


def symlink(name: str, target: str) -> Setup:
    def setup(tmp: Path) -> list[str]:
        (tmp / name).symlink_to(target)
        return [name]
    return setup


def fifo(tmp: Path) -> list[str]:
    os.mkfifo(tmp / "roles.yaml")
    return ["roles.yaml"]


def directory_with_escaping_link(tmp: Path) -> list[str]:
    (tmp / "m").mkdir()
    (tmp / "m" / "good.yaml").write_text(role())
    (tmp / "m" / "secret.yaml").symlink_to("/etc/passwd")
    return ["m"]


def directory_with_linked_directory(tmp: Path) -> list[str]:
    (tmp / "m").mkdir()
    (tmp / "m" / "good.yaml").write_text(role())
    (tmp / "m" / "root").symlink_to("/")
    return ["m"]


def bad_beside_good(tmp: Path) -> list[str]:
    (tmp / "bad.yaml").write_text("a: " + "9" * 5000 + "\n")
    (tmp / "good.yaml").write_text(role())
    return ["bad.yaml", "good.yaml"]


def many_documents(count: int) -> str:
    return "".join(f"---\nk{i}: v\n" for i in range(count))


@dataclass(frozen=True)
class Case:
    id: str
    setup: Setup
    exit_code: int
    fragment: str  # must appear in stdout or stderr
    stdin: bytes | None = None


CASES = [
    # --- issue 14 ---------------------------------------------------------------------------
    Case("billion-laughs", write("r.yaml", laughs()), 1, "aliases expanded"),
    Case("100k-managed-policies", write("r.yaml", role(extra="  managedPolicies: [" + ",".join(
        f"p{i}" for i in range(100_000)) + "]\n")), 1, "more than 5,000 items"),
    Case("symlink-to-dev-zero", symlink("roles.yaml", "/dev/zero"), 1, "symbolic link"),
    Case("5000-digit-integer", write("r.yaml", role(extra="  maxSessionDuration: " + "9" * 5000)),
         1, "integer of 5,000 digits is larger than JSON can carry exactly"),
    Case("non-string-key-in-spec", write("r.yaml", role(extra="  1: x\n")), 1,
         "a key must be a string, got integer 1"),
    Case("non-string-key-in-policy", write("r.yaml", role(extra="  inlinePolicies:\n    p: {2: x}\n")),
         1, "a key must be a string, got integer 2"),
    Case("non-string-key-in-condition", write("r.yaml", role(extra=(
        "  inlinePolicies:\n    p:\n      Statement:\n        - Effect: Allow\n"
        "          Action: s3:GetObject\n          Resource: '*'\n"
        "          Condition: {Bool: {true: x}}\n"))), 1, "a key must be a string, got boolean true"),
    Case("600-level-nesting", write("r.yaml", role(action=nested(600))), 1,
         "nested deeper than 32 levels"),
    Case("number-over-2^53-in-condition", write("r.yaml", role(extra=(
        "  inlinePolicies:\n    p:\n      Statement:\n        - Effect: Allow\n"
        "          Action: s3:GetObject\n          Resource: '*'\n"
        "          Condition: {NumericEquals: {k: 99999999999999999999}}\n"))), 1,
         "larger than JSON can carry exactly"),
    Case("file-name-with-newline-heading", write("a\n# LGTM - no changes ✅\n.yaml", role()), 0,
         "a\\x0a# LGTM"),
    Case("file-name-with-html", write("<img src=x onerror=alert(1)>.yaml", "- [\n"), 1,
         "`<img src=x onerror=alert(1)>.yaml:"),
    Case("file-name-with-ansi", write("\x1b[2J\x1b[31mred.yaml", role()), 0, "\\x1b[2J"),
    Case("one-document-parse-error", write("r.yaml", "a: b\n  c: [\n"), 1, "(document 1)"),
    Case("bad-file-beside-good-file", bad_beside_good, 1, "1 to create"),
    # --- more --------------------------------------------------------------------------------
    Case("nesting-past-the-parser", write("r.yaml", "a: " + "[" * 100_000), 1,
         "maximum nesting depth"),
    Case("recursive-alias", write("r.yaml", "a: &x [*x]\n"), 1, "alias *x refers to itself"),
    Case("undefined-alias", write("r.yaml", "a: *nope\n"), 1, "alias *nope is not defined"),
    Case("1001-documents", write("r.yaml", many_documents(1001)), 1, "more than 1,000 YAML documents"),
    Case("1001-aliases", write("r.yaml", "a: &a x\nb: [" + ",".join(["*a"] * 1001) + "]\n"), 1,
         "more than 1,000 YAML aliases"),
    Case("250k-nodes", write("r.yaml", many_documents(900).replace("v\n", "[" + ",".join(
        ["1"] * 300) + "]\n")), 1, "more than 250,000 YAML nodes"),
    Case("3-MiB-file", write("r.yaml", "# " + "x" * (3 * 1024 * 1024) + "\n"), 1,
         "larger than the limit of 2,097,152 bytes"),
    Case("3-MiB-stdin", lambda tmp: ["-"], 1, "larger than the limit",
         stdin=b"# " + b"x" * (3 * 1024 * 1024)),
    Case("fifo", fifo, 1, "not a regular file"),
    Case("directory-link-to-etc-passwd", directory_with_escaping_link, 1,
         "symbolic link to a place outside"),
    Case("directory-link-to-root", directory_with_linked_directory, 1,
         "symbolic link to a directory: not followed"),
    Case("not-utf-8", write("r.yaml", b"description: caf\xe9\n"), 1, "not UTF-8"),
    Case("nan", write("r.yaml", role(extra="  maxSessionDuration: .nan\n")), 1,
         "nan is not a JSON number"),
    Case("infinity", write("r.yaml", role(extra="  maxSessionDuration: .inf\n")), 1,
         "inf is not a JSON number"),
    Case("binary-value", write("r.yaml", role(extra="  description: !!binary aGVsbG8=\n")), 1,
         "is not a JSON value"),
    Case("set-value", write("r.yaml", role(extra="  description: !!set {a: null}\n")), 1,
         "is not a JSON value"),
    Case("impossible-date", write("r.yaml", role(extra="  description: 2024-02-30\n")), 1,
         "cannot read a value"),
    Case("unquoted-on-key", write("r.yaml", role(extra="  tags: {on: x}\n")), 1,
         "got boolean true"),
    Case("unhashable-key", write("r.yaml", "? [a]\n: b\n"), 1, "malformed YAML"),
    Case("300k-string", write("r.yaml", role(extra="  description: " + "x" * 300_000 + "\n")), 1,
         "characters exceeds the limit 262,144"),
    Case("huge-hex-integer", write("r.yaml", role(extra="  maxSessionDuration: 0x" + "F" * 40 + "\n")),
         1, "larger than JSON can carry exactly"),
    Case("20-digit-integer", write("r.yaml", role(extra="  maxSessionDuration: 12345678901234567890\n")),
         1, "integer of 20 digits"),
    Case("json-file-5000-digits", write("r.json", '{"a": ' + "1" * 5000 + "}"), 1,
         "integer of 5,000 digits"),
    Case("list-of-6000-items", write("r.yaml", "apiVersion: v1\nkind: List\nitems:\n" + "- {}\n" * 6000),
         1, "more than 5,000 items"),
    Case("scalar-document", write("r.yaml", "just text\n"), 1, "expected a Kubernetes object"),
    Case("missing-file", lambda tmp: ["nope.yaml"], 1, "cannot read"),
    Case("bidi-override-in-name", write("r.yaml", role(name='"web\\u202egpj.exe"')), 1, "\\u202e"),
    Case("control-characters-in-name", write("r.yaml", role(name='"web\\x1b[31m\\x07"')), 1,
         "\\x1b[31m\\x07"),
    Case("markdown-in-name", write("r.yaml", role(name='"x\\n\\n# LGTM - no changes ✅\\n<img src=x>"')),
         1, "x\\x0a\\x0a# LGTM"),
    Case("empty-file", write("r.yaml", ""), 0, "No IAMRole or IAMUser objects"),
]


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def plan(tmp: Path, args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    snapshot = tmp / "snapshot.json.snap"
    snapshot.write_text(json.dumps(SNAPSHOT))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", "plan", "--snapshot", str(snapshot),
         "--format", "markdown", *args],
        cwd=tmp, env=env, input=stdin if stdin is not None else b"", capture_output=True,
        timeout=WALL_SECONDS, preexec_fn=_limits, check=False,
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[bytes]]:
    """Every case run once (a child process each), shared by the assertions below."""
    out = {}
    for case in CASES:
        tmp = tmp_path_factory.mktemp(case.id)
        out[case.id] = plan(tmp, case.setup(tmp), case.stdin)
    return out


def _text(result: subprocess.CompletedProcess[bytes]) -> str:
    return (result.stdout + result.stderr).decode("utf-8", "replace")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_exit_code(case: Case, results: dict[str, subprocess.CompletedProcess[bytes]]) -> None:
    assert results[case.id].returncode == case.exit_code, _text(results[case.id])[-2000:]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_message(case: Case, results: dict[str, subprocess.CompletedProcess[bytes]]) -> None:
    assert case.fragment in _text(results[case.id]), _text(results[case.id])[-2000:]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_no_traceback(case: Case, results: dict[str, subprocess.CompletedProcess[bytes]]) -> None:
    assert b"Traceback" not in results[case.id].stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_output_cannot_inject(case: Case, results: dict[str, subprocess.CompletedProcess[bytes]]) -> None:
    # No terminal control anywhere (stdout and stderr both reach the CI log); no Markdown
    # heading or raw HTML that the input chose in the comment (stdout).
    assert not any(c in _text(results[case.id]) for c in "\x1b\x07\u202e")
    comment = results[case.id].stdout.decode()
    assert [line for line in comment.splitlines() if line.startswith("#")] in (
        [], ["### Rolekeeper plan"])
    assert "<img" not in comment.replace("`<img src=x onerror=alert(1)>.yaml:", "")


def test_one_document_error_is_not_document_2(results: dict[str, subprocess.CompletedProcess[bytes]]) -> None:
    assert "document 2" not in _text(results["one-document-parse-error"])


def test_the_bad_file_is_reported_beside_the_good_one(
    results: dict[str, subprocess.CompletedProcess[bytes]],
) -> None:
    assert "bad.yaml" in _text(results["bad-file-beside-good-file"])


def test_the_limits_are_enforced_in_the_child() -> None:
    # A child that exceeds the address-space limit fails: the bound above is real.
    result = subprocess.run(
        [sys.executable, "-c", "bytearray(400 * 1024 * 1024)"], preexec_fn=_limits,
        capture_output=True, timeout=WALL_SECONDS, check=False,
    )
    assert b"MemoryError" in result.stderr
