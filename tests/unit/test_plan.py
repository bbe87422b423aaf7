"""Planning IAM calls (`controller.plan`): exact, minimal, ordered, and valid boto3 calls.

Covers:
- create: one CreateRole / CreateUser folding path, trust, max session, description, boundary and
  all tags (ownership tags included), then attaches, inline puts, instance profile / groups;
- update: nothing when AWS matches (also when documents are written differently: string vs list,
  bare account id vs root ARN, a single statement object); exactly one call per real difference
  for every field of roles and users (description and max session share one UpdateRole); adopting
  adds the ownership tags; a new uid for the same owner is re-tagged; aws: tags are left alone;
- order: a boundary is set before anything is granted and removed after everything is revoked;
  grants (attach, put, add to group) come before revokes (detach, delete, remove from group);
- a path change is a SpecError, never a delete + create;
- plan_delete: the exact call list for roles (instance profiles, same-named profile only, managed,
  inline, DeleteRole) and for users (login profile, access keys, MFA, signing certificates, SSH
  keys, service-specific credentials, groups, managed, inline, DeleteUser);
- plan_release: only our ownership tags are removed;
- ownership() verdicts and refusal_message() wording; Action.is_write; differences();
- every Action produced by the tables above is a valid call for botocore's IAM service model:
  required members present, no unknown members, right types.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from controller.core import policy
from controller.core.actions import OWNER_TAG, UID_TAG, Action, Ownership
from controller.core.actions import ownership as decide_ownership
from controller.core.errors import SpecError
from controller.engine.reconcile import refusal_message as engine_refusal
from controller.kinds import registry
from controller.kinds.base import Desired, ObjectRef
from controller.kinds.role import Role
from controller.kinds.user import Credentials, User
from tests.helpers import ACCOUNT, EC2_TRUST, S3_READ, plan


def plan_delete(observed: Role | User) -> tuple[Action, ...]:
    return registry.get("IAMRole" if isinstance(observed, Role) else "IAMUser").plan_delete(observed)


def plan_release(observed: Role | User) -> tuple[Action, ...]:
    return registry.get("IAMRole" if isinstance(observed, Role) else "IAMUser").plan_release(observed)


def differences(desired: Desired, observed: Role | User) -> list[str]:
    return [action.summary for action in plan(desired, observed)]


def ownership(desired: Desired, observed: Role | User | None) -> Ownership:
    return decide_ownership(desired.ref.owner, desired.adopt, None if observed is None else observed.tags)


def refusal_message(desired: Desired, observed: Role | User, verdict: Ownership) -> str:
    return engine_refusal(registry.of(desired), observed, verdict)


ROLE = "team-a-web"
USER = "team-a-ci"
ROLE_REF = ObjectRef("IAMRole", "team-a", "web", "uid-1")
USER_REF = ObjectRef("IAMUser", "team-a", "ci", "uid-2")
ROLE_OWNED = {OWNER_TAG: "team-a/web", UID_TAG: "uid-1"}
USER_OWNED = {OWNER_TAG: "team-a/ci", UID_TAG: "uid-2"}

LOGS_READ = "arn:aws:iam::aws:policy/CloudWatchLogsReadOnlyAccess"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/team-boundary"
OTHER_BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/strict-boundary"

# How a user writes the trust policy, and how AWS hands the same policy back.
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["ec2.amazonaws.com"]},
            "Action": ["sts:AssumeRole"],
        }
    ],
}
TRUST_FROM_AWS = EC2_TRUST
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
ACCOUNT_TRUST = {
    "Statement": {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
}
ACCOUNT_TRUST_FROM_AWS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}
READ_BUCKET = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::data/*"]}
    ],
}
READ_BUCKET_FROM_AWS = {
    "Version": "2012-10-17",
    "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"},
}
WRITE_BUCKET = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::data/*"}],
}

Calls = list[tuple[str, dict[str, Any]]]


def calls(actions: tuple[Action, ...]) -> Calls:
    return [(a.api, dict(a.params)) for a in actions]


def tags(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": mapping[k]} for k in sorted(mapping)]


def want_role(adopt: bool = False, **fields: Any) -> Desired:
    fields.setdefault("assume_role_policy", TRUST)
    return Desired(ROLE_REF, Role(name=ROLE, **fields), generation=1, adopt=adopt)


def seen_role(**fields: Any) -> Role:
    """The role as observe.py reads it back: AWS's document form, ids, our tags."""
    fields.setdefault("assume_role_policy", TRUST_FROM_AWS)
    fields.setdefault("tags", ROLE_OWNED)
    return Role(
        name=ROLE,
        arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
        role_id="AROAEXAMPLEROLEID0001",
        **fields,
    )


def want_user(adopt: bool = False, **fields: Any) -> Desired:
    return Desired(USER_REF, User(name=USER, **fields), generation=1, adopt=adopt)


def seen_user(**fields: Any) -> User:
    fields.setdefault("tags", USER_OWNED)
    return User(
        name=USER,
        arn=f"arn:aws:iam::{ACCOUNT}:user/{USER}",
        user_id="AIDAEXAMPLEUSERID0001",
        **fields,
    )


