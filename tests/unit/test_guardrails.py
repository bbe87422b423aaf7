"""Tenant guardrails (controller.core.guardrails) and the IAMGuardrail CRD.

Covers:
- escalation attempts, one per row (trust '*', foreign accounts without ExternalId, unlisted
  services/providers, OIDC without or with a too-wide ':sub', AdministratorAccess, inline '*',
  NotAction, iam:Pass*, missing/wrong boundary, session over the cap, name squat, path
  outside /tenants/{namespace}/, users disallowed, group Admins, access keys, adoption of
  OrganizationAccountAccessRole, count limits, ...): each refused by exactly the expected
  guardrail and rules;
- allowed objects of every kind pass with no violation and no warning;
- messages name the guardrail, rule and field and say what is allowed; Evaluation.message;
- warn mode blocks nothing and reports the same violations as warnings;
- several guardrails selecting one namespace must all pass; unselecting ones are ignored;
- namespace selector semantics (matchLabels, In, NotIn, Exists, DoesNotExist, empty);
- adoption: off without a guardrail allowing it, on for listed names/paths only;
- limits count the objects that precede this one (a tightened limit refuses the newest);
- parse_guardrail: every example in docs/guardrails.md parses; each error names its field;
- the CRD: cluster-scoped identity, printer columns, a description on every node, and its
  spec fields are exactly the ones the parser reads.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.core.guardrails import (
    Enforcement,
    Guardrail,
    GuardrailError,
    Rule,
    adoption_allowed,
    evaluate,
    parse_guardrail,
    selects,
)
from controller.core.view import EntityView

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "111122223333"
PARTNER = "444455556666"
STRANGER = "999999999999"
NS = "team-a"
TENANT = {"rolekeeper.dev/tenant": "true"}
RESTRICTED = {"rolekeeper.dev/tenant": "true", "tier": "restricted"}
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/tenant-boundary"
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
S3_READ = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"

TENANTS_SPEC: dict[str, Any] = {
    "namespaceSelector": {"matchLabels": TENANT},
    "enforcement": "deny",
    "roles": {
        "names": ["{namespace}-*"],
        "paths": ["/tenants/{namespace}/"],
        "maxSessionDuration": 7200,
        "trust": {
            "services": ["ec2.amazonaws.com", "lambda.amazonaws.com"],
            "accounts": ["self", PARTNER],
            "oidcProviders": [
                {"provider": "arn:aws:iam::*:oidc-provider/oidc.eks.*",
                 "subjects": ["system:serviceaccount:{namespace}:*"]},
            ],
            "samlProviders": [f"arn:aws:iam::{ACCOUNT}:saml-provider/corp"],
            "wildcardPrincipalRequires": ["aws:PrincipalOrgID"],
            "foreignAccountsRequire": ["ExternalId", "MFA"],
        },
    },
    "users": {
        "names": ["{namespace}-*"],
        "paths": ["/tenants/{namespace}/"],
        "groups": ["{namespace}-readers"],
        "accessKeys": False,
    },
    "policies": {"names": ["{namespace}-*"], "paths": ["/tenants/{namespace}/"]},
    "permissionsBoundary": {"required": ["arn:aws:iam::*:policy/tenant-boundary"]},
    "managedPolicies": {
        "allowed": [S3_READ, "arn:aws:iam::*:policy/tenants/{namespace}/*"],
        "denied": ["arn:aws:iam::aws:policy/AdministratorAccess"],
    },
    "actions": {
        "denied": ["iam:PassRole", "iam:Create*", "organizations:*"],
        "deniedOnWildcardResource": ["s3:Delete*", "kms:Decrypt"],
    },
    "limits": {"roles": 10, "users": 2, "total": 11},
    "adoption": {"roles": {"names": ["{namespace}-legacy-*"]}},
}


def guardrail(name: str = "tenants", **spec: Any) -> Guardrail:
    return parse_guardrail({"apiVersion": "iam.rolekeeper.dev/v1alpha1", "kind": "IAMGuardrail",
                            "metadata": {"name": name}, "spec": spec})


TENANTS = guardrail(**TENANTS_SPEC)
NO_USERS = guardrail(
    "restricted", namespaceSelector={"matchLabels": {"tier": "restricted"}}, users={"allowed": False}
)
GUARDRAILS = [TENANTS, NO_USERS]


def trust(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def assume(principal: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


def web_identity(provider: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Principal": {"Federated": provider},
                 "Action": "sts:AssumeRoleWithWebIdentity"}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def inline(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"spec.inlinePolicies.app": trust(*statements)}


def allow(action: Any, resource: Any = "arn:aws:s3:::team-a-data/*", **extra: Any) -> dict[str, Any]:
    key = "NotAction" if extra.pop("not_action", False) else "Action"
    return {"Effect": "Allow", key: action, "Resource": resource, **extra}


EC2 = assume({"Service": "ec2.amazonaws.com"})
GOOD_ROLE = EntityView(
    kind="IAMRole", namespace=NS, name="team-a-web", path="/tenants/team-a/",
    trust_policy=trust(EC2), documents=inline(allow(["s3:GetObject", "s3:PutObject"])),
    managed_policies=frozenset({S3_READ}), permissions_boundary=BOUNDARY,
    max_session_duration=3600,
)
GOOD_USER = EntityView(
    kind="IAMUser", namespace=NS, name="team-a-ci", path="/tenants/team-a/",
    permissions_boundary=BOUNDARY, groups=frozenset({"team-a-readers"}),
)
GOOD_POLICY = EntityView(
    kind="IAMPolicy", namespace=NS, name="team-a-write", path="/tenants/team-a/",
    documents={"spec.document": trust(allow("s3:PutObject"))},
)


def role(**changes: Any) -> EntityView:
    return dataclasses.replace(GOOD_ROLE, **changes)


def user(**changes: Any) -> EntityView:
    return dataclasses.replace(GOOD_USER, **changes)


def denied_rules(view: EntityView, labels: dict[str, str] = TENANT, **kwargs: Any) -> set[tuple[str, str]]:
    result = evaluate(GUARDRAILS, view, labels, account_id=ACCOUNT, **kwargs)
    return {(v.guardrail, v.rule) for v in result.denied}


T = "tenants"
ESCALATIONS = [
    # --- trust ---
    pytest.param(role(trust_policy=trust(assume("*"))), {(T, Rule.TRUST_WILDCARD)}, id="principal-star"),
    pytest.param(role(trust_policy=trust(assume({"AWS": "*"}))), {(T, Rule.TRUST_WILDCARD)}, id="principal-aws-star"),
    pytest.param(
        role(trust_policy=trust(assume("*", Condition={"Bool": {"aws:SecureTransport": "true"}}))),
        {(T, Rule.TRUST_WILDCARD)}, id="star-with-irrelevant-condition",
    ),
    pytest.param(
        role(trust_policy=trust(assume("*", Condition={"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-1"}}))),
        {(T, Rule.TRUST_WILDCARD)}, id="star-with-ifexists-condition",
    ),
    pytest.param(
        role(trust_policy=trust(assume({"AWS": f"arn:aws:iam::{STRANGER}:root"}))),
        {(T, Rule.TRUST_ACCOUNTS), (T, Rule.TRUST_FOREIGN)}, id="foreign-root-unlisted",
    ),
    pytest.param(
        role(trust_policy=trust(assume({"AWS": f"arn:aws:iam::{STRANGER}:root"},
                                       Condition={"StringEquals": {"sts:ExternalId": "x"}}))),
        {(T, Rule.TRUST_ACCOUNTS)}, id="unlisted-account-even-with-externalid",
    ),
    pytest.param(
        role(trust_policy=trust(assume({"AWS": f"arn:aws:iam::{PARTNER}:root"}))),
        {(T, Rule.TRUST_FOREIGN)}, id="partner-root-without-externalid",
    ),
    pytest.param(
        role(trust_policy=trust(assume({"AWS": [PARTNER]}))),
        {(T, Rule.TRUST_FOREIGN)}, id="partner-bare-id-without-condition",
    ),
    pytest.param(
        role(trust_policy=trust(assume({"AWS": f"arn:aws:iam::{PARTNER}:role/x"},
                                       Condition={"Bool": {"aws:MultiFactorAuthPresent": "false"}}))),
        {(T, Rule.TRUST_FOREIGN)}, id="partner-with-mfa-false",
    ),
    pytest.param(
        role(trust_policy=trust(assume({"Service": "ssm.amazonaws.com"}))),
        {(T, Rule.TRUST_SERVICES)}, id="unlisted-service",
    ),
    pytest.param(
        role(trust_policy=trust(assume({"CanonicalUser": "79a59df900b949e55d96a1e698fbaced"}))),
        {(T, Rule.TRUST_ACCOUNTS)}, id="canonical-user",
    ),
    pytest.param(
        role(trust_policy=trust(web_identity(OIDC))), {(T, Rule.TRUST_OIDC)}, id="oidc-without-sub",
    ),
    pytest.param(
        role(trust_policy=trust(web_identity(OIDC, {"StringEquals": {f"{ISSUER}:aud": "sts.amazonaws.com"}}))),
        {(T, Rule.TRUST_OIDC)}, id="oidc-aud-only",
    ),
    pytest.param(
        role(trust_policy=trust(web_identity(OIDC, {"StringLikeIfExists": {f"{ISSUER}:sub": "system:serviceaccount:team-a:*"}}))),
        {(T, Rule.TRUST_OIDC)}, id="oidc-sub-ifexists",
    ),
    pytest.param(
        role(trust_policy=trust(web_identity(OIDC, {"StringEquals": {f"{ISSUER}:sub": "system:serviceaccount:team-b:web"}}))),
        {(T, Rule.TRUST_OIDC)}, id="oidc-sub-other-namespace",
    ),
    pytest.param(
        role(trust_policy=trust(web_identity(OIDC, {"StringLike": {f"{ISSUER}:sub": "system:serviceaccount:*"}}))),
        {(T, Rule.TRUST_OIDC)}, id="oidc-sub-every-namespace",
    ),
    pytest.param(
        role(trust_policy=trust(web_identity("accounts.google.com", {"StringEquals": {"accounts.google.com:sub": "1"}}))),
        {(T, Rule.TRUST_OIDC)}, id="oidc-unlisted-provider",
    ),
    pytest.param(
        role(trust_policy=trust(assume({"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/other"}))),
        {(T, Rule.TRUST_SAML)}, id="saml-unlisted",
    ),
    # --- permissions ---
    pytest.param(
        role(managed_policies=frozenset({"arn:aws:iam::aws:policy/AdministratorAccess"})),
        {(T, Rule.MANAGED_POLICIES_DENIED)}, id="administrator-access",
    ),
    pytest.param(
        role(managed_policies=frozenset({"arn:aws:iam::aws:policy/administratoraccess"})),
        {(T, Rule.MANAGED_POLICIES_DENIED)}, id="administrator-access-lowercase",
    ),
    pytest.param(
        role(managed_policies=frozenset({"arn:aws:iam::aws:policy/IAMFullAccess"})),
        {(T, Rule.MANAGED_POLICIES_ALLOWED)}, id="unlisted-aws-managed-policy",
    ),
    pytest.param(
        role(managed_policies=frozenset({f"arn:aws:iam::{ACCOUNT}:policy/tenants/team-b/db"})),
        {(T, Rule.MANAGED_POLICIES_ALLOWED)}, id="other-tenants-policy",
    ),
    pytest.param(role(documents=inline(allow("*"))), {(T, Rule.ACTIONS_DENIED)}, id="inline-action-star"),
    pytest.param(
        role(documents=inline(allow(["s3:*"], not_action=True))),
        {(T, Rule.ACTIONS_DENIED)}, id="inline-notaction",
    ),
    pytest.param(role(documents=inline(allow("iam:Pass*"))), {(T, Rule.ACTIONS_DENIED)}, id="inline-iam-pass-star"),
    pytest.param(role(documents=inline(allow("iam:*"))), {(T, Rule.ACTIONS_DENIED)}, id="inline-iam-star"),
    pytest.param(role(documents=inline(allow("IAM:passrole"))), {(T, Rule.ACTIONS_DENIED)}, id="inline-case"),
    pytest.param(
        role(documents=inline(allow("organizations:LeaveOrganization"))),
        {(T, Rule.ACTIONS_DENIED)}, id="inline-organizations",
    ),
    pytest.param(
        role(documents=inline(allow("s3:DeleteBucket", "*"))),
        {(T, Rule.ACTIONS_ON_WILDCARD)}, id="delete-on-every-resource",
    ),
    pytest.param(
        role(documents=inline({"Effect": "Allow", "Action": "kms:*", "NotResource": "arn:aws:kms:*:*:key/x"})),
        {(T, Rule.ACTIONS_ON_WILDCARD)}, id="kms-on-notresource",
    ),
    pytest.param(
        dataclasses.replace(GOOD_POLICY, documents={"spec.document": trust(allow("iam:CreateUser", "*"))}),
        {(T, Rule.ACTIONS_DENIED)}, id="iampolicy-document",
    ),
    pytest.param(role(permissions_boundary=None), {(T, Rule.PERMISSIONS_BOUNDARY)}, id="missing-boundary"),
    pytest.param(
        role(permissions_boundary="arn:aws:iam::aws:policy/PowerUserAccess"),
        {(T, Rule.PERMISSIONS_BOUNDARY)}, id="wrong-boundary",
    ),
    pytest.param(user(permissions_boundary=None), {(T, Rule.PERMISSIONS_BOUNDARY)}, id="user-missing-boundary"),
    pytest.param(role(max_session_duration=43200), {(T, Rule.MAX_SESSION_DURATION)}, id="session-over-cap"),
    # --- names, users, adoption, counts ---
    pytest.param(role(name="team-b-api"), {(T, Rule.ROLE_NAMES)}, id="name-squat"),
    pytest.param(role(path="/tenants/team-b/"), {(T, Rule.ROLE_PATHS)}, id="path-other-tenant"),
    pytest.param(role(path="/"), {(T, Rule.ROLE_PATHS)}, id="path-root"),
    pytest.param(
        dataclasses.replace(GOOD_POLICY, name="shared-admin"), {(T, Rule.POLICY_NAMES)}, id="policy-name",
    ),
    pytest.param(user(name="breakglass-admin"), {(T, Rule.USER_NAMES)}, id="user-name-squat"),
    pytest.param(user(groups=frozenset({"Admins"})), {(T, Rule.USER_GROUPS)}, id="group-admins"),
    pytest.param(user(access_keys=True), {(T, Rule.USER_ACCESS_KEYS)}, id="access-keys"),
    pytest.param(
        role(name="OrganizationAccountAccessRole", path="/", adopt=True),
        {(T, Rule.ROLE_NAMES), (T, Rule.ROLE_PATHS), (T, Rule.ADOPTION)},
        id="adopt-organization-access-role",
    ),
    pytest.param(role(adopt=True), {(T, Rule.ADOPTION)}, id="adopt-unlisted-own-name"),
]


@pytest.mark.parametrize(("view", "expected"), ESCALATIONS)
def test_escalation_is_refused_by_the_expected_rules(
    view: EntityView, expected: set[tuple[str, str]]
) -> None:
    assert denied_rules(view) == expected


def test_there_are_at_least_thirty_escalations() -> None:
    assert len(ESCALATIONS) >= 30


def test_users_are_refused_where_a_guardrail_disallows_them() -> None:
    assert denied_rules(GOOD_USER, RESTRICTED) == {("restricted", Rule.USERS_ALLOWED)}


@pytest.mark.parametrize(
    ("kind", "preceding", "expected"),
    [
        ("IAMRole", 9, set()),
        ("IAMRole", 10, {(T, Rule.LIMITS)}),
        ("IAMUser", 2, {(T, Rule.LIMITS)}),
    ],
)
def test_count_limit_per_kind(kind: str, preceding: int, expected: set[tuple[str, str]]) -> None:
    view = GOOD_ROLE if kind == "IAMRole" else GOOD_USER
    assert denied_rules(view, objects_in_namespace=preceding) == expected


def test_count_limit_in_total_counts_every_kind() -> None:
    counts = {"IAMRole": 5, "IAMUser": 1, "IAMPolicy": 5}
    assert denied_rules(GOOD_ROLE, objects_in_namespace=counts) == {(T, Rule.LIMITS)}


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(GOOD_ROLE, id="role"),
        pytest.param(GOOD_USER, id="user"),
        pytest.param(GOOD_POLICY, id="policy"),
        pytest.param(
            role(trust_policy=trust(web_identity(OIDC, {"StringEquals": {
                f"{ISSUER}:sub": "system:serviceaccount:team-a:web",
                f"{ISSUER}:aud": "sts.amazonaws.com"}}))),
            id="irsa",
        ),
        pytest.param(role(trust_policy=trust(assume({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))), id="same-account"),
        pytest.param(
            role(trust_policy=trust(assume({"AWS": f"arn:aws:iam::{PARTNER}:root"},
                                           Condition={"StringEquals": {"sts:ExternalId": "abc"}}))),
            id="partner-with-externalid",
        ),
        pytest.param(
            role(trust_policy=trust(assume({"AWS": PARTNER},
                                           Condition={"Bool": {"aws:MultiFactorAuthPresent": True}}))),
            id="partner-with-mfa",
        ),
        pytest.param(
            role(trust_policy=trust(assume("*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-1"}}))),
            id="star-within-organisation",
        ),
        pytest.param(
            role(trust_policy=trust(assume({"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/corp"}))),
            id="saml",
        ),
        pytest.param(
            role(trust_policy=trust(EC2, {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"})),
            id="deny-star-grants-nothing",
        ),
        pytest.param(
            role(documents=inline(allow("s3:*"), {"Effect": "Deny", "Action": "*", "Resource": "*"})),
            id="deny-everything",
        ),
        pytest.param(role(name="team-a-legacy-db", adopt=True), id="adopt-listed-name"),
        pytest.param(role(managed_policies=frozenset({f"arn:aws:iam::{ACCOUNT}:policy/tenants/team-a/x"})),
                     id="own-customer-policy"),
    ],
)
def test_allowed_objects_pass(view: EntityView) -> None:
    result = evaluate(GUARDRAILS, view, TENANT, account_id=ACCOUNT, objects_in_namespace=0)
    assert (result.denied, result.warned) == ((), ())


def test_a_violation_names_guardrail_rule_field_and_what_is_allowed() -> None:
    (violation,) = evaluate([TENANTS], role(name="team-b-api"), TENANT).denied
    assert violation.message == (
        "IAMGuardrail 'tenants', rule roles.names (deny): spec.roleName 'team-b-api' is not "
        "allowed; allowed names: 'team-a-*'"
    )
    assert (violation.field, violation.enforcement) == ("spec.roleName", Enforcement.DENY)


def test_a_trust_violation_points_at_the_statement() -> None:
    view = role(trust_policy=trust(EC2, assume("*")))
    (violation,) = evaluate([TENANTS], view, TENANT).denied
    assert violation.field == "spec.assumeRolePolicy.Statement[1].Principal.AWS"


def test_evaluation_message_joins_every_denial() -> None:
    result = evaluate([TENANTS], role(name="x", path="/"), TENANT)
    assert result.message == "; ".join(v.message for v in result.denied)
    assert len(result.denied) == 2 and not result.allowed


def test_an_allowed_object_has_an_empty_message() -> None:
    assert evaluate([TENANTS], GOOD_ROLE, TENANT, account_id=ACCOUNT).message == ""


def test_warn_mode_blocks_nothing_and_reports_a_warning() -> None:
    warn = dataclasses.replace(TENANTS, enforcement=Enforcement.WARN)
    result = evaluate([warn], role(name="team-b-api"), TENANT)
    assert result.allowed
    assert [(v.rule, v.enforcement) for v in result.warned] == [(Rule.ROLE_NAMES, Enforcement.WARN)]
    assert result.warnings[0].startswith("IAMGuardrail 'tenants', rule roles.names (warn):")


def test_warn_mode_does_not_allow_adoption() -> None:
    warn = dataclasses.replace(TENANTS, enforcement=Enforcement.WARN, adoption=NO_USERS.adoption)
    assert [v.rule for v in evaluate([warn], role(adopt=True), TENANT).denied] == [Rule.ADOPTION]


def test_every_selecting_guardrail_must_pass() -> None:
    cap = guardrail("session-cap", namespaceSelector={}, roles={"maxSessionDuration": 3600})
    view = role(max_session_duration=7200)
    assert {(v.guardrail, v.rule) for v in evaluate([TENANTS, cap], view, TENANT).denied} == {
        ("session-cap", Rule.MAX_SESSION_DURATION)
    }


def test_two_guardrails_broken_at_once_are_both_reported() -> None:
    names = guardrail("names", namespaceSelector={}, roles={"names": ["app-*"]})
    result = evaluate([TENANTS, names], role(name="x"), TENANT)
    assert {v.guardrail for v in result.denied} == {"tenants", "names"}


def test_a_guardrail_that_does_not_select_the_namespace_is_ignored() -> None:
    result = evaluate([TENANTS], role(name="anything", path="/"), {"team": "a"})
    assert (result.denied, result.warned) == ((), ())


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchLabels": {"a": "1"}}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
        (
            {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]},
            {"a": "1"}, False,
        ),
    ],
)
def test_namespace_selector(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert selects(guardrail(namespaceSelector=selector), labels) is expected


def test_adoption_without_any_selecting_guardrail_is_refused() -> None:
    violation = adoption_allowed([], role(adopt=True), TENANT)
    assert violation is not None
    assert (violation.guardrail, violation.rule) == ("", Rule.ADOPTION)
    assert violation.message.startswith("no IAMGuardrail, rule adoption (deny): spec.adopt ")


def test_adoption_allowed_by_one_of_two_guardrails_is_allowed() -> None:
    other = guardrail("other", namespaceSelector={}, adoption={"roles": {"names": ["old-*"]}})
    assert adoption_allowed([TENANTS, other], role(name="old-db", adopt=True), TENANT) is None


def test_adoption_respects_the_listed_paths() -> None:
    g = guardrail(namespaceSelector={}, adoption={"roles": {"names": ["*"], "paths": ["/legacy/"]}})
    assert adoption_allowed([g], role(path="/legacy/", adopt=True), {}) is None
    assert adoption_allowed([g], role(path="/", adopt=True), {}) is not None


def test_adoption_of_a_kind_not_listed_is_refused() -> None:
    violation = adoption_allowed([TENANTS], user(adopt=True), TENANT)
    assert violation is not None and violation.rule == Rule.ADOPTION


def test_an_unknown_account_matches_no_self_entry() -> None:
    view = role(trust_policy=trust(assume({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})))
    result = evaluate([TENANTS], view, TENANT)  # account_id unknown: refuse, never guess
    assert {v.rule for v in result.denied} == {Rule.TRUST_ACCOUNTS, Rule.TRUST_FOREIGN}


# --- accounts: which AWS accounts a namespace's entities may live in ----------------------

PINNED = guardrail("pinned", namespaceSelector={"matchLabels": TENANT}, accounts=[ACCOUNT, PARTNER])


@pytest.mark.parametrize("view", [GOOD_ROLE, GOOD_USER, GOOD_POLICY], ids=lambda v: v.kind)
@pytest.mark.parametrize(
    ("account_id", "allowed"),
    [(ACCOUNT, True), (PARTNER, True), (STRANGER, False), (None, False)],
)
def test_accounts_rule_allows_only_the_listed_accounts(
    view: EntityView, account_id: str | None, allowed: bool
) -> None:
    result = evaluate([PINNED], view, TENANT, account_id=account_id)
    assert {(v.guardrail, v.rule) for v in result.denied} == (
        set() if allowed else {("pinned", Rule.ACCOUNTS)}
    )


def test_accounts_rule_message_names_the_account_and_what_is_allowed() -> None:
    (violation,) = evaluate([PINNED], GOOD_ROLE, TENANT, account_id=STRANGER).denied
    assert violation.field == "metadata.namespace"
    assert STRANGER in violation.message and f"{ACCOUNT}, {PARTNER}" in violation.message
    assert violation.message.startswith("IAMGuardrail 'pinned', rule accounts (deny): ")


def test_accounts_rule_applies_only_to_the_selected_namespaces() -> None:
    assert evaluate([PINNED], GOOD_ROLE, {}, account_id=STRANGER).allowed


def test_an_empty_accounts_list_allows_no_account() -> None:
    nowhere = guardrail("nowhere", namespaceSelector={}, accounts=[])
    assert not evaluate([nowhere], GOOD_ROLE, {}, account_id=ACCOUNT).allowed


def test_accounts_rule_in_warn_mode_only_warns() -> None:
    warn = guardrail("w", namespaceSelector={}, enforcement="warn", accounts=[ACCOUNT])
    result = evaluate([warn], GOOD_ROLE, {}, account_id=STRANGER)
    assert result.allowed and [v.rule for v in result.warned] == [Rule.ACCOUNTS]


def test_the_tenant_example_parses_into_the_expected_model() -> None:
    assert TENANTS.roles.trust is not None
    assert TENANTS.roles.trust.accounts == ("self", PARTNER)
    assert TENANTS.permissions_boundary == ("arn:aws:iam::*:policy/tenant-boundary",)
    assert TENANTS.users.access_keys is False and TENANTS.limits.roles == 10


def _doc_guardrails() -> list[dict[str, Any]]:
    text = (REPO / "docs" / "guardrails.md").read_text()
    found = []
    for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL):
        found += [d for d in yaml.safe_load_all(block) if d and d.get("kind") == "IAMGuardrail"]
    return found


def test_docs_show_at_least_one_guardrail() -> None:
    assert _doc_guardrails()


@pytest.mark.parametrize("obj", _doc_guardrails(), ids=lambda o: o["metadata"]["name"])
def test_every_guardrail_in_the_docs_parses(obj: dict[str, Any]) -> None:
    assert parse_guardrail(obj).name == obj["metadata"]["name"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.namespaceSelector"),
        ({"namespaceSelector": {}, "permisionsBoundary": {}}, "spec.permisionsBoundary"),
        ({"namespaceSelector": {}, "enforcement": "block"}, "spec.enforcement"),
        ({"namespaceSelector": {}, "roles": {"names": ["{ns}-*"]}}, "spec.roles.names[0]"),
        ({"namespaceSelector": {}, "roles": {"paths": ["tenants/"]}}, "spec.roles.paths[0]"),
        ({"namespaceSelector": {}, "roles": {"maxSessionDuration": 50000}}, "spec.roles.maxSessionDuration"),
        ({"namespaceSelector": {}, "roles": {"trust": {"accounts": ["12345"]}}}, "spec.roles.trust.accounts[0]"),
        ({"namespaceSelector": {}, "roles": {"trust": {"foreignAccountsRequire": ["Token"]}}},
         "spec.roles.trust.foreignAccountsRequire[0]"),
        ({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
         "spec.namespaceSelector.matchExpressions[0].values"),
        ({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}},
         "spec.namespaceSelector.matchExpressions[0].values"),
        ({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}},
         "spec.namespaceSelector.matchExpressions[0].operator"),
        ({"namespaceSelector": {}, "permissionsBoundary": {"required": ["tenant-boundary"]}},
         "spec.permissionsBoundary.required[0]"),
        ({"namespaceSelector": {}, "permissionsBoundary": {}}, "spec.permissionsBoundary.required"),
        ({"namespaceSelector": {}, "managedPolicies": {"denied": ["arn:aws:iam::*"]}},
         "spec.managedPolicies.denied[0]"),
        ({"namespaceSelector": {}, "actions": {"denied": ["PassRole"]}}, "spec.actions.denied[0]"),
        ({"namespaceSelector": {}, "limits": {"roles": -1}}, "spec.limits.roles"),
        ({"namespaceSelector": {}, "users": {"allowed": "no"}}, "spec.users.allowed"),
        ({"namespaceSelector": {}, "adoption": {"roles": {"paths": ["/"]}}}, "spec.adoption.roles.names"),
        ({"namespaceSelector": {}, "accounts": ["1234"]}, "spec.accounts[0]"),
        ({"namespaceSelector": {}, "accounts": "111122223333"}, "spec.accounts"),
    ],
)
def test_parse_errors_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(GuardrailError) as caught:
        guardrail("bad", **spec)
    assert any(e.startswith(f"{field}:") for e in caught.value.errors), caught.value.errors


def test_parse_reports_every_error_at_once() -> None:
    with pytest.raises(GuardrailError) as caught:
        guardrail("bad", namespaceSelector={}, enforcement="x", limits={"roles": "ten"})
    assert len(caught.value.errors) == 2


def test_parse_requires_a_name_and_a_spec() -> None:
    with pytest.raises(GuardrailError) as caught:
        parse_guardrail({"kind": "IAMGuardrail", "metadata": {}})
    assert [e.split(":")[0] for e in caught.value.errors] == ["metadata.name", "spec"]


# --- the CRD ---------------------------------------------------------------------------

CRD: dict[str, Any] = yaml.safe_load((REPO / "crds" / "iamguardrails.yaml").read_text())
VERSION: dict[str, Any] = CRD["spec"]["versions"][0]
SPEC_SCHEMA: dict[str, Any] = VERSION["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_crd_identity() -> None:
    names = CRD["spec"]["names"]
    assert (CRD["metadata"]["name"], CRD["spec"]["scope"]) == ("iamguardrails.iam.rolekeeper.dev", "Cluster")
    assert (names["kind"], names["shortNames"], VERSION["name"]) == ("IAMGuardrail", ["iamgr"], "v1alpha1")


def test_crd_printer_columns() -> None:
    assert [c["name"] for c in VERSION["additionalPrinterColumns"]] == ["Enforcement", "Age"]


def _nodes(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _nodes(child, f"{path}.{name}")
    if "items" in node:
        found += _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _nodes(node["additionalProperties"], f"{path}{{}}")
    return found


def test_crd_describes_every_field() -> None:
    schema = VERSION["schema"]["openAPIV3Schema"]
    missing = [p for p, n in _nodes(schema, "") if "description" not in n and p != ".metadata"]
    assert missing == []


def _leaf_paths(value: Any, path: str = "spec") -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_leaf_paths(v, f"{path}.{k}") for k, v in value.items())) if value else {path}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return set().union(*(_leaf_paths(v, f"{path}[]") for v in value))
    return {path}


def _schema_leaves(node: dict[str, Any], path: str = "spec") -> set[str]:
    if "properties" in node:
        return set().union(*(_schema_leaves(c, f"{path}.{k}") for k, c in node["properties"].items()))
    if "items" in node and "properties" in node["items"]:
        return _schema_leaves(node["items"], f"{path}[]")
    return {path}


def test_crd_fields_are_exactly_what_the_parser_reads() -> None:
    full = {
        **TENANTS_SPEC,
        "namespaceSelector": {"matchLabels": {},  # a map: its keys are not fields
                              "matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]},
        "roles": {**TENANTS_SPEC["roles"], "serviceAccounts": {"namespaces": ["{namespace}"]}},
        "users": {**TENANTS_SPEC["users"], "allowed": True},
        "limits": {**TENANTS_SPEC["limits"], "policies": 3},
        "adoption": {kind: {"names": ["x-*"], "paths": ["/legacy/"]} for kind in ("roles", "users", "policies")},
        "accounts": [ACCOUNT],
    }
    guardrail(**full)  # the parser accepts every field ...
    assert _schema_leaves(SPEC_SCHEMA) == _leaf_paths(full)  # ... and the schema has them all
