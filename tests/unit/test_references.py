"""engine.references.referenced: which calls attach something that must exist first.

Covers: managed policies attached, boundaries set on create or later, groups joined are
references; a policy's own version calls, detaches and removals are not; each is listed once.
"""

from __future__ import annotations

import pytest

from controller.core.actions import act
from controller.engine.references import referenced

P = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
B = "arn:aws:iam::123456789012:policy/boundary"


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (act("AttachRolePolicy", "", RoleName="r", PolicyArn=P), [("policy", P)]),
        (act("AttachUserPolicy", "", UserName="u", PolicyArn=P), [("policy", P)]),
        (act("CreateRole", "", RoleName="r", PermissionsBoundary=B), [("policy", B)]),
        (act("PutRolePermissionsBoundary", "", RoleName="r", PermissionsBoundary=B), [("policy", B)]),
        (act("AddUserToGroup", "", UserName="u", GroupName="g"), [("group", "g")]),
        (act("CreatePolicyVersion", "", PolicyArn=B, PolicyDocument="{}"), []),
        (act("SetDefaultPolicyVersion", "", PolicyArn=B, VersionId="v2"), []),
        (act("DetachRolePolicy", "", RoleName="r", PolicyArn=P), []),
        (act("RemoveUserFromGroup", "", UserName="u", GroupName="g"), []),
        (act("PutRolePolicy", "", RoleName="r", PolicyName="p", PolicyDocument="{}"), []),
    ],
    ids=lambda v: v.api if hasattr(v, "api") else None,
)
def test_referenced(action: object, expected: list[tuple[str, str]]) -> None:
    assert referenced([action]) == expected  # type: ignore[list-item]


def test_each_reference_is_listed_once() -> None:
    calls = [act("AttachRolePolicy", "", RoleName="r", PolicyArn=P)] * 2
    assert referenced(calls) == [("policy", P)]