# --- create -----------------------------------------------------------------------------------

CREATE = [
    pytest.param(
        want_role(),
        [
            (
                "CreateRole",
                {
                    "RoleName": ROLE,
                    "Path": "/",
                    "AssumeRolePolicyDocument": policy.to_json(TRUST),
                    "MaxSessionDuration": 3600,
                    "Tags": tags(ROLE_OWNED),
                },
            )
        ],
        id="role-minimal",
    ),
    pytest.param(
        want_role(
            path="/apps/",
            description="Web tier",
            max_session_duration=7200,
            managed_policies=frozenset({S3_READ, LOGS_READ}),
            inline_policies={"write": WRITE_BUCKET, "read": READ_BUCKET},
            permissions_boundary=BOUNDARY,
            tags={"team": "a"},
            instance_profiles=frozenset({ROLE}),
        ),
        [
            (
                "CreateRole",
                {
                    "RoleName": ROLE,
                    "Path": "/apps/",
                    "AssumeRolePolicyDocument": policy.to_json(TRUST),
                    "MaxSessionDuration": 7200,
                    "Tags": tags({"team": "a", **ROLE_OWNED}),
                    "Description": "Web tier",
                    "PermissionsBoundary": BOUNDARY,
                },
            ),
            ("AttachRolePolicy", {"RoleName": ROLE, "PolicyArn": S3_READ}),
            ("AttachRolePolicy", {"RoleName": ROLE, "PolicyArn": LOGS_READ}),
            (
                "PutRolePolicy",
                {
                    "RoleName": ROLE,
                    "PolicyName": "read",
                    "PolicyDocument": policy.to_json(READ_BUCKET),
                },
            ),
            (
                "PutRolePolicy",
                {
                    "RoleName": ROLE,
                    "PolicyName": "write",
                    "PolicyDocument": policy.to_json(WRITE_BUCKET),
                },
            ),
            (
                "CreateInstanceProfile",
                {"InstanceProfileName": ROLE, "Path": "/apps/", "Tags": tags(ROLE_OWNED)},
            ),
            ("AddRoleToInstanceProfile", {"InstanceProfileName": ROLE, "RoleName": ROLE}),
        ],
        id="role-every-field",
    ),
    pytest.param(
        want_user(),
        [("CreateUser", {"UserName": USER, "Path": "/", "Tags": tags(USER_OWNED)})],
        id="user-minimal",
    ),
    pytest.param(
        want_user(
            path="/ci/",
            managed_policies=frozenset({LOGS_READ}),
            inline_policies={"read": READ_BUCKET},
            permissions_boundary=BOUNDARY,
            groups=frozenset({"readers", "deployers"}),
            tags={"team": "a"},
        ),
        [
            (
                "CreateUser",
                {
                    "UserName": USER,
                    "Path": "/ci/",
                    "Tags": tags({"team": "a", **USER_OWNED}),
                    "PermissionsBoundary": BOUNDARY,
                },
            ),
            ("AttachUserPolicy", {"UserName": USER, "PolicyArn": LOGS_READ}),
            (
                "PutUserPolicy",
                {
                    "UserName": USER,
                    "PolicyName": "read",
                    "PolicyDocument": policy.to_json(READ_BUCKET),
                },
            ),
            ("AddUserToGroup", {"GroupName": "deployers", "UserName": USER}),
            ("AddUserToGroup", {"GroupName": "readers", "UserName": USER}),
        ],
        id="user-every-field",
    ),
]


@pytest.mark.parametrize(("desired", "expected"), CREATE)
def test_create(desired: Desired, expected: Calls) -> None:
    assert calls(plan(desired, None)) == expected


def test_create_sends_the_canonical_document() -> None:
    [create] = plan(want_role(), None)
    assert create.params["AssumeRolePolicyDocument"] == policy.to_json(TRUST_FROM_AWS)


# --- update: nothing to do ----------------------------------------------------------------------

