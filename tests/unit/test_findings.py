"""Security findings (controller.core.findings) and the action catalogue behind them.

Covered: each finding id fires on a real positive document and stays silent on a real negative
one (AWS documentation samples and examples/), actions matched by meaning (wildcards,
NotAction), statement indices as the user wrote them, the least-privilege examples giving zero
findings, observed facts (unused role, old/idle key, console without MFA) with explicit times,
suppression (kept, marked, reasoned), severity order, and the catalogue's lazy data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.core import catalogue
from controller.core.findings import (
    RULES,
    SUPPRESS_ANNOTATION,
    Finding,
    Severity,
    console_findings,
    findings_for,
    key_findings,
    suppress,
    usage_findings,
)
from controller.core.view import EntityView
from controller.kinds.registry import view_of

EXAMPLES = Path(__file__).parents[2] / "examples"
OWN = "123456789012"
NOW = datetime(2026, 10, 1, tzinfo=UTC)


def role(trust: Mapping[str, Any] | None = None, **documents: Any) -> EntityView:
    docs = {f"spec.inlinePolicies.{name}": doc for name, doc in documents.items()}
    return EntityView("IAMRole", "team-a", "r", trust_policy=trust or SERVICE_TRUST, documents=docs)


def doc(*statements: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def trust(principal: Any, action: str = "sts:AssumeRole", condition: Any = None) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        statement["Condition"] = condition
    return doc(statement)


SERVICE_TRUST = trust({"Service": "ec2.amazonaws.com"})
GITHUB = f"arn:aws:iam::{OWN}:oidc-provider/token.actions.githubusercontent.com"
EKS_HOST = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
EKS = f"arn:aws:iam::{OWN}:oidc-provider/{EKS_HOST}"
GH_AUD = {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}


def github(sub: str, operator: str = "StringLike") -> dict[str, Any]:
    return trust({"Federated": GITHUB}, "sts:AssumeRoleWithWebIdentity",
                 {"StringEquals": GH_AUD, operator: {"token.actions.githubusercontent.com:sub": sub}})


def eks(sub: str, operator: str = "StringEquals") -> dict[str, Any]:
    return trust({"Federated": EKS}, "sts:AssumeRoleWithWebIdentity",
                 {operator: {f"{EKS_HOST}:sub": sub, f"{EKS_HOST}:aud": "sts.amazonaws.com"}})


# AWS documentation samples, as published (account ids as in the docs).
# AWS managed policy AdministratorAccess.
ADMINISTRATOR = doc(allow("*"))
# AWS managed policy PowerUserAccess (first statement).
POWER_USER = doc({"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"],
                  "Resource": "*"})
# EC2 User Guide, "Grant permissions to attach an IAM role to an instance".
EC2_PASS_SCOPED = doc(
    allow(["ec2:RunInstances", "ec2:AssociateIamInstanceProfile",
           "ec2:DisassociateIamInstanceProfile", "ec2:ReplaceIamInstanceProfileAssociation"]),
    allow("iam:PassRole", "arn:aws:iam::123456789012:role/DevTeam*"),
)
# The same, with the Resource "*" that the page's note warns against.
EC2_PASS_ANY = doc(EC2_PASS_SCOPED["Statement"][0], allow("iam:PassRole"))
# IAM User Guide, "Access to AWS accounts owned by third parties" (external id).
THIRD_PARTY = trust({"AWS": "111122223333"}, condition={"StringEquals": {"sts:ExternalId": "12345"}})
# IAM User Guide, cross-account trust to an account root, no condition.
ACCOUNT_ROOT = trust({"AWS": "arn:aws:iam::111122223333:root"})
# EKS User Guide, IRSA trust policy.
IRSA = eks("system:serviceaccount:default:my-service-account")


def ids(view: EntityView, account_id: str | None = None) -> list[str]:
    return [f.id for f in findings_for(view, account_id=account_id)]


def example_views() -> list[tuple[str, EntityView, str]]:
    """(file, view, the object's suppression annotation) of every example object."""
    out = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj and obj.get("kind") in ("IAMRole", "IAMUser"):
                notes = obj["metadata"].get("annotations") or {}
                out.append((path.name, view_of(obj), notes.get(SUPPRESS_ANNOTATION, "")))
    return out


POSITIVE = [
    ("RK-TRUST-001", role(trust("*"))),
    ("RK-TRUST-001", role(trust({"AWS": "*"}))),
    ("RK-TRUST-002", role(ACCOUNT_ROOT)),
    ("RK-TRUST-002", role(trust({"AWS": OWN}))),
    ("RK-TRUST-004", role(trust({"Federated": GITHUB}, "sts:AssumeRoleWithWebIdentity",
                                {"StringEquals": GH_AUD}))),
    ("RK-TRUST-004", role(eks("system:serviceaccount:a:b", "StringNotEquals"))),
    ("RK-TRUST-005", role(github("repo:*"))),
    ("RK-TRUST-005", role(github("*"))),
    ("RK-TRUST-005", role(eks("system:serviceaccount:*:web", "StringLike"))),
    ("RK-TRUST-006", role(github("repo:my-org/my-repo:*"))),
    ("RK-TRUST-006", role(eks("system:serviceaccount:team-a:*", "StringLike"))),
    ("RK-TRUST-007", role(trust({"Federated": GITHUB}, "sts:AssumeRole",
                                {"StringEquals": {"token.actions.githubusercontent.com:sub": "x"}}))),
    ("RK-TRUST-007", role(trust({"Service": "lambda.amazonaws.com"}, "sts:AssumeRoleWithWebIdentity"))),
    ("RK-TRUST-008", role(doc({"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::1:user/b"},
                               "Action": "sts:AssumeRole"}))),
    ("RK-PERM-001", role(admin=ADMINISTRATOR)),
    ("RK-PERM-002", role(p=doc(allow("s3:*")))),
    ("RK-PERM-003", role(p=EC2_PASS_ANY)),
    ("RK-PERM-003", role(p=doc(allow("iam:Pass*")))),
    ("RK-PERM-003", role(p=doc(allow("iam:*", "arn:aws:iam::123456789012:role/*")))),
    ("RK-PERM-004", role(p=POWER_USER)),
    ("RK-PERM-004", role(p=doc({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "x"}))),
    ("RK-PERM-005", role(p=EC2_PASS_ANY)),
    ("RK-PERM-005", role(p=doc(allow("iam:CreatePolicyVersion")))),
    ("RK-PERM-005", role(p=doc(allow("iam:PutRolePolicy")))),
    ("RK-PERM-005", role(p=doc(allow("iam:UpdateAssumeRolePolicy")))),
    ("RK-PERM-005", role(p=doc(allow("iam:CreateAccessKey", "arn:aws:iam::123456789012:user/*")))),
    ("RK-PERM-005", role(a=doc(allow("lambda:CreateFunction")), b=doc(allow("iam:PassRole")))),
    ("RK-PERM-008", role(p=doc(allow("s3:GetObjcet", "arn:aws:s3:::b/*")))),
    ("RK-PERM-008", role(p=doc(allow("s3x:GetObject", "arn:aws:s3:::b/*")))),
    ("RK-PERM-008", role(p=doc(allow("s3:Get*Objcet", "arn:aws:s3:::b/*")))),
    ("RK-PERM-008", role(p=doc({"Effect": "Deny", "Action": "s3:DeleteObjcet", "Resource": "*"}))),
    ("RK-PERM-009", role(p=doc(allow("s3:ListBucket", "arn:aws:s3:::b",
                                     Condition={"StringLike": {"s3:prefx": "home/"}})))),
    ("RK-PERM-009", role(trust({"AWS": "111122223333"}, condition={"StringEquals": {"sts:ExternalID2": "x"}}))),
]

