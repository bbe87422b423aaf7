"""The operator's IAM policy generated from guardrails (controller.core.awspolicy).

moto never evaluates conditions, so the generated documents' content is proven here, by table.

Covers:
- every generated document (no guardrails, one, several, warn, users off, no instance profiles,
  a pinned cluster id, another partition) passes policy.validate and fits 6,144 characters;
- with no guardrails it is at least as strict as docs/aws-policy.json: no action it does not
  grant, every condition key it requires still required, its Deny kept;
- a required boundary: iam:PermissionsBoundary on CreateRole/CreateUser and
  Put*PermissionsBoundary, no Delete*PermissionsBoundary allowed and an explicit Deny;
- managed policies: iam:PolicyARN on Attach*Policy from the allowed list ({namespace} -> *),
  a Deny for the denied ones, no attachment at all for an empty allowed list;
- resource ARNs from names and paths; PassRole limited to EC2 on those roles;
- ownership tags incl. rolekeeper.dev/cluster on requests and resources;
- users disallowed: no user write at all; groups limited to the allowed ones;
- several guardrails: the loosest wins (union of allowed, intersection of denied);
- `problems` reports an oversize policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.core import policy
from controller.core.awspolicy import MANAGED_POLICY_MAX_SIZE, operator_policy, problems, queue_arn
from controller.core.guardrails import Guardrail, parse_guardrail

DOC_POLICY: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "aws-policy.json").read_text()
)
ACCOUNT = "111122223333"
BOUNDARY = "arn:aws:iam::*:policy/tenant-boundary"
S3_READ = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def guardrail(name: str = "tenants", **spec: Any) -> Guardrail:
    return parse_guardrail({"metadata": {"name": name}, "spec": {"namespaceSelector": {}, **spec}})


TENANTS = guardrail(
    roles={"names": ["{namespace}-*"], "paths": ["/tenants/{namespace}/"]},
    users={"names": ["{namespace}-*"], "paths": ["/tenants/{namespace}/"],
           "groups": ["{namespace}-readers"]},
    permissionsBoundary={"required": [BOUNDARY]},
    managedPolicies={"allowed": [S3_READ, "arn:aws:iam::*:policy/tenants/{namespace}/*"],
                     "denied": [ADMIN]},
)
NO_USERS = guardrail("no-users", users={"allowed": False})
WARN = guardrail("warn", enforcement="warn", permissionsBoundary={"required": [BOUNDARY]})


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(doc: dict[str, Any], effect: str = "Allow") -> list[dict[str, Any]]:
    return [s for s in doc["Statement"] if s["Effect"] == effect]


def granting(doc: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in statements(doc) if action in _list(s.get("Action", []))]


def allowed_actions(doc: dict[str, Any]) -> set[str]:
    return {a for s in statements(doc) for a in _list(s["Action"])}


def condition_keys(statement: dict[str, Any]) -> set[str]:
    return {k for block in statement.get("Condition", {}).values() for k in block}


def condition(statement: dict[str, Any], operator: str, key: str) -> list[str]:
    return _list(statement["Condition"][operator][key])


SCENARIOS = {
    "none": lambda: operator_policy([]),
    "tenants": lambda: operator_policy([TENANTS], account_id=ACCOUNT),
    "tenants-cluster": lambda: operator_policy([TENANTS], cluster_id="c-1"),
    "no-users": lambda: operator_policy([NO_USERS]),
    "no-instance-profiles": lambda: operator_policy([TENANTS], instance_profiles=False),
    "several": lambda: operator_policy([TENANTS, NO_USERS, guardrail("b", roles={"names": ["b-*"]})]),
    "warn": lambda: operator_policy([TENANTS, WARN]),
    "china": lambda: operator_policy([TENANTS], partition="aws-cn"),
    "no-attachments": lambda: operator_policy([guardrail(managedPolicies={"allowed": []})]),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_generated_policy_is_valid_and_fits(scenario: str) -> None:
    doc = SCENARIOS[scenario]()
    assert policy.validate(doc, "identity", "x") == []
    assert policy.size(doc) <= MANAGED_POLICY_MAX_SIZE
    assert problems(doc) == []


def test_without_guardrails_no_action_beyond_the_documented_policy() -> None:
    assert allowed_actions(operator_policy([])) <= allowed_actions(DOC_POLICY)


def test_without_guardrails_every_documented_condition_is_kept() -> None:
    generated = operator_policy([])
    loosened = [
        (action, sorted(condition_keys(s)))
        for s in statements(generated)
        for action in _list(s["Action"])
        if not any(condition_keys(d) <= condition_keys(s) for d in granting(DOC_POLICY, action))
    ]
    assert loosened == []


def test_without_guardrails_the_operators_own_role_is_still_denied() -> None:
    (deny,) = [s for s in statements(operator_policy([]), "Deny") if "NotAction" in s]
    assert "arn:aws:iam::*:role/rolekeeper-operator" in deny["Resource"]
    assert deny["NotAction"] == ["iam:Get*", "iam:List*"]


@pytest.mark.parametrize(
    "action", ["iam:CreateRole", "iam:CreateUser", "iam:PutRolePermissionsBoundary",
               "iam:PutUserPermissionsBoundary"],
)
def test_required_boundary_conditions_creates_and_boundary_changes(action: str) -> None:
    (statement,) = granting(operator_policy([TENANTS]), action)
    assert condition(statement, "ArnLike", "iam:PermissionsBoundary") == [BOUNDARY]


@pytest.mark.parametrize(
    "action", ["iam:DeleteRolePermissionsBoundary", "iam:DeleteUserPermissionsBoundary"]
)
def test_required_boundary_can_never_be_deleted(action: str) -> None:
    doc = operator_policy([TENANTS])
    assert granting(doc, action) == []
    assert any(action in _list(s.get("Action", [])) for s in statements(doc, "Deny"))


def test_without_a_required_boundary_it_may_be_deleted() -> None:
    doc = operator_policy([NO_USERS])
    assert granting(doc, "iam:DeleteRolePermissionsBoundary")
    assert "iam:PermissionsBoundary" not in condition_keys(granting(doc, "iam:CreateRole")[0])


@pytest.mark.parametrize("action", ["iam:AttachRolePolicy", "iam:AttachUserPolicy"])
def test_attachments_only_of_allowed_policies(action: str) -> None:
    (statement,) = granting(operator_policy([TENANTS]), action)
    assert condition(statement, "ArnLike", "iam:PolicyARN") == [
        "arn:aws:iam::*:policy/tenants/*/*", S3_READ,
    ]


def test_denied_policies_are_denied_explicitly() -> None:
    (deny,) = [s for s in statements(operator_policy([TENANTS]), "Deny")
               if "iam:AttachRolePolicy" in _list(s.get("Action", []))]
    assert condition(deny, "ArnLike", "iam:PolicyARN") == [ADMIN]


def test_an_empty_allowed_list_allows_no_attachment() -> None:
    doc = SCENARIOS["no-attachments"]()
    assert granting(doc, "iam:AttachRolePolicy") == []


@pytest.mark.parametrize(
    ("action", "resources"),
    [
        ("iam:CreateRole", [f"arn:aws:iam::{ACCOUNT}:role/tenants/*/*-*",
                            f"arn:aws:iam::{ACCOUNT}:user/tenants/*/*-*"]),
        ("iam:UpdateAssumeRolePolicy", [f"arn:aws:iam::{ACCOUNT}:role/tenants/*/*-*"]),
        ("iam:DeleteInstanceProfile", [f"arn:aws:iam::{ACCOUNT}:instance-profile/tenants/*/*-*"]),
        ("iam:PassRole", [f"arn:aws:iam::{ACCOUNT}:role/tenants/*/*-*"]),
        ("iam:AddUserToGroup", [f"arn:aws:iam::{ACCOUNT}:group/*-readers",
                                f"arn:aws:iam::{ACCOUNT}:group/*/*-readers"]),
    ],
)
def test_resources_follow_names_and_paths(action: str, resources: list[str]) -> None:
    (statement,) = granting(operator_policy([TENANTS], account_id=ACCOUNT), action)
    assert _list(statement["Resource"]) == resources


def test_a_name_without_a_path_rule_never_becomes_a_suffix_match() -> None:
    (statement,) = granting(operator_policy([guardrail("b", roles={"names": ["b-*"]})]),
                            "iam:DeleteRole")
    assert _list(statement["Resource"]) == ["arn:aws:iam::*:role/*/b-*", "arn:aws:iam::*:role/b-*"]


def test_passrole_only_to_ec2() -> None:
    (statement,) = granting(operator_policy([TENANTS]), "iam:PassRole")
    assert condition(statement, "StringEqualsIfExists", "iam:PassedToService") == [
        "ec2.amazonaws.com"
    ]


def test_no_instance_profiles_drops_passrole() -> None:
    doc = SCENARIOS["no-instance-profiles"]()
    writes = {a for a in allowed_actions(doc) if not a.startswith(("iam:Get", "iam:List"))}
    assert not any("InstanceProfile" in a or a == "iam:PassRole" for a in writes)


@pytest.mark.parametrize(
    ("sid", "keys"),
    [
        ("CreateOnlyWithBoundaryAndOwnershipTags",
         {"aws:RequestTag/rolekeeper.dev/owner", "aws:RequestTag/rolekeeper.dev/uid",
          "aws:RequestTag/rolekeeper.dev/cluster", "iam:PermissionsBoundary"}),
        ("TagOnlyWithOwnershipTags",
         {"aws:RequestTag/rolekeeper.dev/owner", "aws:RequestTag/rolekeeper.dev/uid",
          "aws:RequestTag/rolekeeper.dev/cluster"}),
        ("OwnedRoles",
         {"aws:ResourceTag/rolekeeper.dev/owner", "aws:ResourceTag/rolekeeper.dev/cluster"}),
        ("OwnedUsers",
         {"aws:ResourceTag/rolekeeper.dev/owner", "aws:ResourceTag/rolekeeper.dev/cluster"}),
    ],
)
def test_ownership_tags_are_required(sid: str, keys: set[str]) -> None:
    (statement,) = [s for s in operator_policy([TENANTS])["Statement"] if s["Sid"] == sid]
    assert condition_keys(statement) == keys


def test_a_pinned_cluster_id_must_match_exactly() -> None:
    (statement,) = granting(SCENARIOS["tenants-cluster"](), "iam:DeleteRole")
    assert condition(statement, "StringEquals", "aws:ResourceTag/rolekeeper.dev/cluster") == ["c-1"]


def test_users_disallowed_means_no_user_writes() -> None:
    writes = {a for a in allowed_actions(SCENARIOS["no-users"]()) if "User" in a or "Group" in a}
    assert writes <= {"iam:GetUser", "iam:GetUserPolicy", "iam:ListUserPolicies",
                      "iam:ListAttachedUserPolicies", "iam:ListGroupsForUser", "iam:GetGroup"}


def test_several_guardrails_the_loosest_wins() -> None:
    doc = SCENARIOS["several"]()
    (create,) = granting(doc, "iam:CreateRole")
    assert "iam:PermissionsBoundary" not in condition_keys(create)  # NO_USERS requires none
    assert "arn:aws:iam::*:role/b-*" in _list(create["Resource"])
    assert not [s for s in statements(doc, "Deny") if "iam:AttachRolePolicy" in _list(s.get("Action", []))]


def test_a_warn_guardrail_blocks_nothing_on_awss_side_either() -> None:
    assert SCENARIOS["warn"]() == operator_policy([])


def test_partition_is_used_in_every_generated_arn() -> None:
    resources = [r for s in SCENARIOS["china"]()["Statement"] for r in _list(s["Resource"])]
    assert [r for r in resources if r != "*" and not r.startswith("arn:aws-cn:")] == []


def test_problems_reports_an_oversize_policy() -> None:
    many = [guardrail(f"g{i}", roles={"names": [f"application-team-number-{i}-{{namespace}}-*"]})
            for i in range(60)]
    found = problems(operator_policy(many))
    assert len(found) == 1 and "over IAM's 6144 for a managed policy" in found[0]


def test_event_queues_are_granted_only_when_configured() -> None:
    assert not any("sqs:" in json.dumps(s) for s in operator_policy([])["Statement"])
    queue = queue_arn("https://sqs.us-east-1.amazonaws.com/123456789012/rolekeeper-iam-events")
    dead = queue_arn("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/dlq", "aws-cn")
    assert (queue, dead) == ("arn:aws:sqs:us-east-1:123456789012:rolekeeper-iam-events",
                             "arn:aws-cn:sqs:cn-north-1:123456789012:dlq")
    doc = operator_policy([], event_queues=[queue], dead_letter_queues=[dead])
    sqs = {s["Sid"]: s for s in doc["Statement"] if "sqs:" in json.dumps(s)}
    assert sqs["ReadIAMEvents"]["Action"] == ["sqs:ReceiveMessage", "sqs:DeleteMessage"]
    assert sqs["ReadIAMEvents"]["Resource"] == queue
    assert (sqs["ForwardUnreadableEvents"]["Action"], sqs["ForwardUnreadableEvents"]["Resource"]) == ("sqs:SendMessage", dead)
    assert problems(doc) == []
    assert queue_arn("http://127.0.0.1:5000/123456789012/q") == "arn:aws:sqs:*:123456789012:q"
    with pytest.raises(ValueError, match="not an SQS queue URL"):
        queue_arn("https://example.com/q")