IN_SYNC = [
    pytest.param(want_role(), seen_role(), id="role-identical-apart-from-document-form"),
    pytest.param(
        want_role(assume_role_policy=ACCOUNT_TRUST),
        seen_role(assume_role_policy=ACCOUNT_TRUST_FROM_AWS),
        id="role-bare-account-id-vs-root-arn",
    ),
    pytest.param(
        want_role(inline_policies={"read": READ_BUCKET}),
        seen_role(inline_policies={"read": READ_BUCKET_FROM_AWS}),
        id="role-inline-in-another-form",
    ),
    pytest.param(
        want_role(
            path="/apps/",
            description="Web tier",
            max_session_duration=7200,
            managed_policies=frozenset({S3_READ}),
            permissions_boundary=BOUNDARY,
            tags={"team": "a"},
            instance_profiles=frozenset({ROLE}),
        ),
        seen_role(
            path="/apps/",
            description="Web tier",
            max_session_duration=7200,
            managed_policies=frozenset({S3_READ}),
            permissions_boundary=BOUNDARY,
            tags={"team": "a", **ROLE_OWNED},
            instance_profiles=frozenset({ROLE}),
        ),
        id="role-every-field-equal",
    ),
    pytest.param(
        want_role(),
        seen_role(instance_profiles=frozenset({"someone-elses-profile"})),
        id="role-in-a-profile-that-is-not-ours",
    ),
    pytest.param(
        want_role(),
        seen_role(tags={"aws:cloudformation:stack-name": "legacy", **ROLE_OWNED}),
        id="role-with-aws-reserved-tag",
    ),
    pytest.param(
        want_user(
            path="/ci/",
            managed_policies=frozenset({LOGS_READ}),
            inline_policies={"read": READ_BUCKET},
            permissions_boundary=BOUNDARY,
            groups=frozenset({"deployers"}),
            tags={"team": "a"},
        ),
        seen_user(
            path="/ci/",
            managed_policies=frozenset({LOGS_READ}),
            inline_policies={"read": READ_BUCKET_FROM_AWS},
            permissions_boundary=BOUNDARY,
            groups=frozenset({"deployers"}),
            tags={"team": "a", **USER_OWNED},
        ),
        id="user-every-field-equal",
    ),
]


@pytest.mark.parametrize(("desired", "observed"), IN_SYNC)
def test_nothing_to_do_when_aws_matches(desired: Desired, observed: Role | User) -> None:
    assert plan(desired, observed) == ()


# --- update: one call per difference ---------------------------------------------------------

ROLE_UPDATES = [
    pytest.param(
        {"description": "New"},
        {"description": "Old"},
        [("UpdateRole", {"RoleName": ROLE, "Description": "New", "MaxSessionDuration": 3600})],
        id="description-changed",
    ),
    pytest.param(
        {},
        {"description": "Old"},
        [("UpdateRole", {"RoleName": ROLE, "Description": "", "MaxSessionDuration": 3600})],
        id="description-removed",
    ),
    pytest.param(
        {"max_session_duration": 7200},
        {},
        [("UpdateRole", {"RoleName": ROLE, "Description": "", "MaxSessionDuration": 7200})],
        id="max-session-changed",
    ),
    pytest.param(
        {"description": "New", "max_session_duration": 43200},
        {"description": "Old"},
        [("UpdateRole", {"RoleName": ROLE, "Description": "New", "MaxSessionDuration": 43200})],
        id="description-and-max-session-one-call",
    ),
    pytest.param(
        {"assume_role_policy": LAMBDA_TRUST},
        {},
        [
            (
                "UpdateAssumeRolePolicy",
                {"RoleName": ROLE, "PolicyDocument": policy.to_json(LAMBDA_TRUST)},
            )
        ],
        id="trust-changed",
    ),
    pytest.param(
        {"managed_policies": frozenset({S3_READ})},
        {},
        [("AttachRolePolicy", {"RoleName": ROLE, "PolicyArn": S3_READ})],
        id="attach",
    ),
    pytest.param(
        {},
        {"managed_policies": frozenset({S3_READ})},
        [("DetachRolePolicy", {"RoleName": ROLE, "PolicyArn": S3_READ})],
        id="detach",
    ),
    pytest.param(
        {"inline_policies": {"read": READ_BUCKET}},
        {},
        [
            (
                "PutRolePolicy",
                {
                    "RoleName": ROLE,
                    "PolicyName": "read",
                    "PolicyDocument": policy.to_json(READ_BUCKET),
                },
            )
        ],
        id="inline-added",
    ),
    pytest.param(
        {"inline_policies": {"read": WRITE_BUCKET}},
        {"inline_policies": {"read": READ_BUCKET_FROM_AWS}},
        [
            (
                "PutRolePolicy",
                {
                    "RoleName": ROLE,
                    "PolicyName": "read",
                    "PolicyDocument": policy.to_json(WRITE_BUCKET),
                },
            )
        ],
        id="inline-changed",
    ),
    pytest.param(
        {},
        {"inline_policies": {"read": READ_BUCKET_FROM_AWS}},
        [("DeleteRolePolicy", {"RoleName": ROLE, "PolicyName": "read"})],
        id="inline-removed",
    ),
    pytest.param(
        {"permissions_boundary": BOUNDARY},
        {},
        [("PutRolePermissionsBoundary", {"RoleName": ROLE, "PermissionsBoundary": BOUNDARY})],
        id="boundary-set",
    ),
    pytest.param(
        {"permissions_boundary": OTHER_BOUNDARY},
        {"permissions_boundary": BOUNDARY},
        [
            (
                "PutRolePermissionsBoundary",
                {"RoleName": ROLE, "PermissionsBoundary": OTHER_BOUNDARY},
            )
        ],
        id="boundary-changed",
    ),
    pytest.param(
        {},
        {"permissions_boundary": BOUNDARY},
        [("DeleteRolePermissionsBoundary", {"RoleName": ROLE})],
        id="boundary-removed",
    ),
    pytest.param(
        {"tags": {"team": "a"}},
        {},
        [("TagRole", {"RoleName": ROLE, "Tags": [{"Key": "team", "Value": "a"}]})],
        id="tag-added",
    ),
    pytest.param(
        {"tags": {"team": "a", "app": "web"}},
        {"tags": {"team": "b", "app": "web", **ROLE_OWNED}},
        [("TagRole", {"RoleName": ROLE, "Tags": [{"Key": "team", "Value": "a"}]})],
        id="tag-value-changed",
    ),
    pytest.param(
        {},
        {"tags": {"team": "a", "Owner": "alice", **ROLE_OWNED}},
        [("UntagRole", {"RoleName": ROLE, "TagKeys": ["Owner", "team"]})],
        id="tags-removed-in-one-call",
    ),
    pytest.param(
        {},
        {"tags": {OWNER_TAG: "team-a/web", UID_TAG: "uid-0"}},
        [("TagRole", {"RoleName": ROLE, "Tags": [{"Key": UID_TAG, "Value": "uid-1"}]})],
        id="same-owner-new-uid-retagged",
    ),
    pytest.param(
        {"instance_profiles": frozenset({ROLE})},
        {},
        [
            (
                "CreateInstanceProfile",
                {"InstanceProfileName": ROLE, "Path": "/", "Tags": tags(ROLE_OWNED)},
            ),
            ("AddRoleToInstanceProfile", {"InstanceProfileName": ROLE, "RoleName": ROLE}),
        ],
        id="instance-profile-added",
    ),
    pytest.param(
        {},
        {"instance_profiles": frozenset({ROLE, "someone-elses-profile"})},
        [
            ("RemoveRoleFromInstanceProfile", {"InstanceProfileName": ROLE, "RoleName": ROLE}),
            ("DeleteInstanceProfile", {"InstanceProfileName": ROLE}),
        ],
        id="instance-profile-removed-ours-only",
    ),
]


