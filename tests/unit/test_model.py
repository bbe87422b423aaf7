"""Parsing whole IAMRole / IAMUser objects into the model (`controller.model`).

Covers:
- defaults: roleName/userName from metadata.name, path "/", empty description, session 3600,
  no policies/boundary/tags/groups/instance profile, deletionPolicy Delete, adopt false; the
  ObjectRef and generation from metadata; `parse` dispatching on kind;
- Desired.tags(): the spec's tags plus the ownership tags (owner, uid, and cluster when known);
- every validation rule of issue 2 item 3, each with valid and invalid values, for roles and
  (where both kinds have the field) users: names (pattern, 64), paths (pattern, 512),
  maxSessionDuration (3600..43200), description (1000, charset), tags (50 incl. ours, key 128,
  value 256, charset, aws: and rolekeeper.dev/ prefixes), managed policy ARNs (shape, 20,
  duplicates), permissions boundary, inline policy names, groups, policy sizes (trust 2,048 and
  configurable; role inline total 10,240; user inline total 2,048; whitespace not counted),
  policy grammar (Principal only in trust policies, Resource only in identity policies, ...);
- unknown fields and wrong types (a JSON string where a document object is expected);
- every SpecError message starts with the spec field and names the limit or the rule broken,
  and all broken rules of one object are reported together.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from controller.core import policy
from controller.core.actions import CLUSTER_TAG, OWNER_TAG, UID_TAG
from controller.core.errors import SpecError
from controller.kinds import registry
from controller.kinds.base import Desired, ObjectRef
from controller.kinds.role import Role
from controller.kinds.user import User
from controller.settings import Limits
from tests.helpers import EC2_TRUST, S3_READ, manifest

parse = registry.parse
parse_role = registry.get("IAMRole").parse
parse_user = registry.get("IAMUser").parse

READ_BUCKET = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::team-a-data/*"}
    ],
}
BOUNDARY = "arn:aws:iam::123456789012:policy/team-boundary"

Parser = Callable[..., Desired]


def role_obj(**spec: Any) -> dict[str, Any]:
    return manifest("IAMRole", "web", {"assumeRolePolicy": EC2_TRUST, **spec}, uid="uid-1",
                    generation=3)


def user_obj(**spec: Any) -> dict[str, Any]:
    return manifest("IAMUser", "ci", spec, uid="uid-2", generation=5)


def errors_of(parser: Parser, obj: dict[str, Any], limits: Limits | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        parser(obj) if limits is None else parser(obj, limits)
    return info.value.errors


def sized(document: dict[str, Any], n: int) -> dict[str, Any]:
    """`document` (one statement) padded through its Sid to exactly `n` counted characters."""
    statement = {"Sid": "", **document["Statement"][0]}
    pad = n - policy.size({**document, "Statement": [statement]})
    assert pad >= 0, "the unpadded document is already larger than asked"
    padded = {**document, "Statement": [{**statement, "Sid": "S" * pad}]}
    assert policy.size(padded) == n
    return padded


@dataclass(frozen=True)
class Kind:
    """One of the two custom resources: its parser, an object factory, its AWS name field."""

    parse: Parser
    obj: Callable[..., dict[str, Any]]
    name_field: str


# For the fields both kinds share.
KINDS = [
    pytest.param(Kind(parse_role, role_obj, "roleName"), id="role"),
    pytest.param(Kind(parse_user, user_obj, "userName"), id="user"),
]


# --- defaults -----------------------------------------------------------------------------------


def test_role_defaults() -> None:
    desired = parse_role(role_obj())
    assert desired.entity == Role(name="web", assume_role_policy=EC2_TRUST)
    role = desired.entity
    assert (role.path, role.description, role.max_session_duration) == ("/", "", 3600)
    assert (role.managed_policies, role.inline_policies, role.tags) == (frozenset(), {}, {})
    assert (role.permissions_boundary, role.instance_profiles) == (None, frozenset())


def test_user_defaults() -> None:
    desired = parse_user(user_obj())
    assert desired.entity == User(name="ci")
    user = desired.entity
    assert (user.path, user.groups, user.managed_policies) == ("/", frozenset(), frozenset())


@pytest.mark.parametrize(
    ("parser", "make", "expected"),
    [
        pytest.param(
            parse_role, role_obj, ObjectRef("IAMRole", "team-a", "web", "uid-1"), id="role"
        ),
        pytest.param(
            parse_user, user_obj, ObjectRef("IAMUser", "team-a", "ci", "uid-2"), id="user"
        ),
    ],
)
def test_object_ref_comes_from_metadata(parser: Parser, make: Any, expected: ObjectRef) -> None:
    assert parser(make()).ref == expected


@pytest.mark.parametrize(
    ("parser", "make", "expected"),
    [
        pytest.param(parse_role, role_obj, 3, id="role"),
        pytest.param(parse_user, user_obj, 5, id="user"),
    ],
)
def test_generation_comes_from_metadata(parser: Parser, make: Any, expected: int) -> None:
    assert parser(make()).generation == expected


@pytest.mark.parametrize("kind", KINDS)
def test_deletion_policy_and_adopt_default_to_delete_and_false(kind: Kind) -> None:
    desired = kind.parse(kind.obj())
    assert (desired.deletion_policy, desired.adopt) == ("Delete", False)


@pytest.mark.parametrize("kind", KINDS)
def test_deletion_policy_retain_and_adopt_true_are_read(kind: Kind) -> None:
    desired = kind.parse(kind.obj(deletionPolicy="Retain", adopt=True))
    assert (desired.deletion_policy, desired.adopt) == ("Retain", True)


@pytest.mark.parametrize("kind", KINDS)
def test_name_field_overrides_metadata_name(kind: Kind) -> None:
    assert kind.parse(kind.obj(**{kind.name_field: "team-a-web"})).aws_name == "team-a-web"


@pytest.mark.parametrize("kind", KINDS)
def test_empty_name_field_falls_back_to_metadata_name(kind: Kind) -> None:
    obj = kind.obj(**{kind.name_field: ""})
    assert kind.parse(obj).aws_name == obj["metadata"]["name"]


def test_instance_profile_true_keeps_a_same_named_profile() -> None:
    desired = parse_role(role_obj(roleName="team-a-web", instanceProfile=True))
    assert desired.entity.instance_profiles == frozenset({"team-a-web"})


def test_full_role_spec_is_read_into_every_field() -> None:
    desired = parse_role(
        role_obj(
            roleName="team-a-web",
            path="/apps/",
            description="Web tier",
            maxSessionDuration=7200,
            managedPolicies=[S3_READ],
            inlinePolicies={"read-bucket": READ_BUCKET},
            permissionsBoundary=BOUNDARY,
            tags={"team": "a"},
        )
    )
    assert desired.entity == Role(
        name="team-a-web",
        assume_role_policy=EC2_TRUST,
        path="/apps/",
        description="Web tier",
        max_session_duration=7200,
        managed_policies=frozenset({S3_READ}),
        inline_policies={"read-bucket": READ_BUCKET},
        permissions_boundary=BOUNDARY,
        tags={"team": "a"},
    )


def test_full_user_spec_is_read_into_every_field() -> None:
    desired = parse_user(
        user_obj(
            userName="team-a-ci",
            path="/ci/",
            managedPolicies=[S3_READ],
            inlinePolicies={"read-bucket": READ_BUCKET},
            permissionsBoundary=BOUNDARY,
            groups=["deployers"],
            tags={"team": "a"},
        )
    )
    assert desired.entity == User(
        name="team-a-ci",
        path="/ci/",
        managed_policies=frozenset({S3_READ}),
        inline_policies={"read-bucket": READ_BUCKET},
        permissions_boundary=BOUNDARY,
        groups=frozenset({"deployers"}),
        tags={"team": "a"},
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(role_obj(), Role, id="IAMRole"),
        pytest.param(user_obj(), User, id="IAMUser"),
    ],
)
def test_parse_dispatches_on_kind(obj: dict[str, Any], expected: type) -> None:
    assert isinstance(parse(obj).entity, expected)


def test_parse_rejects_another_kind() -> None:
    with pytest.raises(SpecError) as info:
        parse({**role_obj(), "kind": "IAMGroup"})
    assert info.value.errors == ["kind: expected one of IAMRole, IAMUser, IAMPolicy, got 'IAMGroup'"]


# --- ownership tags ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "make", "owner", "uid"),
    [
        pytest.param(parse_role, role_obj, "team-a/web", "uid-1", id="role"),
        pytest.param(parse_user, user_obj, "team-a/ci", "uid-2", id="user"),
    ],
)
def test_desired_tags_add_ownership_tags_to_spec_tags(
    parser: Parser, make: Any, owner: str, uid: str
) -> None:
    desired = parser(make(tags={"team": "a"}))
    assert desired.tags() == {"team": "a", OWNER_TAG: owner, UID_TAG: uid}
    assert desired.in_cluster("c-1").tags() == {
        "team": "a", OWNER_TAG: owner, UID_TAG: uid, CLUSTER_TAG: "c-1"
    }


def test_ownership_tags_are_not_part_of_the_entity_tags() -> None:
    assert parse_role(role_obj(tags={"team": "a"})).entity.tags == {"team": "a"}


# --- validation: valid values --------------------------------------------------------------------

VALID_SHARED = [
    pytest.param({"path": "/"}, "path", "/", id="path-root"),
    pytest.param({"path": "/apps/web/"}, "path", "/apps/web/", id="path-nested"),
    pytest.param({"path": "/!~/"}, "path", "/!~/", id="path-printable-ascii"),
    pytest.param({"path": "/" + "p" * 510 + "/"}, "path", "/" + "p" * 510 + "/", id="path-512"),
    pytest.param(
        {"tags": {f"k{i}": "v" for i in range(47)}},
        "tags",
        {f"k{i}": "v" for i in range(47)},
        id="tags-47-plus-3-ownership",
    ),
    pytest.param({"tags": {"k" * 128: "v"}}, "tags", {"k" * 128: "v"}, id="tag-key-128"),
    pytest.param({"tags": {"k": "v" * 256}}, "tags", {"k": "v" * 256}, id="tag-value-256"),
    pytest.param({"tags": {"k": ""}}, "tags", {"k": ""}, id="tag-value-empty"),
    pytest.param(
        {"tags": {"cost center": "a_b.c:d/e=f+g-h@i"}},
        "tags",
        {"cost center": "a_b.c:d/e=f+g-h@i"},
        id="tag-punctuation-and-space",
    ),
    pytest.param(
        {"tags": {"équipe": "données 東京"}}, "tags", {"équipe": "données 東京"}, id="tag-unicode"
    ),
    pytest.param(
        {"tags": {"awsome": "x"}}, "tags", {"awsome": "x"}, id="tag-key-aws-without-colon"
    ),
    pytest.param(
        {"managedPolicies": [S3_READ]},
        "managed_policies",
        frozenset({S3_READ}),
        id="managed-aws",
    ),
    pytest.param(
        {"managedPolicies": ["arn:aws:iam::123456789012:policy/team/read"]},
        "managed_policies",
        frozenset({"arn:aws:iam::123456789012:policy/team/read"}),
        id="managed-customer-with-path",
    ),
    pytest.param(
        {"managedPolicies": ["arn:aws-cn:iam::123456789012:policy/x"]},
        "managed_policies",
        frozenset({"arn:aws-cn:iam::123456789012:policy/x"}),
        id="managed-china-partition",
    ),
    pytest.param(
        {"managedPolicies": ["arn:aws-us-gov:iam::aws:policy/x"]},
        "managed_policies",
        frozenset({"arn:aws-us-gov:iam::aws:policy/x"}),
        id="managed-govcloud-partition",
    ),
    pytest.param(
        {"managedPolicies": [f"arn:aws:iam::123456789012:policy/p{i}" for i in range(10)]},
        "managed_policies",
        frozenset(f"arn:aws:iam::123456789012:policy/p{i}" for i in range(10)),
        id="managed-10",
    ),
    pytest.param(
        {"permissionsBoundary": BOUNDARY}, "permissions_boundary", BOUNDARY, id="boundary"
    ),
    pytest.param({"permissionsBoundary": ""}, "permissions_boundary", None, id="boundary-empty"),
    pytest.param(
        {"inlinePolicies": {"a+=,.@_-Z9": READ_BUCKET}},
        "inline_policies",
        {"a+=,.@_-Z9": READ_BUCKET},
        id="inline-name-all-characters",
    ),
    pytest.param(
        {"inlinePolicies": {"p" * 128: READ_BUCKET}},
        "inline_policies",
        {"p" * 128: READ_BUCKET},
        id="inline-name-128",
    ),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("spec", "attribute", "expected"), VALID_SHARED)
def test_valid_shared_field(
    kind: Kind, spec: dict[str, Any], attribute: str, expected: Any
) -> None:
    assert getattr(kind.parse(kind.obj(**spec)).entity, attribute) == expected


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("a", id="one-character"),
        pytest.param("n" * 64, id="64-characters"),
        pytest.param("Team_A-web.ec2+x=y,z@w", id="all-allowed-characters"),
    ],
)
def test_valid_name(kind: Kind, name: str) -> None:
    assert kind.parse(kind.obj(**{kind.name_field: name})).aws_name == name


VALID_ROLE = [
    pytest.param({"maxSessionDuration": 3600}, "max_session_duration", 3600, id="session-3600"),
    pytest.param({"maxSessionDuration": 43200}, "max_session_duration", 43200, id="session-43200"),
    pytest.param({"description": "d" * 1000}, "description", "d" * 1000, id="description-1000"),
    pytest.param(
        {"description": "Café tier\tone\r\nline two ¡¿ÿ"},
        "description",
        "Café tier\tone\r\nline two ¡¿ÿ",
        id="description-latin1-tab-newline",
    ),
    pytest.param({"instanceProfile": False}, "instance_profiles", frozenset(), id="profile-false"),
]


@pytest.mark.parametrize(("spec", "attribute", "expected"), VALID_ROLE)
def test_valid_role_field(spec: dict[str, Any], attribute: str, expected: Any) -> None:
    assert getattr(parse_role(role_obj(**spec)).entity, attribute) == expected


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param(["deployers"], id="one"),
        pytest.param(["g" * 128], id="name-128"),
        pytest.param([f"g{i}" for i in range(10)], id="ten"),
    ],
)
def test_valid_groups(groups: list[str]) -> None:
    assert parse_user(user_obj(groups=groups)).entity.groups == frozenset(groups)


# --- validation: invalid values, one exact message each ------------------------------------------

LONG_NAME = "n" * 65
INVALID_NAME = [
    pytest.param(
        LONG_NAME, f"spec.{{field}}: {LONG_NAME!r} is 65 characters, the maximum is 64", id="65"
    ),
    pytest.param(
        "web app",
        "spec.{field}: 'web app' may only contain ASCII letters, digits and +=,.@_-",
        id="space",
    ),
    pytest.param(
        "web/app",
        "spec.{field}: 'web/app' may only contain ASCII letters, digits and +=,.@_-",
        id="slash",
    ),
    pytest.param(
        "wéb", "spec.{field}: 'wéb' may only contain ASCII letters, digits and +=,.@_-", id="accent"
    ),
    pytest.param(
        "web\n",
        "spec.{field}: 'web\\n' may only contain ASCII letters, digits and +=,.@_-",
        id="trailing-newline",
    ),
    pytest.param(7, "spec.{field}: must be a string, got int", id="not-a-string"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "expected"), INVALID_NAME)
def test_invalid_name(kind: Kind, name: Any, expected: str) -> None:
    assert errors_of(kind.parse, kind.obj(**{kind.name_field: name})) == [
        expected.format(field=kind.name_field)
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_too_long_metadata_name_says_to_set_the_name_field(kind: Kind) -> None:
    obj = kind.obj()
    obj["metadata"]["name"] = LONG_NAME
    assert errors_of(kind.parse, obj) == [
        f"spec.{kind.name_field}: {LONG_NAME!r} is 65 characters, the maximum is 64 "
        f"(defaulted from metadata.name; set spec.{kind.name_field})"
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_missing_metadata_name_and_name_field_is_an_error(kind: Kind) -> None:
    obj = kind.obj()
    del obj["metadata"]["name"]
    assert errors_of(kind.parse, obj) == [
        f"spec.{kind.name_field}: required (metadata.name is empty)"
    ]


PATH_RULE = (
    "must be / or start and end with / with printable ASCII and no spaces in between (e.g. /apps/)"
)
TAG_RULE = "may only contain letters, digits, spaces and _.:/=+-@"
ARN_SHAPE = "(arn:aws:iam::<account id or aws>:policy/<name>)"
POLICY_NAME_RULE = "policy name must be 1-128 ASCII letters, digits and +=,.@_-"
FORTY_EIGHT_TAGS = {f"k{i}": "v" for i in range(48)}
TWENTY_ONE_ARNS = [f"arn:aws:iam::123456789012:policy/p{i}" for i in range(21)]

INVALID_SHARED = [
    pytest.param({"path": "apps/"}, f"spec.path: 'apps/' {PATH_RULE}", id="path-no-leading-slash"),
    pytest.param({"path": "/apps"}, f"spec.path: '/apps' {PATH_RULE}", id="path-no-trailing-slash"),
    pytest.param({"path": "//"}, f"spec.path: '//' {PATH_RULE}", id="path-empty-segment"),
    pytest.param({"path": "/a b/"}, f"spec.path: '/a b/' {PATH_RULE}", id="path-space"),
    pytest.param({"path": "/é/"}, f"spec.path: '/é/' {PATH_RULE}", id="path-non-ascii"),
    pytest.param({"path": ""}, f"spec.path: '' {PATH_RULE}", id="path-empty"),
    pytest.param({"path": "/apps/\n"}, f"spec.path: '/apps/\\n' {PATH_RULE}", id="path-newline"),
    pytest.param(
        {"path": "/" + "p" * 511 + "/"}, "spec.path: 513 characters exceeds 512", id="path-513"
    ),
    pytest.param({"path": 5}, "spec.path: must be a string, got int", id="path-not-a-string"),
    pytest.param(
        {"tags": FORTY_EIGHT_TAGS},
        "spec.tags: 48 tags exceeds the limit 47 (IAM allows 50; Rolekeeper uses 3 for ownership)",
        id="tags-48-plus-3-ownership",
    ),
    pytest.param(
        {"tags": {"k" * 129: "v"}},
        f"spec.tags.{'k' * 129}: key must be 1-128 characters",
        id="tag-key-129",
    ),
    pytest.param(
        {"tags": {"": "v"}}, "spec.tags.: key must be 1-128 characters", id="tag-key-empty"
    ),
    pytest.param(
        {"tags": {"k": "v" * 257}},
        "spec.tags.k: value is 257 characters, the maximum is 256",
        id="tag-value-257",
    ),
    pytest.param(
        {"tags": {"aws:team": "a"}},
        "spec.tags.aws:team: keys starting with aws: are reserved by AWS",
        id="tag-key-aws-prefix",
    ),
    pytest.param(
        {"tags": {"AWS:team": "a"}},
        "spec.tags.AWS:team: keys starting with aws: are reserved by AWS",
        id="tag-key-aws-prefix-uppercase",
    ),
    pytest.param(
        {"tags": {"rolekeeper.dev/owner": "team-b/x"}},
        "spec.tags.rolekeeper.dev/owner: keys starting with rolekeeper.dev/ are set by Rolekeeper",
        id="tag-key-reserved-prefix",
    ),
    pytest.param(
        {"tags": {"Rolekeeper.dev/Owner": "team-b/x"}},
        "spec.tags.Rolekeeper.dev/Owner: keys starting with rolekeeper.dev/ are set by Rolekeeper",
        id="tag-key-reserved-prefix-other-case",
    ),
    pytest.param(
        {"tags": {"team": "a", "Team": "b"}},
        "spec.tags.Team: same key as 'team' (IAM ignores case)",
        id="tag-keys-differing-in-case",
    ),
    pytest.param({"tags": {"a*b": "v"}}, f"spec.tags.a*b: key {TAG_RULE}", id="tag-key-charset"),
    pytest.param({"tags": {"k": "a;b"}}, f"spec.tags.k: value {TAG_RULE}", id="tag-value-charset"),
    pytest.param(
        {"tags": {"k": "line\n"}}, f"spec.tags.k: value {TAG_RULE}", id="tag-value-newline"
    ),
    pytest.param({"tags": {"k": "a\tb"}}, f"spec.tags.k: value {TAG_RULE}", id="tag-value-tab"),
    pytest.param(
        {"tags": {"k": 1}}, "spec.tags.k: value must be a string, got int", id="tag-value-number"
    ),
    pytest.param(
        {"tags": {"k": True}},
        "spec.tags.k: value must be a string, got bool",
        id="tag-value-boolean",
    ),
    pytest.param(
        {"tags": {2024: "v"}},
        "spec.tags.2024: key must be a string, got int (quote it)",
        id="tag-key-number",
    ),
    pytest.param(
        {"tags": ["team=a"]}, "spec.tags: must be a map of string to string", id="tags-a-list"
    ),
    pytest.param(
        {"managedPolicies": ["AmazonS3ReadOnlyAccess"]},
        f"spec.managedPolicies[0]: 'AmazonS3ReadOnlyAccess' is not a policy ARN {ARN_SHAPE}",
        id="managed-bare-name",
    ),
    pytest.param(
        {"managedPolicies": [S3_READ, "arn:aws:iam::12345:policy/x"]},
        f"spec.managedPolicies[1]: 'arn:aws:iam::12345:policy/x' is not a policy ARN {ARN_SHAPE}",
        id="managed-short-account-id",
    ),
    pytest.param(
        {"managedPolicies": ["arn:aws:iam::123456789012:role/x"]},
        f"spec.managedPolicies[0]: 'arn:aws:iam::123456789012:role/x' is not a policy ARN "
        f"{ARN_SHAPE}",
        id="managed-role-arn",
    ),
    pytest.param(
        {"managedPolicies": ["arn:aws:s3:::bucket"]},
        f"spec.managedPolicies[0]: 'arn:aws:s3:::bucket' is not a policy ARN {ARN_SHAPE}",
        id="managed-other-service",
    ),
    pytest.param(
        {"managedPolicies": [S3_READ + "\n"]},
        f"spec.managedPolicies[0]: {S3_READ + chr(10)!r} is not a policy ARN {ARN_SHAPE}",
        id="managed-trailing-newline",
    ),
    pytest.param(
        {"managedPolicies": TWENTY_ONE_ARNS},
        "spec.managedPolicies: 21 policies exceeds the limit 10",
        id="managed-21",
    ),
    pytest.param(
        {"managedPolicies": [S3_READ, S3_READ]},
        f"spec.managedPolicies: {S3_READ!r} is listed more than once",
        id="managed-duplicate",
    ),
    pytest.param(
        {"managedPolicies": S3_READ},
        "spec.managedPolicies: must be a list of strings",
        id="managed-a-string",
    ),
    pytest.param(
        {"managedPolicies": [{"arn": S3_READ}]},
        "spec.managedPolicies: must be a list of strings",
        id="managed-list-of-objects",
    ),
    pytest.param(
        {"permissionsBoundary": "team-boundary"},
        f"spec.permissionsBoundary: 'team-boundary' is not a policy ARN {ARN_SHAPE}",
        id="boundary-not-an-arn",
    ),
    pytest.param(
        {"permissionsBoundary": [BOUNDARY]},
        "spec.permissionsBoundary: must be a string, got list",
        id="boundary-a-list",
    ),
    pytest.param(
        {"inlinePolicies": {"write logs": READ_BUCKET}},
        f"spec.inlinePolicies.write logs: {POLICY_NAME_RULE}",
        id="inline-name-space",
    ),
    pytest.param(
        {"inlinePolicies": {"p" * 129: READ_BUCKET}},
        f"spec.inlinePolicies.{'p' * 129}: {POLICY_NAME_RULE}",
        id="inline-name-129",
    ),
    pytest.param(
        {"inlinePolicies": {"": READ_BUCKET}},
        f"spec.inlinePolicies.: {POLICY_NAME_RULE}",
        id="inline-name-empty",
    ),
    pytest.param(
        {"inlinePolicies": [READ_BUCKET]},
        "spec.inlinePolicies: must be a map of policy name to policy document",
        id="inline-a-list",
    ),
    pytest.param(
        {"inlinePolicies": {"read": json.dumps(READ_BUCKET)}},
        "spec.inlinePolicies.read: must be a policy document object, got str "
        "(write the document as YAML, not as a JSON string)",
        id="inline-document-a-json-string",
    ),
    pytest.param(
        {"deletionPolicy": "delete"},
        "spec.deletionPolicy: must be Delete or Retain, got 'delete'",
        id="deletion-policy-lowercase",
    ),
    pytest.param(
        {"adopt": "true"}, "spec.adopt: must be true or false, got 'true'", id="adopt-a-string"
    ),
    pytest.param({"adpot": True}, "spec.adpot: unknown field", id="unknown-field-typo"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("spec", "expected"), INVALID_SHARED)
def test_invalid_shared_field(kind: Kind, spec: dict[str, Any], expected: str) -> None:
    assert errors_of(kind.parse, kind.obj(**spec)) == [expected]


INVALID_ROLE = [
    pytest.param(
        {"maxSessionDuration": 100},
        "spec.maxSessionDuration: 100 is below the minimum 3600",
        id="session-100",
    ),
    pytest.param(
        {"maxSessionDuration": 3599},
        "spec.maxSessionDuration: 3599 is below the minimum 3600",
        id="session-3599",
    ),
    pytest.param(
        {"maxSessionDuration": 43201},
        "spec.maxSessionDuration: 43201 is above the maximum 43200",
        id="session-43201",
    ),
    pytest.param(
        {"maxSessionDuration": "3600"},
        "spec.maxSessionDuration: must be an integer, got '3600'",
        id="session-a-string",
    ),
    pytest.param(
        {"maxSessionDuration": 3600.0},
        "spec.maxSessionDuration: must be an integer, got 3600.0",
        id="session-a-float",
    ),
    pytest.param(
        {"maxSessionDuration": True},
        "spec.maxSessionDuration: must be an integer, got True",
        id="session-a-boolean",
    ),
    pytest.param(
        {"description": "d" * 1001},
        "spec.description: 1001 characters exceeds 1000",
        id="description-1001",
    ),
    pytest.param(
        {"description": "launch 🚀"},
        "spec.description: character '🚀' is not allowed (IAM allows tab, newline and the "
        "characters U+0020-U+007E and U+00A1-U+00FF)",
        id="description-emoji",
    ),
    pytest.param(
        {"description": "bell\x07"},
        "spec.description: character '\\x07' is not allowed (IAM allows tab, newline and the "
        "characters U+0020-U+007E and U+00A1-U+00FF)",
        id="description-control-character",
    ),
    pytest.param(
        {"description": ["Web"]},
        "spec.description: must be a string, got list",
        id="description-a-list",
    ),
    pytest.param(
        {"instanceProfile": "yes"},
        "spec.instanceProfile: must be true or false, got 'yes'",
        id="instance-profile-a-string",
    ),
    pytest.param(
        {"assumeRolePolicy": json.dumps(EC2_TRUST)},
        "spec.assumeRolePolicy: must be a policy document object, got str "
        "(write the document as YAML, not as a JSON string)",
        id="trust-a-json-string",
    ),
    pytest.param({"groups": ["deployers"]}, "spec.groups: unknown field", id="groups-on-a-role"),
]


@pytest.mark.parametrize(("spec", "expected"), INVALID_ROLE)
def test_invalid_role_field(spec: dict[str, Any], expected: str) -> None:
    assert errors_of(parse_role, role_obj(**spec)) == [expected]


def test_role_without_trust_policy_is_an_error() -> None:
    obj = role_obj()
    del obj["spec"]["assumeRolePolicy"]
    assert errors_of(parse_role, obj) == ["spec.assumeRolePolicy: required (or spec.serviceAccounts)"]


INVALID_USER = [
    pytest.param(
        {"groups": [f"g{i}" for i in range(11)]},
        "spec.groups: 11 groups exceeds the limit 10",
        id="groups-11",
    ),
    pytest.param(
        {"groups": ["dev ops"]},
        "spec.groups[0]: 'dev ops' is not a group name (1-128 ASCII letters, digits and +=,.@_-)",
        id="group-name-space",
    ),
    pytest.param(
        {"groups": ["ok", "g" * 129]},
        f"spec.groups[1]: {'g' * 129!r} is not a group name "
        "(1-128 ASCII letters, digits and +=,.@_-)",
        id="group-name-129",
    ),
    pytest.param(
        {"groups": ["deployers", "deployers"]},
        "spec.groups: 'deployers' is listed more than once",
        id="group-duplicate",
    ),
    pytest.param(
        {"groups": "deployers"}, "spec.groups: must be a list of strings", id="groups-a-string"
    ),
    pytest.param(
        {"assumeRolePolicy": EC2_TRUST}, "spec.assumeRolePolicy: unknown field", id="trust-on-a-user"
    ),
    pytest.param(
        {"maxSessionDuration": 3600},
        "spec.maxSessionDuration: unknown field",
        id="session-on-a-user",
    ),
    pytest.param(
        {"description": "x"}, "spec.description: unknown field", id="description-on-a-user"
    ),
]


@pytest.mark.parametrize(("spec", "expected"), INVALID_USER)
def test_invalid_user_field(spec: dict[str, Any], expected: str) -> None:
    assert errors_of(parse_user, user_obj(**spec)) == [expected]


@pytest.mark.parametrize("kind", KINDS)
def test_spec_that_is_not_an_object_is_an_error(kind: Kind) -> None:
    obj = kind.obj()
    obj["spec"] = ["not", "an", "object"]
    assert "spec: must be an object, got list" in errors_of(kind.parse, obj)


def test_all_broken_rules_are_reported_together() -> None:
    errors = errors_of(
        parse_role, role_obj(path="apps", maxSessionDuration=100, tags={"aws:x": "y"})
    )
    assert sorted(e.split(": ")[0] for e in errors) == [
        "spec.maxSessionDuration",
        "spec.path",
        "spec.tags.aws:x",
    ]


def test_spec_error_text_joins_every_message() -> None:
    with pytest.raises(SpecError) as info:
        parse_user(user_obj(path="apps", tags={"aws:x": "y"}))
    assert str(info.value) == "; ".join(info.value.errors)
    assert len(info.value.errors) == 2


# --- policy sizes ---------------------------------------------------------------------------------


def test_trust_policy_at_the_limit_is_accepted() -> None:
    trust = sized(EC2_TRUST, 2048)
    assert parse_role(role_obj(assumeRolePolicy=trust)).entity.assume_role_policy == trust


def test_trust_policy_over_the_limit_is_an_error() -> None:
    assert errors_of(parse_role, role_obj(assumeRolePolicy=sized(EC2_TRUST, 2049))) == [
        "spec.assumeRolePolicy: 2049 characters exceeds the limit 2048 (whitespace not counted)"
    ]


def test_trust_policy_limit_is_configurable() -> None:
    limits = Limits(trust_policy_size=4096)
    trust = sized(EC2_TRUST, 4096)
    assert parse_role(role_obj(assumeRolePolicy=trust), limits).entity.assume_role_policy == trust


def test_raised_trust_policy_limit_still_applies() -> None:
    limits = Limits(trust_policy_size=4096)
    assert errors_of(parse_role, role_obj(assumeRolePolicy=sized(EC2_TRUST, 4097)), limits) == [
        "spec.assumeRolePolicy: 4097 characters exceeds the limit 4096 (whitespace not counted)"
    ]


def test_whitespace_is_not_counted_toward_policy_size() -> None:
    trust = sized(EC2_TRUST, 2048)
    assert len(json.dumps(trust, indent=2)) > 2048  # as a user would format it
    assert parse_role(role_obj(assumeRolePolicy=trust)).entity.assume_role_policy == trust


@pytest.mark.parametrize(
    ("parser", "make", "sizes", "limit"),
    [
        pytest.param(parse_role, role_obj, (5120, 5121), 10240, id="role"),
        pytest.param(parse_user, user_obj, (1024, 1025), 2048, id="user"),
    ],
)
def test_inline_policies_over_the_total_limit_are_an_error(
    parser: Parser, make: Any, sizes: tuple[int, int], limit: int
) -> None:
    docs = {"a": sized(READ_BUCKET, sizes[0]), "b": sized(READ_BUCKET, sizes[1])}
    assert errors_of(parser, make(inlinePolicies=docs)) == [
        f"spec.inlinePolicies: {limit + 1} characters in total exceeds the limit {limit} "
        "(whitespace not counted); move some statements to a managed policy"
    ]


@pytest.mark.parametrize(
    ("parser", "make", "size"),
    [
        pytest.param(parse_role, role_obj, 5120, id="role-10240"),
        pytest.param(parse_user, user_obj, 1024, id="user-2048"),
    ],
)
def test_inline_policies_at_the_total_limit_are_accepted(
    parser: Parser, make: Any, size: int
) -> None:
    docs = {"a": sized(READ_BUCKET, size), "b": sized(READ_BUCKET, size)}
    assert parser(make(inlinePolicies=docs)).entity.inline_policies == docs


def test_managed_policy_quota_defaults_to_awss_default_of_10() -> None:
    arns = [f"arn:aws:iam::123456789012:policy/p{i}" for i in range(11)]
    assert errors_of(parse_role, role_obj(managedPolicies=arns)) == [
        "spec.managedPolicies: 11 policies exceeds the limit 10"
    ]


def test_managed_policy_quota_is_configurable_up_to_the_hard_limit() -> None:
    arns = [f"arn:aws:iam::123456789012:policy/p{i}" for i in range(20)]
    desired = parse_role(role_obj(managedPolicies=arns), Limits(managed_policy_count=20))
    assert len(desired.entity.managed_policies) == 20


# --- policy grammar (the rules live in controller.policy; here: they are applied, per field) -----

STATEMENT = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
TRUST_STATEMENT = EC2_TRUST["Statement"][0]

GRAMMAR = [
    pytest.param(
        {"assumeRolePolicy": {"Statement": [{**TRUST_STATEMENT, "Resource": "*"}]}},
        "spec.assumeRolePolicy.Statement[0]: ",
        "Resource",
        id="trust-with-resource",
    ),
    pytest.param(
        {"assumeRolePolicy": {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}},
        "spec.assumeRolePolicy.Statement[0]: ",
        "Principal",
        id="trust-without-principal",
    ),
    pytest.param(
        {"assumeRolePolicy": {"Statement": [{**TRUST_STATEMENT, "Effect": "allow"}]}},
        "spec.assumeRolePolicy.Statement[0].Effect: ",
        "Allow or Deny",
        id="trust-effect-lowercase",
    ),
    pytest.param(
        {"assumeRolePolicy": {"Version": "2012-10-17"}},
        "spec.assumeRolePolicy",
        "Statement",
        id="trust-without-statement",
    ),
    pytest.param(
        {"inlinePolicies": {"p": {"Statement": [{**STATEMENT, "Principal": "*"}]}}},
        "spec.inlinePolicies.p.Statement[0]: ",
        "Principal",
        id="identity-with-principal",
    ),
    pytest.param(
        {"inlinePolicies": {"p": {"Statement": [{"Effect": "Allow", "Action": "s3:*"}]}}},
        "spec.inlinePolicies.p.Statement[0]: ",
        "Resource",
        id="identity-without-resource",
    ),
    pytest.param(
        {"inlinePolicies": {"p": {"Statement": [{"Effect": "Allow", "Resource": "*"}]}}},
        "spec.inlinePolicies.p.Statement[0]: ",
        "Action",
        id="identity-without-action",
    ),
    pytest.param(
        {"inlinePolicies": {"p": {"Statement": [{**STATEMENT, "Effect": "Permit"}]}}},
        "spec.inlinePolicies.p.Statement[0].Effect: ",
        "Allow or Deny",
        id="identity-unknown-effect",
    ),
    pytest.param(
        {"inlinePolicies": {"p": {"Version": "2013-01-01", "Statement": [STATEMENT]}}},
        "spec.inlinePolicies.p.Version: ",
        "2012-10-17",
        id="identity-unknown-version",
    ),
]


@pytest.mark.parametrize(("spec", "field", "rule"), GRAMMAR)
def test_policy_grammar_error_names_the_statement_field(
    spec: dict[str, Any], field: str, rule: str
) -> None:
    [error] = errors_of(parse_role, role_obj(**spec))
    assert error.startswith(field)
    assert rule in error


def test_policy_grammar_is_checked_for_user_inline_policies() -> None:
    spec = {"inlinePolicies": {"p": {"Statement": [{**STATEMENT, "Principal": "*"}]}}}
    [error] = errors_of(parse_user, user_obj(**spec))
    assert error.startswith("spec.inlinePolicies.p.Statement[0]: ")


@pytest.mark.parametrize(
    "trust",
    [
        pytest.param(EC2_TRUST, id="service"),
        pytest.param(
            {"Statement": {**TRUST_STATEMENT, "Principal": {"AWS": "123456789012"}}},
            id="single-statement-bare-account",
        ),
        pytest.param(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {
                            "Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks."
                            "us-east-1.amazonaws.com/id/ABC"
                        },
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": (
                                    "system:serviceaccount:team-a:web"
                                )
                            }
                        },
                    }
                ]
            },
            id="irsa",
        ),
    ],
)
def test_valid_trust_policies_are_accepted(trust: dict[str, Any]) -> None:
    assert parse_role(role_obj(assumeRolePolicy=trust)).entity.assume_role_policy == trust
