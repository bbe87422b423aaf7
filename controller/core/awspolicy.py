"""The operator's own IAM policy, generated from the guardrails so AWS enforces them too.

Guardrails are enforced by the operator before any write; this policy is the second line, for
when the operator is wrong or its credentials leak: whoever holds them can still do only what
some tenant could. It is what `rolekeeper aws-policy --guardrails FILE` prints.

What AWS can and cannot check. IAM policies condition on request parameters, not on document
content, so AWS enforces from the guardrails:

- resource ARNs limited to the allowed names and paths (`role/tenants/*/*-*`);
- `iam:PermissionsBoundary` on CreateRole/CreateUser and Put*PermissionsBoundary, and no
  Delete*PermissionsBoundary (an explicit Deny) when every guardrail requires a boundary;
- `iam:PolicyARN` on Attach*Policy from allowed managed policies, and a Deny of the denied;
- users, access-key removal and group membership only when some guardrail allows users,
  groups only those allowed;
- ownership tags: creates must carry `rolekeeper.dev/owner`, `uid` and `cluster`; changes
  need the resource tagged by this cluster (`aws:ResourceTag/rolekeeper.dev/cluster`).

Trust principals, actions in documents, session length and counts are the operator's alone.

One policy serves every namespace, and AWS cannot tell which namespace a call is for, so each
limit is the *loosest* any guardrail allows (a union of allowed sets, the intersection of
denied ones); a limit only some guardrails impose stays operator-only. `{namespace}` becomes
`*`. A guardrail in `warn` mode blocks nothing, so it loosens every limit to nothing. Callers
pass the guardrails covering every namespace the operator serves (an `IAMGuardrail` with
`namespaceSelector: {}` is the usual catch-all).

Known limit: AWS cannot tell a TagRole that creates a role with tags from one that tags an
existing role, so adopting an untagged entity is blocked on AWS's side only by the allowed
names and paths; the operator's adoption rule is the real gate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.core import matching, policy
from controller.core.cloudtrail import queue_parts
from controller.core.guardrails import Enforcement, Guardrail, NameRules

__all__ = [
    "CLUSTER_TAG",
    "MANAGED_POLICY_MAX_SIZE",
    "OWNER_TAG",
    "UID_TAG",
    "operator_policy",
    "problems",
    "queue_arn",
]

OWNER_TAG = "rolekeeper.dev/owner"
UID_TAG = "rolekeeper.dev/uid"
CLUSTER_TAG = "rolekeeper.dev/cluster"
MANAGED_POLICY_MAX_SIZE = 6144  # characters, whitespace not counted (IAM quota)
OPERATOR_NAME = "rolekeeper-operator"

# What reconciling needs to read; the same list as docs/aws-policy.json.
_READS = [
    "iam:GetAccountAuthorizationDetails",
    "iam:ListRoles",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole",
    "iam:GetInstanceProfile",
    "iam:GetUser",
    "iam:GetUserPolicy",
    "iam:ListUserPolicies",
    "iam:ListAttachedUserPolicies",
    "iam:ListGroupsForUser",
    "iam:GetLoginProfile",
    "iam:ListAccessKeys",
    "iam:GetAccessKeyLastUsed",
    "iam:ListMFADevices",
    "iam:ListSigningCertificates",
    "iam:ListSSHPublicKeys",
    "iam:ListServiceSpecificCredentials",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:ListPolicies",
    "iam:ListPolicyVersions",
    "iam:ListPolicyTags",
    "iam:ListEntitiesForPolicy",
    "iam:GetGroup",
]


@dataclass(frozen=True)
class _Scope:
    """The loosest limits over all guardrails, as ARNs and condition values."""

    roles: list[str]
    profiles: list[str]
    users: list[str]  # empty: no guardrail allows users
    policies: list[str]  # customer managed policies an IAMPolicy may create
    groups: list[str]
    boundaries: list[str] | None  # None: some guardrail requires none
    allowed_policies: list[str] | None  # None: some guardrail allows any
    denied_policies: list[str]


def operator_policy(
    guardrails: Sequence[Guardrail],
    *,
    partition: str = "aws",
    account_id: str = "*",
    cluster_id: str | None = None,
    instance_profiles: bool = True,
    operator_name: str = OPERATOR_NAME,
    assume_roles: Sequence[str] = (),
    event_queues: Sequence[str] = (),
    dead_letter_queues: Sequence[str] = (),
) -> dict[str, Any]:
    """The operator's identity policy enforcing on AWS's side what the guardrails allow.

    `assume_roles` are the roleArn of each IAMAccount: the operator's own identity may assume
    exactly those (docs/accounts.md); without IAMAccounts it assumes nothing.

    `event_queues` and `dead_letter_queues` are SQS queue ARNs (`queue_arn`) of event-driven
    drift (docs/drift.md): the operator receives and deletes from the first, only sends to the
    second.

    `cluster_id` pins the cluster tag's value (`--cluster-id`); without it any value will do
    but the tag must be present. `instance_profiles=False` drops iam:PassRole and the
    instance-profile statements. With no guardrails the result is at least as strict as
    docs/aws-policy.json. Check the result with `problems`.
    """
    arn = f"arn:{partition}:iam::{account_id}:"
    scope = _scope(guardrails, arn)
    request_tags = _tag_condition("aws:RequestTag", cluster_id)
    owned = _tag_condition("aws:ResourceTag", cluster_id)
    boundary = _with(owned, "ArnLike", "iam:PermissionsBoundary", scope.boundaries)
    users = bool(scope.users)
    statements: list[dict[str, Any]] = [
        _allow("ReadIAM", _READS, ["*"]),
        _allow(
            "CreateOnlyWithBoundaryAndOwnershipTags",
            ["iam:CreateRole", *(["iam:CreateUser"] if users else [])],
            scope.roles + scope.users,
            _with(request_tags, "ArnLike", "iam:PermissionsBoundary", scope.boundaries),
        ),
        _allow(
            # Tag-on-create needs the Tag* permission too; see the module docstring's limit.
            "TagOnlyWithOwnershipTags",
            [
                *(["iam:CreateInstanceProfile", "iam:TagInstanceProfile"]
                  if instance_profiles else []),
                "iam:TagRole",
                *(["iam:TagUser"] if users else []),
            ],
            scope.roles + (scope.profiles if instance_profiles else []) + scope.users,
            request_tags,
        ),
        _allow(
            "OwnedRoles",
            [
                "iam:UpdateRole", "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole",
                "iam:DeleteRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
            ],
            scope.roles,
            owned,
        ),
    ]
    statements.append(_allow(
        # IAMPolicy: created carrying the ownership tags, changed and deleted only when owned.
        "CreatePoliciesWithOwnershipTags", ["iam:CreatePolicy", "iam:TagPolicy"],
        scope.policies, request_tags,
    ))
    statements.append(_allow(
        "OwnedPolicies",
        ["iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion",
         "iam:TagPolicy", "iam:UntagPolicy", "iam:DeletePolicy"],
        scope.policies, owned,
    ))
    if users:
        statements.append(_allow(
            "OwnedUsers",
            [
                "iam:TagUser", "iam:UntagUser", "iam:DeleteUser", "iam:PutUserPolicy",
                "iam:DeleteUserPolicy", "iam:DetachUserPolicy", "iam:DeleteLoginProfile",
                "iam:DeleteAccessKey", "iam:CreateAccessKey", "iam:UpdateAccessKey",
                "iam:DeactivateMFADevice", "iam:DeleteSigningCertificate",
                "iam:DeleteSSHPublicKey", "iam:DeleteServiceSpecificCredential",
            ],
            scope.users,
            owned,
        ))
    statements.append(_allow(
        "AttachAllowedManagedPolicies",
        ["iam:AttachRolePolicy", *(["iam:AttachUserPolicy"] if users else [])],
        # An empty allowed list allows no attachment at all.
        [] if scope.allowed_policies == [] else scope.roles + scope.users,
        _with(owned, "ArnLike", "iam:PolicyARN", scope.allowed_policies),
    ))
    boundary_actions = ["iam:PutRolePermissionsBoundary"]
    if users:
        boundary_actions.append("iam:PutUserPermissionsBoundary")
    if scope.boundaries is None:
        boundary_actions.append("iam:DeleteRolePermissionsBoundary")
        if users:
            boundary_actions.append("iam:DeleteUserPermissionsBoundary")
    statements.append(
        _allow("PermissionsBoundaries", boundary_actions, scope.roles + scope.users, boundary)
    )
    if instance_profiles:
        statements.append(_allow(
            "OwnedInstanceProfiles",
            ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
             "iam:DeleteInstanceProfile"],
            scope.profiles,
            owned,
        ))
        # PassRole is checked inside AddRoleToInstanceProfile. IfExists keeps that working
        # whether or not AWS sets iam:PassedToService there, while a pass to any service
        # other than EC2 (which always sets it) is refused.
        statements.append(_allow(
            "PassRolesOnlyToEC2",
            ["iam:PassRole"],
            scope.roles,
            {"StringEqualsIfExists": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ))
    if users and scope.groups:
        statements.append(_allow(
            "AllowedGroupMembership", ["iam:AddUserToGroup", "iam:RemoveUserFromGroup"],
            scope.groups,
        ))
    if users:
        statements.append(_allow(
            "DeleteVirtualMFADevicesOfDeletedUsers", ["iam:DeleteVirtualMFADevice"],
            [f"{arn}mfa/*"],
        ))
    if scope.denied_policies:
        statements.append(_deny(
            "NeverDeniedManagedPolicies", ["iam:AttachRolePolicy", "iam:AttachUserPolicy"],
            {"ArnLike": {"iam:PolicyARN": _single(scope.denied_policies)}},
        ))
    if scope.boundaries is not None:
        statements.append(_deny(
            "KeepPermissionsBoundaries",
            ["iam:DeleteRolePermissionsBoundary", "iam:DeleteUserPermissionsBoundary"],
        ))
    statements.append({
        "Sid": "NeverTheOperatorsOwnIdentity",
        "Effect": "Deny",
        "NotAction": ["iam:Get*", "iam:List*"],
        "Resource": _arns(arn, "role", (operator_name,), None)
        + _arns(arn, "user", (operator_name,), None),
    })
    if assume_roles:
        statements.append(_allow("AssumeIAMAccountRoles", ["sts:AssumeRole"], sorted(assume_roles)))
    if event_queues:
        # DeleteMessageBatch is authorized as sqs:DeleteMessage.
        statements.append(_allow(
            "ReadIAMEvents", ["sqs:ReceiveMessage", "sqs:DeleteMessage"], sorted(event_queues)
        ))
    if dead_letter_queues:
        statements.append(_allow(
            "ForwardUnreadableEvents", ["sqs:SendMessage"], sorted(dead_letter_queues)
        ))
    # A statement left with no resource (nothing allowed) must go: IAM rejects it.
    kept = [s for s in statements if s.get("Resource") != []]
    return {"Version": policy.DEFAULT_VERSION, "Statement": kept}


def queue_arn(url: str, partition: str = "aws") -> str:
    """The ARN of the SQS queue at `url` (any region where the URL names none); ValueError for
    what is not a queue URL."""
    parts = queue_parts(url)
    if parts is None:
        raise ValueError(f"not an SQS queue URL: {url!r}")
    region, account, name = parts
    return f"arn:{partition}:sqs:{region or '*'}:{account}:{name}"


def problems(doc: dict[str, Any], *, partition: str = "aws") -> list[str]:
    """Why IAM would refuse the document as a managed policy; empty when it would not."""
    found = policy.validate(doc, "identity", "operator policy")
    size = policy.size(doc, partition=partition)
    if size > MANAGED_POLICY_MAX_SIZE:
        found.append(
            f"operator policy: {size} characters, over IAM's {MANAGED_POLICY_MAX_SIZE} for a "
            "managed policy; merge guardrail patterns or split the policy"
        )
    return found


# --- scope -----------------------------------------------------------------------------


def _scope(guardrails: Sequence[Guardrail], arn: str) -> _Scope:
    # A warn guardrail blocks nothing, so for AWS's side it is one that allows everything.
    loose = any(g.enforcement is Enforcement.WARN for g in guardrails) or not guardrails
    enforcing = [] if loose else list(guardrails)
    everything = Guardrail(name="")
    rules = enforcing or [everything]
    user_rules = [g for g in rules if g.users.allowed]
    return _Scope(
        roles=_union(_arns(arn, "role", *_names(g.roles.names)) for g in rules),
        profiles=_union(_arns(arn, "instance-profile", *_names(g.roles.names)) for g in rules),
        users=_union(_arns(arn, "user", *_names(g.users.names)) for g in user_rules),
        policies=_union(_arns(arn, "policy", *_names(g.policies.names)) for g in rules),
        groups=_union(_arns(arn, "group", g.users.groups, None) for g in user_rules),
        boundaries=_loosest([g.permissions_boundary for g in rules]),
        allowed_policies=_loosest([g.managed_policies.allowed for g in rules]),
        denied_policies=_common([g.managed_policies.denied for g in rules]),
    )


def _names(rules: NameRules) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    return rules.names, rules.paths


def _arns(
    arn: str, kind: str, names: Iterable[str] | None, paths: Iterable[str] | None
) -> list[str]:
    """Resource ARNs for entities with these names under these paths.

    Without a path rule a name may sit under any path: `role/NAME` and `role/*/NAME`, never
    `role/*NAME`, which would also match names that merely end in NAME.
    """
    wanted = [matching.substitute(n, None) for n in names] if names is not None else ["*"]
    if paths is None:
        prefixes = ["/"] if wanted == ["*"] else ["/", "/*/"]
    else:
        prefixes = [matching.substitute(p, None) for p in paths]
    found = [f"{arn}{kind}{prefix}{name}" for prefix in prefixes for name in wanted]
    return _union([found])


def _union(groups: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        seen.update(dict.fromkeys(group))
    return sorted(seen)


def _loosest(values: list[tuple[str, ...] | None]) -> list[str] | None:
    """The union of every guardrail's allowed list, or None if one allows anything."""
    if any(v is None for v in values):
        return None
    return _union((matching.substitute(p, None) for p in v or ()) for v in values)