@pytest.mark.parametrize(("want", "seen", "expected"), ROLE_UPDATES)
def test_role_update(want: dict[str, Any], seen: dict[str, Any], expected: Calls) -> None:
    assert calls(plan(want_role(**want), seen_role(**seen))) == expected


USER_UPDATES = [
    pytest.param(
        {"managed_policies": frozenset({S3_READ})},
        {},
        [("AttachUserPolicy", {"UserName": USER, "PolicyArn": S3_READ})],
        id="attach",
    ),
    pytest.param(
        {},
        {"managed_policies": frozenset({S3_READ})},
        [("DetachUserPolicy", {"UserName": USER, "PolicyArn": S3_READ})],
        id="detach",
    ),
    pytest.param(
        {"inline_policies": {"read": READ_BUCKET}},
        {},
        [
            (
                "PutUserPolicy",
                {
                    "UserName": USER,
                    "PolicyName": "read",
                    "PolicyDocument": policy.to_json(READ_BUCKET),
                },
            )
        ],
        id="inline-added",
    ),
    pytest.param(
        {"inline_policies": {"read": WRITE_BUCKET}},
        {"inline_policies": {"read": READ_BUCKET_FROM_AWS}},
        [
            (
                "PutUserPolicy",
                {
                    "UserName": USER,
                    "PolicyName": "read",
                    "PolicyDocument": policy.to_json(WRITE_BUCKET),
                },
            )
        ],
        id="inline-changed",
    ),
    pytest.param(
        {},
        {"inline_policies": {"read": READ_BUCKET_FROM_AWS}},
        [("DeleteUserPolicy", {"UserName": USER, "PolicyName": "read"})],
        id="inline-removed",
    ),
    pytest.param(
        {"permissions_boundary": BOUNDARY},
        {},
        [("PutUserPermissionsBoundary", {"UserName": USER, "PermissionsBoundary": BOUNDARY})],
        id="boundary-set",
    ),
    pytest.param(
        {"permissions_boundary": OTHER_BOUNDARY},
        {"permissions_boundary": BOUNDARY},
        [
            (
                "PutUserPermissionsBoundary",
                {"UserName": USER, "PermissionsBoundary": OTHER_BOUNDARY},
            )
        ],
        id="boundary-changed",
    ),
    pytest.param(
        {},
        {"permissions_boundary": BOUNDARY},
        [("DeleteUserPermissionsBoundary", {"UserName": USER})],
        id="boundary-removed",
    ),
    pytest.param(
        {"groups": frozenset({"deployers"})},
        {},
        [("AddUserToGroup", {"GroupName": "deployers", "UserName": USER})],
        id="group-added",
    ),
    pytest.param(
        {},
        {"groups": frozenset({"deployers"})},
        [("RemoveUserFromGroup", {"GroupName": "deployers", "UserName": USER})],
        id="group-removed",
    ),
    pytest.param(
        {"tags": {"team": "a"}},
        {},
        [("TagUser", {"UserName": USER, "Tags": [{"Key": "team", "Value": "a"}]})],
        id="tag-added",
    ),
    pytest.param(
        {"tags": {"team": "a"}},
        {"tags": {"team": "b", **USER_OWNED}},
        [("TagUser", {"UserName": USER, "Tags": [{"Key": "team", "Value": "a"}]})],
        id="tag-value-changed",
    ),
    pytest.param(
        {},
        {"tags": {"team": "a", **USER_OWNED}},
        [("UntagUser", {"UserName": USER, "TagKeys": ["team"]})],
        id="tag-removed",
    ),
]