NEGATIVE = [
    ("RK-TRUST-001", role(trust("*", condition={"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}))),
    ("RK-TRUST-002", role(THIRD_PARTY)),
    ("RK-TRUST-002", role(trust({"AWS": f"arn:aws:iam::{OWN}:role/ci"}))),
    ("RK-TRUST-004", role(IRSA)),
    ("RK-TRUST-004", role(github("repo:my-org/my-repo:ref:refs/heads/main", "StringEquals"))),
    ("RK-TRUST-005", role(github("repo:my-org/my-repo:*"))),
    ("RK-TRUST-005", role(github("repo:*", "StringEquals"))),
    ("RK-TRUST-006", role(github("repo:my-org/my-repo:ref:refs/heads/main"))),
    ("RK-TRUST-006", role(IRSA)),
    ("RK-TRUST-007", role(IRSA)),
    ("RK-TRUST-007", role(trust({"Service": "pods.eks.amazonaws.com"}, "sts:TagSession"))),
    ("RK-TRUST-007", role(trust({"Federated": GITHUB}, "sts:*",
                                {"StringEquals": {"token.actions.githubusercontent.com:sub": "x"}}))),
    ("RK-TRUST-008", role(doc({"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::1:user/b"},
                               "Action": "sts:AssumeRole"}))),
    ("RK-PERM-001", role(p=doc(allow("*", "arn:aws:s3:::b/*")))),
    ("RK-PERM-001", role(p=doc({"Effect": "Deny", "Action": "*", "Resource": "*"}))),
    ("RK-PERM-002", role(p=doc(allow("s3:Get*")))),
    ("RK-PERM-002", role(p=doc(allow("s3:*", "arn:aws:s3:::b/*")))),
    ("RK-PERM-003", role(p=EC2_PASS_SCOPED)),
    ("RK-PERM-003", role(p=POWER_USER)),  # NotAction iam:* excludes PassRole
    ("RK-PERM-003", role(p=doc(allow("iam:PassRole", f"arn:aws:iam::{OWN}:role/DevTeam*")))),
    ("RK-PERM-004", role(p=EC2_PASS_SCOPED)),
    ("RK-PERM-004", role(p=doc({"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}))),
    ("RK-PERM-005", role(p=EC2_PASS_SCOPED)),
    ("RK-PERM-005", role(p=doc(allow("iam:CreateAccessKey", "arn:aws:iam::*:user/${aws:username}")))),
    ("RK-PERM-005", role(p=doc(allow("lambda:CreateFunction")))),
    ("RK-PERM-008", role(p=doc(allow(["s3:GetObject", "s3:get*", "S3:PUTOBJECT"], "arn:aws:s3:::b/*")))),
    ("RK-PERM-009", role(p=doc(allow("s3:ListBucket", "arn:aws:s3:::b",
                                     Condition={"StringLike": {"s3:prefix": "home/"},
                                                "Bool": {"aws:SecureTransport": "true"},
                                                "StringEquals": {"aws:ResourceTag/team": "a"}})))),
    ("RK-PERM-009", role(IRSA)),
    ("RK-PERM-009", role(THIRD_PARTY)),
]


@pytest.mark.parametrize(("rule", "view"), POSITIVE, ids=[f"{r}-{i}" for i, (r, _) in enumerate(POSITIVE)])
def test_rule_fires(rule: str, view: EntityView) -> None:
    assert rule in ids(view)


@pytest.mark.parametrize(("rule", "view"), NEGATIVE, ids=[f"{r}-{i}" for i, (r, _) in enumerate(NEGATIVE)])
def test_rule_stays_silent(rule: str, view: EntityView) -> None:
    assert rule not in ids(view)


@pytest.mark.parametrize(("principal", "condition", "expected"), [
    ({"AWS": "arn:aws:iam::111122223333:root"}, None, True),
    ({"AWS": "arn:aws:iam::111122223333:role/ci"}, None, True),
    ({"AWS": "111122223333"}, {"StringEquals": {"sts:ExternalId": "12345"}}, False),
    ({"AWS": "111122223333"}, {"Bool": {"aws:MultiFactorAuthPresent": "true"}}, False),
    ({"AWS": f"arn:aws:iam::{OWN}:role/ci"}, None, False),
])
def test_foreign_account_needs_external_id_or_mfa(principal: Any, condition: Any, expected: bool) -> None:
    view = role(trust(principal, condition=condition))
    assert ("RK-TRUST-003" in ids(view, account_id=OWN)) is expected


def test_foreign_account_is_not_guessed_without_an_account_id() -> None:
    assert "RK-TRUST-003" not in ids(role(trust({"AWS": "arn:aws:iam::111122223333:role/ci"})))


@pytest.mark.parametrize(("arn", "rule"), [
    ("arn:aws:iam::aws:policy/AdministratorAccess", "RK-PERM-006"),
    ("arn:aws:iam::aws:policy/IAMFullAccess", "RK-PERM-007"),
    ("arn:aws:iam::aws:policy/PowerUserAccess", "RK-PERM-007"),
])
def test_administrator_managed_policies(arn: str, rule: str) -> None:
    view = EntityView("IAMRole", "a", "r", managed_policies=frozenset({arn}))
    assert ids(view) == [rule]


def test_read_only_managed_policy_is_fine() -> None:
    view = EntityView("IAMRole", "a", "r", managed_policies=frozenset(
        {"arn:aws:iam::aws:policy/ReadOnlyAccess", f"arn:aws:iam::{OWN}:policy/AdministratorAccess"}))
    assert ids(view) == []


@pytest.mark.parametrize(("access_keys", "kind", "expected"), [
    (True, "IAMUser", ["RK-USER-001"]),
    (False, "IAMUser", []),
])
def test_user_with_access_keys(access_keys: bool, kind: str, expected: list[str]) -> None:
    assert ids(EntityView(kind, "a", "u", access_keys=access_keys)) == expected


def test_field_names_the_statement_as_written() -> None:
    view = role(logs=doc(allow("logs:PutLogEvents", "arn:aws:logs:*:1:log-group:x"), allow("iam:PassRole")))
    [finding] = [f for f in findings_for(view) if f.id == "RK-PERM-003"]
    assert finding.field == "spec.inlinePolicies.logs.Statement[1].Action"


def test_single_statement_object_has_no_index() -> None:
    view = role(trust=None, p={"Statement": allow("iam:PassRole")})
    assert {f.field for f in findings_for(view)} == {"spec.inlinePolicies.p.Statement.Action"}


def test_administrator_statement_is_one_finding_not_four() -> None:
    assert ids(role(admin=ADMINISTRATOR)) == ["RK-PERM-001"]


def test_pass_role_escalation_points_at_the_service_action() -> None:
    view = role(a=doc(allow("lambda:CreateFunction")), b=doc(allow("iam:PassRole", "arn:aws:iam::1:role/*")))
    [finding] = [f for f in findings_for(view) if f.id == "RK-PERM-005"]
    assert finding.field == "spec.inlinePolicies.a.Statement[0].Action"


def test_findings_are_worst_first() -> None:
    view = role(trust("*"), p=doc(allow("s3:GetObjcet", "arn:aws:s3:::b/*")))
    severities = [f.severity for f in findings_for(view)]
    assert severities == sorted(severities, key=lambda s: s.rank) and severities[0] is Severity.CRITICAL


def test_every_finding_has_a_known_rule_and_an_aws_link() -> None:
    view = role(trust("*"), admin=ADMINISTRATOR, p=POWER_USER, q=doc(allow("s3:GetObjcet")))
    for finding in findings_for(view):
        assert RULES[finding.id].severity is finding.severity
        assert finding.link.startswith("https://docs.aws.amazon.com/")


@pytest.mark.parametrize(("name", "view", "suppressed"), example_views(),
                         ids=lambda v: v if isinstance(v, str) and v.endswith(".yaml") else "")
def test_examples_have_no_findings(name: str, view: EntityView, suppressed: str) -> None:
    """None unsuppressed; a suppression names each finding it accepts (ci-user: RK-USER-001)."""
    found = suppress(findings_for(view, account_id=OWN), suppressed)
    assert [f.id for f in found if not f.suppressed] == []
    assert {f.id for f in found} == {e.split("=")[0].strip() for e in suppressed.split(",") if e}


@pytest.mark.parametrize(("severity", "threshold", "expected"), [
    (Severity.CRITICAL, "high", True),
    (Severity.HIGH, "high", True),
    (Severity.MEDIUM, "HIGH", False),
    (Severity.INFO, Severity.INFO, True),
])
def test_severity_threshold(severity: Severity, threshold: str, expected: bool) -> None:
    assert severity.at_least(threshold) is expected


# --- observed facts ------------------------------------------------------------------


@pytest.mark.parametrize(("last_used", "created", "expected"), [
    (NOW - timedelta(days=91), NOW - timedelta(days=400), ["RK-UNUSED-001"]),
    (NOW - timedelta(days=3), NOW - timedelta(days=400), []),
    (None, NOW - timedelta(days=120), ["RK-UNUSED-001"]),
    (None, NOW - timedelta(days=10), []),
    (None, None, []),
])
def test_unused_role(last_used: datetime | None, created: datetime | None, expected: list[str]) -> None:
    found = usage_findings("role", "status.roleLastUsed", last_used=last_used, created=created, now=NOW)
    assert [f.id for f in found] == expected


def test_unused_days_is_a_setting() -> None:
    found = usage_findings("role", "status.roleLastUsed", last_used=NOW - timedelta(days=31), created=None, now=NOW, unused_days=30)
    assert [f.id for f in found] == ["RK-UNUSED-001"]


@pytest.mark.parametrize(("created", "last_used", "expected"), [
    (NOW - timedelta(days=100), NOW - timedelta(days=1), ["RK-USER-002"]),
    (NOW - timedelta(days=100), NOW - timedelta(days=95), ["RK-USER-002", "RK-USER-003"]),
    (NOW - timedelta(days=100), None, ["RK-USER-002", "RK-USER-003"]),
    (NOW - timedelta(days=10), None, []),
])
def test_access_key_age_and_use(created: datetime, last_used: datetime | None, expected: list[str]) -> None:
    found = key_findings(key_id="AKIAIOSFODNN7EXAMPLE", created=created, last_used=last_used, now=NOW)
    assert [f.id for f in found] == expected


@pytest.mark.parametrize(("password", "mfa", "expected"), [
    (True, 0, ["RK-USER-004"]), (True, 1, []), (False, 0, []),
])
def test_console_without_mfa(password: bool, mfa: int, expected: list[str]) -> None:
    assert [f.id for f in console_findings(has_console_password=password, mfa_devices=mfa)] == expected


# --- suppression ---------------------------------------------------------------------


def _two() -> tuple[Finding, ...]:
    return findings_for(role(trust("*"), p=doc(allow("s3:GetObjcet", "arn:aws:s3:::b/*"))))


def test_suppressed_findings_stay_listed_with_their_reason() -> None:
    found = suppress(_two(), "RK-PERM-008=vendor typo kept for compatibility, see TICKET-1")
    marked = {f.id: (f.suppressed, f.reason) for f in found}
    assert len(found) == 2
    assert marked["RK-PERM-008"] == (True, "vendor typo kept for compatibility, see TICKET-1")
    assert marked["RK-TRUST-001"] == (False, "")


def test_several_ids_each_with_its_reason() -> None:
    found = suppress(_two(), "RK-TRUST-001=public by design, RK-PERM-008 = known")
    assert {f.id: f.reason for f in found} == {"RK-TRUST-001": "public by design", "RK-PERM-008": "known"}


def test_suppression_without_a_reason_says_so() -> None:
    [finding] = [f for f in suppress(_two(), "RK-TRUST-001") if f.suppressed]
    assert finding.reason == "no reason given"


def test_suppressed_finding_json_shows_it() -> None:
    [finding] = [f for f in suppress(_two(), "RK-TRUST-001=ok") if f.suppressed]
    assert finding.to_json()["suppressed"] is True and finding.to_json()["reason"] == "ok"


# --- catalogue -------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "known"), [
    ("s3:GetObject", True), ("S3:getobject", True), ("s3:Get*", True), ("iam:Pass*", True),
    ("s3:GetObjcet", False), ("nosuchservice:Get", False), ("s3:../../x", False),
])
def test_catalogue_actions(action: str, known: bool) -> None:
    assert catalogue.action_known(action) is known


@pytest.mark.parametrize(("key", "known"), [
    ("aws:PrincipalOrgID", True), ("aws:PrincipalTag/team", True), ("s3:prefix", True),
    ("saml:aud", True), ("s3:prefx", False), ("aws:PrincipalOrgId2", False),
    (f"{EKS_HOST}:sub", None),
])
def test_catalogue_condition_keys(key: str, known: bool | None) -> None:
    assert catalogue.condition_key_known(key) is known


def test_catalogue_reports_its_data_version() -> None:
    assert (catalogue.version() or "").startswith("0.1.")
