"""Pattern matching by meaning (controller.core.matching).

Covers:
- action_matches: IAM's `*` and `?`, case-insensitivity, no partial matches;
- overlaps / covers: glob-against-glob tables, both directions where they differ;
- statement_grants: Action vs NotAction, string vs list, Deny grants nothing;
- document_allows_any: every way to write a grant of iam:PassRole is found (the literal,
  iam:*, iam:Pass*, iam:?assRole, *, NotAction of another service, a single-statement
  document), with the statement index and the granting pattern; documents that do not grant
  it (other actions, NotAction excluding it, Deny, an unconditional Deny of it) are clean;
- is_wildcard_resource: "*", ARN ending in ":*", NotResource vs named resources;
- name_matches / arn_matches: `{namespace}` substitution, escaping of the rest, ArnLike's
  per-part matching, case rules for allow vs deny lists.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.core.matching import (
    Hit,
    action_matches,
    arn_matches,
    covers,
    document_allows_any,
    is_wildcard_resource,
    name_matches,
    overlaps,
    statement_grants,
)


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("iam:PassRole", "iam:PassRole", True),
        ("iam:passrole", "IAM:PassRole", True),
        ("iam:*", "iam:PassRole", True),
        ("iam:Pass*", "iam:PassRole", True),
        ("iam:?assRole", "iam:PassRole", True),
        ("*", "iam:PassRole", True),
        ("iam:Pass", "iam:PassRole", False),
        ("iam:PassRole", "iam:PassRoles", False),
        ("s3:*", "iam:PassRole", False),
        ("iam:?assRole", "iam:PPassRole", False),
    ],
)
def test_action_matches(pattern: str, action: str, expected: bool) -> None:
    assert action_matches(pattern, action) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("iam:*", "iam:Pass*", True),
        ("iam:P*", "iam:*Role", True),
        ("*", "s3:GetObject", True),
        ("iam:Get*", "iam:Pass*", False),
        ("iam:?et*", "iam:Pass*", False),
        ("s3:*", "iam:*", False),
    ],
)
def test_overlaps_is_symmetric(a: str, b: str, expected: bool) -> None:
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected


@pytest.mark.parametrize(
    ("general", "specific", "expected"),
    [
        ("iam:*", "iam:Pass*", True),
        ("iam:Pass*", "iam:*", False),
        ("*", "iam:*", True),
        ("iam:?assRole", "iam:PassRole", True),
        ("iam:?assRole", "iam:*assRole", False),  # ? is one character, * may be many
        ("iam:P*", "iam:?ass", False),
        ("IAM:PASS*", "iam:PassRole", True),
    ],
)
def test_covers(general: str, specific: str, expected: bool) -> None:
    assert covers(general, specific) is expected


def _allow(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Resource": "*", **fields}


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (_allow(Action="iam:PassRole"), True),
        (_allow(Action=["s3:GetObject", "iam:*"]), True),
        (_allow(NotAction="s3:*"), True),
        (_allow(NotAction=["iam:PassRole"]), False),
        (_allow(NotAction=["iam:*"]), False),
        (_allow(Action="s3:*"), False),
        ({"Effect": "Deny", "Action": "*", "Resource": "*"}, False),
    ],
)
def test_statement_grants(statement: dict[str, Any], expected: bool) -> None:
    assert statement_grants(statement, "iam:PassRole") is expected


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        ([_allow(Action="iam:PassRole")], [Hit(0, "iam:PassRole", "iam:PassRole")]),
        ([_allow(Action="iam:*")], [Hit(0, "iam:*", "iam:PassRole")]),
        ([_allow(Action="iam:Pass*")], [Hit(0, "iam:Pass*", "iam:PassRole")]),
        ([_allow(Action="IAM:PASSROLE")], [Hit(0, "IAM:PASSROLE", "iam:PassRole")]),
        ([_allow(Action="*")], [Hit(0, "*", "iam:PassRole")]),
        (
            [_allow(Action="s3:GetObject"), _allow(NotAction=["s3:*"])],
            [Hit(1, "NotAction [s3:*]", "iam:PassRole")],
        ),
        ([_allow(Action="s3:*"), _allow(NotAction="iam:*")], []),
        ([_allow(Action="iam:GetRole")], []),
        ([{"Effect": "Deny", "Action": "iam:*", "Resource": "*"}], []),
        # An unconditional Deny everywhere takes the grant away ...
        ([_allow(Action="*"), {"Effect": "Deny", "Action": "iam:*", "Resource": "*"}], []),
        # ... a conditional or narrower one does not.
        (
            [
                _allow(Action="*"),
                {"Effect": "Deny", "Action": "iam:*", "Resource": "*",
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            ],
            [Hit(0, "*", "iam:PassRole")],
        ),
        (
            [_allow(Action="*"),
             {"Effect": "Deny", "Action": "iam:*", "Resource": "arn:aws:iam::*:role/x"}],
            [Hit(0, "*", "iam:PassRole")],
        ),
    ],
)
def test_document_allows_any_finds_passrole(
    statements: list[dict[str, Any]], expected: list[Hit]
) -> None:
    doc = {"Version": "2012-10-17", "Statement": statements}
    assert document_allows_any(doc, ["iam:PassRole"]) == expected


def test_document_allows_any_reads_a_single_statement_object() -> None:
    doc = {"Statement": _allow(Action="iam:*")}
    assert document_allows_any(doc, ["iam:PassRole"]) == [Hit(0, "iam:*", "iam:PassRole")]


def test_a_denied_wildcard_is_hit_by_any_overlapping_action() -> None:
    doc = {"Statement": [_allow(Action="iam:CreateRole")]}
    assert document_allows_any(doc, ["iam:*", "s3:*"]) == [Hit(0, "iam:CreateRole", "iam:*")]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Resource": "*"}, True),
        ({"Resource": ["arn:aws:s3:::b/*", "*"]}, True),
        ({"Resource": "arn:aws:s3:::*"}, True),
        ({"NotResource": "arn:aws:s3:::secret/*"}, True),
        ({"Resource": "arn:aws:s3:::bucket/*"}, False),
        ({"Resource": ["arn:aws:iam::123456789012:role/a"]}, False),
    ],
)
def test_is_wildcard_resource(statement: dict[str, Any], expected: bool) -> None:
    assert is_wildcard_resource(statement) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("{namespace}-*", "team-a-web", True),
        ("{namespace}-*", "team-b-web", False),
        ("{namespace}-*", "team-a", False),
        ("/tenants/{namespace}/", "/tenants/team-a/", True),
        ("/tenants/{namespace}/", "/tenants/team-a/x/", False),
        ("/tenants/{namespace}/*", "/tenants/team-a/x/", True),
        ("a.b", "axb", False),  # '.' is literal, not a regex wildcard
        ("a+b", "a+b", True),
        ("{namespace}-*", "TEAM-A-web", False),  # allow lists are case-sensitive
    ],
)
def test_name_matches_with_namespace(pattern: str, value: str, expected: bool) -> None:
    assert name_matches(pattern, value, "team-a") is expected


def test_a_namespace_pattern_matches_nothing_without_a_namespace() -> None:
    assert not name_matches("{namespace}-*", "team-a-web")


@pytest.mark.parametrize(
    ("pattern", "arn", "expected"),
    [
        ("arn:aws:iam::aws:policy/AdministratorAccess",
         "arn:aws:iam::aws:policy/AdministratorAccess", True),
        ("arn:aws:iam::*:policy/tenant-boundary",
         "arn:aws:iam::123456789012:policy/tenant-boundary", True),
        ("arn:aws:iam::*:policy/tenants/{namespace}/*",
         "arn:aws:iam::123456789012:policy/tenants/team-a/x", True),
        ("arn:aws:iam::*:policy/tenants/{namespace}/*",
         "arn:aws:iam::123456789012:policy/tenants/team-b/x", False),
        # ArnLike matches part by part: a star in the account never reaches the resource.
        ("arn:aws:iam::*", "arn:aws:iam::123456789012:policy/x", False),
        ("arn:aws:iam::aws:policy/*FullAccess", "arn:aws:iam::aws:policy/IAMFullAccess", True),
        ("*", "arn:aws:iam::aws:policy/x", True),
        ("arn:aws:iam::aws:policy/x", "not-an-arn", False),
    ],
)
def test_arn_matches(pattern: str, arn: str, expected: bool) -> None:
    assert arn_matches(pattern, arn, "team-a") is expected


@pytest.mark.parametrize("ignore_case", [True, False])
def test_arn_case_rule(ignore_case: bool) -> None:
    pattern = "arn:aws:iam::aws:policy/AdministratorAccess"
    got = arn_matches(pattern, "arn:aws:iam::aws:policy/administratoraccess", ignore_case=ignore_case)
    assert got is ignore_case