@pytest.mark.parametrize(("want", "seen", "expected"), USER_UPDATES)
def test_user_update(want: dict[str, Any], seen: dict[str, Any], expected: Calls) -> None:
    assert calls(plan(want_user(**want), seen_user(**seen))) == expected


@pytest.mark.parametrize(
    ("desired", "observed", "expected"),
    [
        pytest.param(
            want_role(adopt=True),
            seen_role(tags={}),
            [("TagRole", {"RoleName": ROLE, "Tags": tags(ROLE_OWNED)})],
            id="role",
        ),
        pytest.param(
            want_user(adopt=True),
            seen_user(tags={}),
            [("TagUser", {"UserName": USER, "Tags": tags(USER_OWNED)})],
            id="user",
        ),
    ],
)
def test_adopting_adds_only_the_ownership_tags(
    desired: Desired, observed: Role | User, expected: Calls
) -> None:
    assert calls(plan(desired, observed)) == expected


def test_trust_update_summary_shows_the_policy_difference() -> None:
    [action] = plan(want_role(assume_role_policy=LAMBDA_TRUST), seen_role())
    assert action.summary.startswith(f"Updated trust policy of role {ROLE}: ")
    assert "lambda.amazonaws.com" in action.summary


def test_differences_are_the_summaries_of_the_planned_calls() -> None:
    found = differences(want_role(managed_policies=frozenset({S3_READ})), seen_role())
    assert found == [f"Attached {S3_READ}"]


def test_no_differences_when_in_sync() -> None:
    assert differences(want_role(), seen_role()) == []


# --- order ------------------------------------------------------------------------------------

ORDER = [
    pytest.param(
        want_role(managed_policies=frozenset({LOGS_READ})),
        seen_role(managed_policies=frozenset({S3_READ})),
        ["AttachRolePolicy", "DetachRolePolicy"],
        id="role-attach-before-detach",
    ),
    pytest.param(
        want_role(inline_policies={"write": WRITE_BUCKET}),
        seen_role(inline_policies={"read": READ_BUCKET}),
        ["PutRolePolicy", "DeleteRolePolicy"],
        id="role-put-before-delete",
    ),
    pytest.param(
        want_role(permissions_boundary=BOUNDARY, managed_policies=frozenset({S3_READ})),
        seen_role(),
        ["PutRolePermissionsBoundary", "AttachRolePolicy"],
        id="role-boundary-set-before-attach",
    ),
    pytest.param(
        want_role(),
        seen_role(permissions_boundary=BOUNDARY, managed_policies=frozenset({S3_READ})),
        ["DetachRolePolicy", "DeleteRolePermissionsBoundary"],
        id="role-boundary-removed-after-detach",
    ),
    pytest.param(
        want_user(groups=frozenset({"writers"})),
        seen_user(groups=frozenset({"readers"})),
        ["AddUserToGroup", "RemoveUserFromGroup"],
        id="user-add-before-remove",
    ),
    pytest.param(
        want_user(managed_policies=frozenset({LOGS_READ}), inline_policies={"w": WRITE_BUCKET}),
        seen_user(managed_policies=frozenset({S3_READ}), inline_policies={"r": READ_BUCKET}),
        ["AttachUserPolicy", "PutUserPolicy", "DetachUserPolicy", "DeleteUserPolicy"],
        id="user-grants-before-revokes",
    ),
    pytest.param(
        want_user(permissions_boundary=BOUNDARY, groups=frozenset({"writers"})),
        seen_user(),
        ["PutUserPermissionsBoundary", "AddUserToGroup"],
        id="user-boundary-set-before-group",
    ),
    pytest.param(
        want_user(),
        seen_user(permissions_boundary=BOUNDARY, groups=frozenset({"writers"})),
        ["RemoveUserFromGroup", "DeleteUserPermissionsBoundary"],
        id="user-boundary-removed-after-group",
    ),
]


@pytest.mark.parametrize(("desired", "observed", "expected"), ORDER)
def test_order(desired: Desired, observed: Role | User, expected: list[str]) -> None:
    assert [a.api for a in plan(desired, observed)] == expected


# --- immutable fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "observed", "expected"),
    [
        pytest.param(
            want_role(path="/apps/"),
            seen_role(),
            "spec.path: '/apps/' differs from the existing path '/' of IAM role 'team-a-web'; "
            "a path cannot change in place (create a new object instead)",
            id="role",
        ),
        pytest.param(
            want_user(),
            seen_user(path="/ci/"),
            "spec.path: '/' differs from the existing path '/ci/' of IAM user 'team-a-ci'; "
            "a path cannot change in place (create a new object instead)",
            id="user",
        ),
    ],
)
def test_path_change_is_a_spec_error(
    desired: Desired, observed: Role | User, expected: str
) -> None:
    with pytest.raises(SpecError) as info:
        plan(desired, observed)
    assert info.value.errors == [expected]


