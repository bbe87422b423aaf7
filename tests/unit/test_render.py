"""Escaping of untrusted strings in `rolekeeper plan` output (controller.review.render).

Covers, for a Review whose every input-derived string is hostile (newlines, Markdown headings,
HTML, backticks, ANSI/C1 escapes, bidi overrides, U+2028):
- markdown: no line the input starts (heading, list, quote, setext underline), no raw HTML,
  code spans and fences that the input cannot close;
- text: no control character reaches the terminal unless we paint it;
- json: still the same data when parsed, with terminal/bidi/JS-breaking characters escaped;
- ordinary strings are unchanged (the golden files in tests/aws depend on it).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from controller.core.actions import Action
from controller.review import render
from controller.review.compute import Change, DocumentDiff, Review
from controller.review.manifests import Problem, Source

EVIL = "x\n\n# LGTM - no changes ✅\n<img src=x onerror=alert(1)>\n```\n\x1b[2J\x9b31m\u202eexe.txt\u2028"
DOCUMENT = json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                      "Resource": f"arn:aws:s3:::{EVIL}"}]})


def hostile_review() -> Review:
    call = Action("CreateRole", {"RoleName": "r", "Description": EVIL, "AssumeRolePolicyDocument":
                                 DOCUMENT, "Tags": [{"Key": EVIL, "Value": EVIL}]}, "")
    put = Action("PutRolePolicy", {"RoleName": "r", "PolicyName": "p", "PolicyDocument": DOCUMENT}, "")
    change = Change(
        kind="IAMRole", namespace=EVIL, name=EVIL, aws_name=EVIL, action="create",
        calls=(call, put), diff=(DocumentDiff("spec.inlinePolicies.p", (f"Statement[0].Resource: + {EVIL}",)),),
        message=f"{EVIL}\n- list item\n1. numbered\n===", source=Source(EVIL, 1, 1),
    )
    noop = Change(kind="IAMRole", namespace=EVIL, name=EVIL, aws_name=EVIL, action="noop")
    return Review((change, noop), (Problem(Source(EVIL, 2, 3), EVIL),), notes=())


MARKDOWN = render.markdown(hostile_review())
TEXT = render.text(hostile_review())
JSON = render.json_text(hostile_review())


def test_markdown_has_no_heading_but_its_own() -> None:
    assert [line for line in MARKDOWN.splitlines() if line.lstrip("> ").startswith("#")] == [
        "### Rolekeeper plan"]


def _outside_code(markdown: str) -> str:
    """The Markdown without fenced blocks and code spans, where HTML is literal text."""
    kept, fence = [], ""
    for line in markdown.splitlines():
        ticks = re.match(r"\s*(`{3,})", line)
        if ticks and (not fence or ticks[1] == fence):
            fence = "" if fence else ticks[1]
        elif not fence:
            kept.append(re.sub(r"(`+).+?\1", "", line))
    return "\n".join(kept)


def test_markdown_has_no_raw_html_from_the_input() -> None:
    assert "<img" in MARKDOWN and "<img" not in _outside_code(MARKDOWN)


@pytest.mark.parametrize("char", ["\x1b", "\x9b", "\u202e", "\u2028"])
def test_markdown_has_no_control_characters(char: str) -> None:
    assert char not in MARKDOWN


def test_markdown_fences_outlast_backticks_in_the_input() -> None:
    opening = [line.strip() for line in MARKDOWN.splitlines() if line.strip().startswith("```")]
    assert opening and all(line.startswith("````") for line in opening)


def test_markdown_message_lines_cannot_start_blocks() -> None:
    quoted = [line[2:] for line in MARKDOWN.splitlines() if line.startswith("> ")]
    assert quoted and not [q for q in quoted if (q[:1] and q[:1] in "-=#") or q[:2] == "1."]


@pytest.mark.parametrize("char", ["\x1b", "\x9b", "\u202e", "\u2028", "\x07"])
def test_text_has_no_control_characters(char: str) -> None:
    assert char not in TEXT


def test_text_lines_come_only_from_our_layout() -> None:
    # Every input newline is escaped: no output line starts with the input's own text.
    assert not [line for line in TEXT.splitlines() if line.startswith(("# LGTM", "<img", "```"))]


def test_colored_text_paints_only_its_own_escapes() -> None:
    painted = render.text(hostile_review(), color=True)
    assert "\x1b[2J" not in painted and "\x1b[32m" in painted


def test_json_parses_back_to_the_same_data() -> None:
    assert json.loads(JSON) == json.loads(json.dumps(render.json_document(hostile_review())))


@pytest.mark.parametrize("char", ["\x1b", "\x9b", "\u202e", "\u2028", "\x7f"])
def test_json_escapes_terminal_and_bidi_characters(char: str) -> None:
    assert char not in JSON


@pytest.mark.parametrize(
    ("value", "escaped"),
    [("# heading", "\\# heading"), ("- item", "\\- item"), ("+ item", "\\+ item"),
     ("===", "\\==="), ("1. one", "1\\. one"), ("2) two", "2\\) two"), ("  # x", "  \\# x"),
     ("a # b", "a # b"), ("<b>", "&lt;b&gt;"), ("[x](y)", "\\[x\\](y)"), ("a\nb", "a\\\\x0ab")],
)
def test_escape(value: str, escaped: str) -> None:
    assert render._escape(value) == escaped


@pytest.mark.parametrize(
    ("value", "span"),
    [("a", "`a`"), ("a`b", "``a`b``"), ("`a", "`` `a ``"), ("a\nb", "`a\\x0ab`"),
     ("<img src=x>", "`<img src=x>`")],
)
def test_code_span(value: str, span: str) -> None:
    assert render._code(value) == span


ORDINARY: list[Any] = ["team-a/web", "Web tier — café 東京 ✅", "arn:aws:iam::123456789012:role/x"]


@pytest.mark.parametrize("value", ORDINARY)
def test_ordinary_strings_are_unchanged_in_html_and_text(value: str) -> None:
    assert (render._html(value), render.printable_lines(value)) == (
        value.replace("&", "&amp;"), value)