def _common(values: list[tuple[str, ...]]) -> list[str]:
    """Denied patterns every guardrail shares; namespaced ones cannot be denied account-wide."""
    if not values:
        return []
    shared = set(values[0]).intersection(*values[1:])
    return sorted(p for p in shared if matching.NAMESPACE not in p)


# --- statements ------------------------------------------------------------------------


def _single(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _allow(
    sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid, "Effect": "Allow", "Action": _single(actions), "Resource": _single(resources),
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _deny(sid: str, actions: list[str], condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement = _allow(sid, actions, ["*"], condition)
    statement["Effect"] = "Deny"
    return statement


def _tag_condition(context: str, cluster_id: str | None) -> dict[str, Any]:
    """Ownership tags required on a request (aws:RequestTag) or a resource (ResourceTag)."""
    present = {f"{context}/{OWNER_TAG}": "false"}
    if context == "aws:RequestTag":
        present[f"{context}/{UID_TAG}"] = "false"
    condition: dict[str, Any] = {"Null": present}
    if cluster_id is None:
        present[f"{context}/{CLUSTER_TAG}"] = "false"
    else:
        condition["StringEquals"] = {f"{context}/{CLUSTER_TAG}": cluster_id}
    return condition


def _with(
    condition: dict[str, Any], operator: str, key: str, values: list[str] | None
) -> dict[str, Any]:
    """The condition plus `operator: {key: values}`, or unchanged when values is None."""
    if values is None:
        return condition
    return {**condition, operator: {**condition.get(operator, {}), key: _single(values)}}