# --- delete and release -----------------------------------------------------------------------


def test_delete_role() -> None:
    observed = seen_role(
        managed_policies=frozenset({S3_READ, LOGS_READ}),
        inline_policies={"write": WRITE_BUCKET, "read": READ_BUCKET},
        permissions_boundary=BOUNDARY,
        tags={"team": "a", **ROLE_OWNED},
        instance_profiles=frozenset({ROLE, "shared-profile"}),
    )
    assert calls(plan_delete(observed)) == [
        (
            "RemoveRoleFromInstanceProfile",
            {"InstanceProfileName": "shared-profile", "RoleName": ROLE},
        ),
        ("RemoveRoleFromInstanceProfile", {"InstanceProfileName": ROLE, "RoleName": ROLE}),
        ("DeleteInstanceProfile", {"InstanceProfileName": ROLE}),
        ("DetachRolePolicy", {"RoleName": ROLE, "PolicyArn": S3_READ}),
        ("DetachRolePolicy", {"RoleName": ROLE, "PolicyArn": LOGS_READ}),
        ("DeleteRolePolicy", {"RoleName": ROLE, "PolicyName": "read"}),
        ("DeleteRolePolicy", {"RoleName": ROLE, "PolicyName": "write"}),
        ("DeleteRole", {"RoleName": ROLE}),
    ]


def test_delete_bare_role() -> None:
    assert calls(plan_delete(seen_role())) == [("DeleteRole", {"RoleName": ROLE})]


VIRTUAL_MFA = f"arn:aws:iam::{ACCOUNT}:mfa/team-a-ci"
HARDWARE_MFA = "GAHT12345678"
ACCESS_KEYS = ("AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE")
CERTIFICATE = "TA7SMP42TDN5Z26OBPJE7EXAMPLE"
SSH_KEY = "APKAEIBAERJR2EXAMPLE"
SERVICE_CREDENTIAL = "ACCA12345ABCDEXAMPLE"


def test_delete_user_with_every_credential() -> None:
    observed = seen_user(
        managed_policies=frozenset({LOGS_READ}),
        inline_policies={"read": READ_BUCKET},
        groups=frozenset({"readers", "deployers"}),
        credentials=Credentials(
            access_keys=ACCESS_KEYS,
            login_profile=True,
            mfa_devices=(VIRTUAL_MFA, HARDWARE_MFA),
            signing_certificates=(CERTIFICATE,),
            ssh_public_keys=(SSH_KEY,),
            service_specific_credentials=(SERVICE_CREDENTIAL,),
        ),
    )
    assert calls(plan_delete(observed)) == [
        ("DeleteLoginProfile", {"UserName": USER}),
        ("DeleteAccessKey", {"UserName": USER, "AccessKeyId": ACCESS_KEYS[0]}),
        ("DeleteAccessKey", {"UserName": USER, "AccessKeyId": ACCESS_KEYS[1]}),
        ("DeactivateMFADevice", {"UserName": USER, "SerialNumber": VIRTUAL_MFA}),
        ("DeleteVirtualMFADevice", {"SerialNumber": VIRTUAL_MFA}),
        ("DeactivateMFADevice", {"UserName": USER, "SerialNumber": HARDWARE_MFA}),
        ("DeleteSigningCertificate", {"UserName": USER, "CertificateId": CERTIFICATE}),
        ("DeleteSSHPublicKey", {"UserName": USER, "SSHPublicKeyId": SSH_KEY}),
        (
            "DeleteServiceSpecificCredential",
            {"UserName": USER, "ServiceSpecificCredentialId": SERVICE_CREDENTIAL},
        ),
        ("RemoveUserFromGroup", {"GroupName": "deployers", "UserName": USER}),
        ("RemoveUserFromGroup", {"GroupName": "readers", "UserName": USER}),
        ("DetachUserPolicy", {"UserName": USER, "PolicyArn": LOGS_READ}),
        ("DeleteUserPolicy", {"UserName": USER, "PolicyName": "read"}),
        ("DeleteUser", {"UserName": USER}),
    ]


@pytest.mark.parametrize(
    "credentials",
    [pytest.param(None, id="not-read"), pytest.param(Credentials(), id="none-held")],
)
def test_delete_user_without_credentials(credentials: Credentials | None) -> None:
    observed = seen_user(groups=frozenset({"deployers"}), credentials=credentials)
    assert calls(plan_delete(observed)) == [
        ("RemoveUserFromGroup", {"GroupName": "deployers", "UserName": USER}),
        ("DeleteUser", {"UserName": USER}),
    ]


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        pytest.param(
            seen_role(tags={"team": "a", **ROLE_OWNED}),
            [("UntagRole", {"RoleName": ROLE, "TagKeys": [OWNER_TAG, UID_TAG]})],
            id="role",
        ),
        pytest.param(
            seen_user(tags={"team": "a", **USER_OWNED}),
            [("UntagUser", {"UserName": USER, "TagKeys": [OWNER_TAG, UID_TAG]})],
            id="user",
        ),
        pytest.param(
            seen_role(tags={OWNER_TAG: "team-a/web"}),
            [("UntagRole", {"RoleName": ROLE, "TagKeys": [OWNER_TAG]})],
            id="role-with-owner-tag-only",
        ),
        pytest.param(seen_role(tags={"team": "a"}), [], id="role-already-released"),
    ],
)
def test_release_removes_only_ownership_tags(observed: Role | User, expected: Calls) -> None:
    assert calls(plan_release(observed)) == expected


# --- ownership --------------------------------------------------------------------------------

OWNERSHIP = [
    pytest.param(want_role(), None, Ownership.ABSENT, id="absent"),
    pytest.param(want_role(), seen_role(), Ownership.OWNED, id="owned"),
    pytest.param(
        want_role(),
        seen_role(tags={OWNER_TAG: "team-a/web", UID_TAG: "uid-restored"}),
        Ownership.OWNED,
        id="same-namespace-and-name-other-uid",
    ),
    pytest.param(want_role(adopt=True), seen_role(tags={}), Ownership.ADOPT, id="adopt"),
    pytest.param(
        want_role(adopt=True),
        seen_role(tags={UID_TAG: "uid-9"}),
        Ownership.ADOPT,
        id="adopt-uid-tag-without-owner",
    ),
    pytest.param(
        want_role(), seen_role(tags={"team": "a"}), Ownership.REFUSED, id="untagged-refused"
    ),
    pytest.param(
        want_role(),
        seen_role(tags={OWNER_TAG: "team-b/web", UID_TAG: "uid-9"}),
        Ownership.CONFLICT,
        id="other-namespace",
    ),
    pytest.param(
        want_role(),
        seen_role(tags={OWNER_TAG: "team-a/api", UID_TAG: "uid-9"}),
        Ownership.CONFLICT,
        id="other-name",
    ),
    pytest.param(
        want_role(adopt=True),
        seen_role(tags={OWNER_TAG: "team-b/web", UID_TAG: "uid-9"}),
        Ownership.CONFLICT,
        id="adopt-does-not-take-from-another-owner",
    ),
    pytest.param(want_user(), seen_user(), Ownership.OWNED, id="user-owned"),
    pytest.param(want_user(), seen_user(tags={}), Ownership.REFUSED, id="user-untagged"),
]


@pytest.mark.parametrize(("desired", "observed", "expected"), OWNERSHIP)
def test_ownership(desired: Desired, observed: Role | User | None, expected: Ownership) -> None:
    assert ownership(desired, observed) is expected


@pytest.mark.parametrize(
    ("verdict", "allowed"),
    [
        pytest.param(Ownership.ABSENT, True, id="absent"),
        pytest.param(Ownership.OWNED, True, id="owned"),
        pytest.param(Ownership.ADOPT, True, id="adopt"),
        pytest.param(Ownership.REFUSED, False, id="refused"),
        pytest.param(Ownership.CONFLICT, False, id="conflict"),
    ],
)
def test_ownership_allowed(verdict: Ownership, allowed: bool) -> None:
    assert verdict.allowed is allowed


@pytest.mark.parametrize(
    ("desired", "observed", "verdict", "expected"),
    [
        pytest.param(
            want_role(),
            seen_role(tags={OWNER_TAG: "team-b/web"}),
            Ownership.CONFLICT,
            "IAM role 'team-a-web' is already managed by team-b/web; "
            "two objects cannot own one AWS name: choose another spec.roleName",
            id="role-conflict",
        ),
        pytest.param(
            want_user(),
            seen_user(tags={OWNER_TAG: "team-b/ci"}),
            Ownership.CONFLICT,
            "IAM user 'team-a-ci' is already managed by team-b/ci; "
            "two objects cannot own one AWS name: choose another spec.userName",
            id="user-conflict",
        ),
        pytest.param(
            want_role(),
            seen_role(tags={}),
            Ownership.REFUSED,
            "IAM role 'team-a-web' already exists and was not created by Rolekeeper; "
            "set spec.adopt: true to take it over (its settings will be replaced by this spec)",
            id="role-refused",
        ),
        pytest.param(
            want_user(),
            seen_user(tags={}),
            Ownership.REFUSED,
            "IAM user 'team-a-ci' already exists and was not created by Rolekeeper; "
            "set spec.adopt: true to take it over (its settings will be replaced by this spec)",
            id="user-refused",
        ),
    ],
)
def test_refusal_message(
    desired: Desired, observed: Role | User, verdict: Ownership, expected: str
) -> None:
    assert refusal_message(desired, observed, verdict) == expected


@pytest.mark.parametrize(
    ("api", "is_write"),
    [
        pytest.param("GetRole", False, id="get"),
        pytest.param("ListRoleTags", False, id="list"),
        pytest.param("CreateRole", True, id="create"),
        pytest.param("TagRole", True, id="tag"),
        pytest.param("DeleteRole", True, id="delete"),
    ],
)
def test_action_is_write(api: str, is_write: bool) -> None:
    assert Action(api, {}, "").is_write is is_write


# --- every planned call is valid for botocore ------------------------------------------------


def _planned() -> Iterator[Action]:
    """Every Action the tables above make the planner produce."""
    for case in CREATE:
        yield from plan(case.values[0], None)
    for case in ROLE_UPDATES:
        yield from plan(want_role(**case.values[0]), seen_role(**case.values[1]))
    for case in USER_UPDATES:
        yield from plan(want_user(**case.values[0]), seen_user(**case.values[1]))
    for case in ORDER:
        yield from plan(case.values[0], case.values[1])
    yield from plan(want_role(adopt=True), seen_role(tags={}))
    yield from plan_delete(
        seen_role(
            managed_policies=frozenset({S3_READ}),
            inline_policies={"read": READ_BUCKET},
            instance_profiles=frozenset({ROLE, "shared-profile"}),
        )
    )
    yield from plan_delete(
        seen_user(
            managed_policies=frozenset({S3_READ}),
            inline_policies={"read": READ_BUCKET},
            groups=frozenset({"deployers"}),
            credentials=Credentials(
                access_keys=ACCESS_KEYS,
                login_profile=True,
                mfa_devices=(VIRTUAL_MFA, HARDWARE_MFA),
                signing_certificates=(CERTIFICATE,),
                ssh_public_keys=(SSH_KEY,),
                service_specific_credentials=(SERVICE_CREDENTIAL,),
            ),
        )
    )
    yield from plan_release(seen_role())
    yield from plan_release(seen_user())


PLANNED = list(_planned())
IAM = botocore.session.get_session().get_service_model("iam")

# Every operation plan.py can emit: the tables must make each of them at least once.
OPERATIONS = {
    "CreateRole", "UpdateRole", "UpdateAssumeRolePolicy", "DeleteRole",
    "AttachRolePolicy", "DetachRolePolicy", "PutRolePolicy", "DeleteRolePolicy",
    "PutRolePermissionsBoundary", "DeleteRolePermissionsBoundary", "TagRole", "UntagRole",
    "CreateInstanceProfile", "AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile",
    "DeleteInstanceProfile",
    "CreateUser", "DeleteUser", "AttachUserPolicy", "DetachUserPolicy", "PutUserPolicy",
    "DeleteUserPolicy", "PutUserPermissionsBoundary", "DeleteUserPermissionsBoundary",
    "TagUser", "UntagUser", "AddUserToGroup", "RemoveUserFromGroup",
    "DeleteLoginProfile", "DeleteAccessKey", "DeactivateMFADevice", "DeleteVirtualMFADevice",
    "DeleteSigningCertificate", "DeleteSSHPublicKey", "DeleteServiceSpecificCredential",
}  # fmt: skip


def test_tables_exercise_every_operation() -> None:
    assert {a.api for a in PLANNED} == OPERATIONS


@pytest.mark.parametrize("api", sorted(OPERATIONS))
def test_params_have_every_required_member(api: str) -> None:
    required = set(IAM.operation_model(api).input_shape.required_members)
    for action in (a for a in PLANNED if a.api == api):
        assert required <= set(action.params), action


@pytest.mark.parametrize("api", sorted(OPERATIONS))
def test_params_have_no_unknown_member(api: str) -> None:
    known = set(IAM.operation_model(api).input_shape.members)
    for action in (a for a in PLANNED if a.api == api):
        assert set(action.params) <= known, action


@pytest.mark.parametrize("api", sorted(OPERATIONS))
def test_params_pass_botocore_validation(api: str) -> None:
    shape = IAM.operation_model(api).input_shape
    for action in (a for a in PLANNED if a.api == api):
        report = ParamValidator().validate(dict(action.params), shape)
        assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_bare_account_ids_are_sent_as_root_arns_of_the_accounts_partition(partition: str) -> None:
    """AWS China / GovCloud would reject an arn:aws: principal: the plan uses the partition."""
    actions = plan(want_role(assume_role_policy=ACCOUNT_TRUST), None, partition)
    sent = policy.parse(actions[0].params["AssumeRolePolicyDocument"])
    assert sent["Statement"][0]["Principal"] == {"AWS": f"arn:{partition}:iam::{ACCOUNT}:root"}


@pytest.mark.parametrize(
    ("want", "seen", "tag_api"),
    [
        (lambda: want_role(adopt=True, managed_policies=frozenset({S3_READ}), description="d"),
         lambda: seen_role(tags={"team": "x"}), "TagRole"),
        (lambda: want_user(adopt=True, managed_policies=frozenset({S3_READ})),
         lambda: seen_user(tags={}), "TagUser"),
    ],
    ids=["role", "user"],
)
def test_adopting_claims_the_entity_before_any_other_write(want: Any, seen: Any, tag_api: str) -> None:
    """A tag-scoped AWS policy only lets the operator write to entities carrying its owner tag."""
    actions = plan(want(), seen())
    assert len(actions) > 1
    assert actions[0].api == tag_api
    assert actions[0].params["Tags"][0]["Key"] == OWNER_TAG
