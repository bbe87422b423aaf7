"""Policy documents (controller.policy).

Covers:
- equivalence tables: documents that mean the same compare equal (string vs one-element
  list, order, duplicates, account id vs root ARN in any partition, condition scalars,
  Effect case, Statement shape, empty Principal, default Version, "*" principal), and
  documents that grant something else do not; each pair checked in both directions;
- realistic trust policies (EC2, Lambda, IRSA, cross-account ExternalId, SAML, a
  deleted role's unique id) as the user writes them and as AWS returns them;
- round trip: what we send (`to_json`) compares equal to what the user wrote, and
  canonicalising twice changes nothing, for every document in the tables;
- canonical form: key order, collapsed lists, Effect, root ARNs per partition,
  condition values as strings, empty Principal dropped, Sid kept;
- parse: dicts copied, JSON strings read, errors say what is wrong;
- describe_diff: exact lines for typical changes, [] when equivalent;
- size: whitespace outside strings is not counted;
- validate: one table row per grammar rule, realistic documents pass.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from controller.core.policy import (
    PolicyError,
    canonical,
    describe_diff,
    equivalent,
    parse,
    size,
    to_json,
    validate,
)

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
OIDC = "oidc.eks.us-east-1.amazonaws.com/id/ABC"
OIDC_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"
SAML_ARN = f"arn:aws:iam::{ACCOUNT}:saml-provider/Okta"
SAML_AUD = "https://signin.aws.amazon.com/saml"
ASSUME = "sts:AssumeRole"


def doc(*statements: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**top, "Statement": list(statements)}


def allow(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", **fields}


def deny(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Deny", **fields}


def read(**extra: Any) -> dict[str, Any]:
    """A small identity statement; `extra` replaces or adds fields."""
    return allow(**{"Action": "s3:GetObject", "Resource": "*", **extra})


def service(*names: str) -> dict[str, Any]:
    """A trust statement for AWS services."""
    return allow(Principal={"Service": list(names)}, Action=ASSUME)


def trusts(aws: Any, **extra: Any) -> dict[str, Any]:
    """A trust statement for an AWS principal (account, role, user)."""
    return allow(Principal={"AWS": aws}, Action=ASSUME, **extra)


def irsa(sub: Any = "system:serviceaccount:ns:sa", **conditions: Any) -> dict[str, Any]:
    equals = {f"{OIDC}:sub": sub, f"{OIDC}:aud": "sts.amazonaws.com", **conditions}
    return allow(
        Principal={"Federated": OIDC_ARN},
        Action="sts:AssumeRoleWithWebIdentity",
        Condition={"StringEquals": equals},
    )


def saml(aud: str = SAML_AUD, provider: str = SAML_ARN) -> dict[str, Any]:
    return allow(
        Principal={"Federated": provider},
        Action="sts:AssumeRoleWithSAML",
        Condition={"StringEquals": {"SAML:aud": aud}},
    )


def cond(**operators: Any) -> dict[str, Any]:
    return read(Condition=operators)


EQUAL = [
    # a string and a one-element list
    pytest.param(doc(read()), doc(read(Action=["s3:GetObject"])), id="action-string-vs-list"),
    pytest.param(
        doc(allow(NotAction="iam:*", Resource="*")),
        doc(allow(NotAction=["iam:*"], Resource="*")),
        id="notaction-string-vs-list",
    ),
    pytest.param(doc(read()), doc(read(Resource=["*"])), id="resource-string-vs-list"),
    pytest.param(
        doc(allow(Action="s3:*", NotResource="arn:aws:s3:::secret")),
        doc(allow(Action="s3:*", NotResource=["arn:aws:s3:::secret"])),
        id="notresource-string-vs-list",
    ),
    pytest.param(
        doc(allow(Principal={"Service": "ec2.amazonaws.com"}, Action=ASSUME)),
        doc(service("ec2.amazonaws.com")),
        id="service-principal-string-vs-list",
    ),
    pytest.param(
        doc(trusts(f"arn:aws:iam::{ACCOUNT}:role/ci")),
        doc(trusts([f"arn:aws:iam::{ACCOUNT}:role/ci"])),
        id="aws-principal-string-vs-list",
    ),
    pytest.param(
        doc(allow(Principal={"Federated": OIDC_ARN}, Action="sts:AssumeRoleWithWebIdentity")),
        doc(allow(Principal={"Federated": [OIDC_ARN]}, Action="sts:AssumeRoleWithWebIdentity")),
        id="federated-principal-string-vs-list",
    ),
    pytest.param(
        doc(cond(StringEquals={"aws:PrincipalTag/team": "a"})),
        doc(cond(StringEquals={"aws:PrincipalTag/team": ["a"]})),
        id="condition-value-string-vs-list",
    ),
    # order
    pytest.param(
        doc(read(Action=["s3:GetObject", "s3:ListBucket"])),
        doc(read(Action=["s3:ListBucket", "s3:GetObject"])),
        id="action-order",
    ),
    pytest.param(
        doc(read(Resource=["arn:aws:s3:::a", "arn:aws:s3:::b"])),
        doc(read(Resource=["arn:aws:s3:::b", "arn:aws:s3:::a"])),
        id="resource-order",
    ),
    pytest.param(
        doc(read(), deny(Action="s3:DeleteObject", Resource="*")),
        doc(deny(Action="s3:DeleteObject", Resource="*"), read()),
        id="statement-order",
    ),
    pytest.param(
        doc(service("ec2.amazonaws.com", "lambda.amazonaws.com")),
        doc(service("lambda.amazonaws.com", "ec2.amazonaws.com")),
        id="principal-value-order",
    ),
    pytest.param(
        doc(allow(Principal={"AWS": ACCOUNT, "Service": "ec2.amazonaws.com"}, Action=ASSUME)),
        doc(allow(Principal={"Service": "ec2.amazonaws.com", "AWS": ACCOUNT}, Action=ASSUME)),
        id="principal-type-order",
    ),
    pytest.param(
        doc(cond(Bool={"aws:SecureTransport": "true"}, IpAddress={"aws:SourceIp": "10.0.0.0/8"})),
        doc(cond(IpAddress={"aws:SourceIp": "10.0.0.0/8"}, Bool={"aws:SecureTransport": "true"})),
        id="condition-operator-order",
    ),
    pytest.param(
        doc(cond(StringEquals={"aws:PrincipalTag/a": "1", "aws:PrincipalTag/b": "2"})),
        doc(cond(StringEquals={"aws:PrincipalTag/b": "2", "aws:PrincipalTag/a": "1"})),
        id="condition-key-order",
    ),
    pytest.param(
        doc(cond(IpAddress={"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]})),
        doc(cond(IpAddress={"aws:SourceIp": ["192.168.0.0/16", "10.0.0.0/8"]})),
        id="condition-value-order",
    ),
    pytest.param(
        doc({"Resource": "*", "Action": "s3:GetObject", "Effect": "Allow"}),
        doc(read()),
        id="statement-key-order",
    ),
    pytest.param(
        {"Statement": [read()], "Version": "2012-10-17"},
        {"Version": "2012-10-17", "Statement": [read()]},
        id="top-level-key-order",
    ),
    # duplicates
    pytest.param(
        doc(read(Action=["s3:GetObject", "s3:GetObject"])),
        doc(read()),
        id="action-duplicates",
    ),
    pytest.param(doc(read(Resource=["*", "*"])), doc(read()), id="resource-duplicates"),
    pytest.param(
        doc(service("ec2.amazonaws.com", "ec2.amazonaws.com")),
        doc(service("ec2.amazonaws.com")),
        id="principal-duplicates",
    ),
    pytest.param(
        doc(cond(StringEquals={"aws:PrincipalTag/team": ["a", "a"]})),
        doc(cond(StringEquals={"aws:PrincipalTag/team": "a"})),
        id="condition-value-duplicates",
    ),
    pytest.param(doc(read(), read()), doc(read()), id="duplicate-statements"),
    # account id vs root ARN, in whichever partition AWS answers from
    pytest.param(
        doc(trusts(ACCOUNT)),
        doc(trusts(f"arn:aws:iam::{ACCOUNT}:root")),
        id="account-id-vs-root-arn",
    ),
    pytest.param(
        doc(trusts(ACCOUNT)),
        doc(trusts(f"arn:aws-cn:iam::{ACCOUNT}:root")),
        id="account-id-vs-root-arn-aws-cn",
    ),
    pytest.param(
        doc(trusts(ACCOUNT)),
        doc(trusts(f"arn:aws-us-gov:iam::{ACCOUNT}:root")),
        id="account-id-vs-root-arn-aws-us-gov",
    ),
    pytest.param(
        doc(trusts([ACCOUNT, OTHER_ACCOUNT])),
        doc(trusts([f"arn:aws:iam::{OTHER_ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:root"])),
        id="account-ids-in-list-vs-root-arns",
    ),
    pytest.param(
        doc(deny(NotPrincipal={"AWS": ACCOUNT}, Action=ASSUME)),
        doc(deny(NotPrincipal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, Action=ASSUME)),
        id="account-id-vs-root-arn-in-notprincipal",
    ),
    pytest.param(
        doc(trusts([ACCOUNT, f"arn:aws-cn:iam::{OTHER_ACCOUNT}:role/ci"])),
        doc(
            trusts([f"arn:aws-cn:iam::{ACCOUNT}:root", f"arn:aws-cn:iam::{OTHER_ACCOUNT}:role/ci"])
        ),
        id="account-id-next-to-aws-cn-role-arn",
    ),
    # condition scalars: IAM compares strings
    pytest.param(
        doc(cond(Bool={"aws:SecureTransport": True})),
        doc(cond(Bool={"aws:SecureTransport": "true"})),
        id="condition-true-vs-string",
    ),
    pytest.param(
        doc(cond(Bool={"aws:MultiFactorAuthPresent": False})),
        doc(cond(Bool={"aws:MultiFactorAuthPresent": "false"})),
        id="condition-false-vs-string",
    ),
    pytest.param(
        doc(cond(NumericLessThan={"aws:MultiFactorAuthAge": 3600})),
        doc(cond(NumericLessThan={"aws:MultiFactorAuthAge": "3600"})),
        id="condition-int-vs-string",
    ),
    pytest.param(
        doc(cond(NumericLessThan={"s3:max-keys": 1.5})),
        doc(cond(NumericLessThan={"s3:max-keys": "1.5"})),
        id="condition-float-vs-string",
    ),
    pytest.param(
        doc(cond(Null={"aws:TokenIssueTime": [True]})),
        doc(cond(Null={"aws:TokenIssueTime": "true"})),
        id="condition-bool-in-list-vs-string",
    ),
    # shape
    pytest.param(doc(allow(Action="s3:GetObject", Resource="*")), doc(read()), id="effect-same"),
    pytest.param(doc(read(Effect="allow")), doc(read()), id="effect-lowercase"),
    pytest.param(doc(read(Effect="DENY")), doc(read(Effect="Deny")), id="effect-uppercase"),
    pytest.param({"Statement": read()}, doc(read()), id="statement-object-vs-list"),
    pytest.param(doc(read(Principal={})), doc(read()), id="empty-principal-vs-missing"),
    pytest.param(
        doc(read(Principal={"AWS": []})), doc(read()), id="empty-aws-principal-vs-missing"
    ),
    pytest.param(doc(read(Condition={})), doc(read()), id="empty-condition-vs-missing"),
    pytest.param(doc(read()), doc(read(), Version="2012-10-17"), id="missing-version-is-2012"),
    pytest.param(
        doc(read(), Version=datetime.date(2012, 10, 17)),
        doc(read(), Version="2012-10-17"),
        id="yaml-date-version",
    ),
    pytest.param(
        doc(allow(Principal="*", Action=ASSUME)),
        doc(allow(Principal={"AWS": "*"}, Action=ASSUME)),
        id="star-vs-aws-star-principal",
    ),
    pytest.param(
        doc(allow(Principal="*", Action=ASSUME)),
        doc(allow(Principal={"AWS": ["*"]}, Action=ASSUME)),
        id="star-vs-aws-star-list-principal",
    ),
    pytest.param(
        doc(read(Sid="Read"), Id="logs"),
        doc(read(Sid="Read"), Id="logs"),
        id="same-sid-and-id",
    ),
    # inputs: botocore hands dicts, users may hand JSON strings
    pytest.param(json.dumps(doc(read())), doc(read()), id="json-string-vs-dict"),
    pytest.param(
        json.dumps(doc(read()), indent=4),
        json.dumps(doc(read()), separators=(",", ":")),
        id="json-whitespace",
    ),
    # realistic trust policies: as written in a spec vs as AWS returns them
    pytest.param(
        doc(allow(Principal={"Service": "ec2.amazonaws.com"}, Action=ASSUME)),
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": [ASSUME],
                    "Principal": {"Service": ["ec2.amazonaws.com"]},
                    "Effect": "Allow",
                }
            ],
        },
        id="ec2-trust",
    ),
    pytest.param(
        json.dumps(doc(service("lambda.amazonaws.com"))),
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": ASSUME,
                }
            ],
        },
        id="lambda-trust-json-string",
    ),
    pytest.param(
        doc(irsa()),
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": [OIDC_ARN]},
                    "Action": ["sts:AssumeRoleWithWebIdentity"],
                    "Condition": {
                        "StringEquals": {
                            f"{OIDC}:aud": ["sts.amazonaws.com"],
                            f"{OIDC}:sub": ["system:serviceaccount:ns:sa"],
                        }
                    },
                }
            ],
        },
        id="irsa-trust",
    ),
    pytest.param(
        doc(trusts(OTHER_ACCOUNT, Condition={"StringEquals": {"sts:ExternalId": "s3cr3t"}})),
        doc(
            trusts(
                f"arn:aws:iam::{OTHER_ACCOUNT}:root",
                Condition={"StringEquals": {"sts:ExternalId": ["s3cr3t"]}},
            ),
            Version="2012-10-17",
        ),
        id="cross-account-external-id",
    ),
    pytest.param(
        doc(saml()),
        json.dumps(doc(saml(), Version="2012-10-17"), indent=2),
        id="saml-trust",
    ),
]

NOT_EQUAL = [
    # what is allowed
    pytest.param(doc(read()), doc(read(Action="s3:PutObject")), id="other-action"),
    pytest.param(
        doc(read()), doc(read(Action=["s3:GetObject", "s3:PutObject"])), id="action-added"
    ),
    pytest.param(doc(read()), doc(read(Action="s3:*")), id="action-vs-wildcard"),
    pytest.param(doc(read()), doc(read(Effect="Deny")), id="effect-allow-vs-deny"),
    pytest.param(
        doc(read()), doc(read(Resource="arn:aws:s3:::bucket/*")), id="resource-vs-wildcard"
    ),
    pytest.param(
        doc(read(Resource="*")),
        doc(allow(Action="s3:GetObject", NotResource="*")),
        id="resource-vs-notresource",
    ),
    pytest.param(
        doc(read()), doc(allow(NotAction="s3:GetObject", Resource="*")), id="action-vs-notaction"
    ),
    # who is trusted
    pytest.param(
        doc(service("ec2.amazonaws.com")),
        doc(service("lambda.amazonaws.com")),
        id="other-service-principal",
    ),
    pytest.param(
        doc(service("ec2.amazonaws.com")),
        doc(service("ec2.amazonaws.com", "lambda.amazonaws.com")),
        id="service-principal-added",
    ),
    pytest.param(doc(trusts(ACCOUNT)), doc(trusts(OTHER_ACCOUNT)), id="other-account"),
    pytest.param(
        doc(trusts(ACCOUNT)),
        doc(trusts(f"arn:aws:iam::{OTHER_ACCOUNT}:root")),
        id="account-id-vs-other-root-arn",
    ),
    pytest.param(
        doc(trusts(ACCOUNT)),
        doc(trusts(f"arn:aws:iam::{ACCOUNT}:role/ci")),
        id="account-vs-role-in-account",
    ),
    pytest.param(
        doc(trusts(f"arn:aws:iam::{ACCOUNT}:root")),
        doc(trusts(f"arn:aws-cn:iam::{ACCOUNT}:root")),
        id="root-arns-in-two-partitions",
    ),
    pytest.param(
        doc(trusts(f"arn:aws:iam::{ACCOUNT}:role/deleted")),
        doc(trusts("AROA1234567890EXAMPLE")),
        id="role-arn-vs-unique-id-of-deleted-role",
    ),
    pytest.param(
        doc(allow(Principal={"AWS": "ec2.amazonaws.com"}, Action=ASSUME)),
        doc(service("ec2.amazonaws.com")),
        id="same-value-other-principal-type",
    ),
    pytest.param(
        doc(allow(Principal="*", Action=ASSUME)), doc(trusts(ACCOUNT)), id="star-vs-account"
    ),
    pytest.param(
        doc(allow(Principal={}, Action=ASSUME)),
        doc(allow(Principal="*", Action=ASSUME)),
        id="empty-principal-vs-star",
    ),
    pytest.param(
        doc(deny(Principal={"AWS": ACCOUNT}, Action=ASSUME)),
        doc(deny(NotPrincipal={"AWS": ACCOUNT}, Action=ASSUME)),
        id="principal-vs-notprincipal",
    ),
    # conditions
    pytest.param(
        doc(read()), doc(cond(Bool={"aws:SecureTransport": "true"})), id="condition-added"
    ),
    pytest.param(
        doc(cond(Bool={"aws:SecureTransport": "true"})),
        doc(cond(Bool={"aws:SecureTransport": "false"})),
        id="condition-value",
    ),
    pytest.param(
        doc(cond(StringEquals={"aws:PrincipalTag/team": "a"})),
        doc(cond(StringLike={"aws:PrincipalTag/team": "a"})),
        id="condition-operator",
    ),
    pytest.param(
        doc(cond(StringEquals={"aws:PrincipalTag/team": "a"})),
        doc(cond(StringEqualsIfExists={"aws:PrincipalTag/team": "a"})),
        id="condition-operator-ifexists",
    ),
    pytest.param(
        doc(cond(StringEquals={"aws:TagKeys": "a"})),
        doc(cond(**{"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}})),
        id="condition-operator-set-prefix",
    ),
    pytest.param(
        doc(cond(StringEquals={"aws:PrincipalTag/team": "a"})),
        doc(cond(StringEquals={"aws:PrincipalTag/group": "a"})),
        id="condition-key",
    ),
    pytest.param(
        doc(cond(StringEquals={"aws:PrincipalTag/team": ["a", "b"]})),
        doc(cond(StringEquals={"aws:PrincipalTag/team": "a"})),
        id="condition-value-removed",
    ),
    # case: IAM matches condition values and ARNs as written
    pytest.param(
        doc(irsa()), doc(irsa(sub="system:serviceaccount:NS:sa")), id="condition-value-case"
    ),
    # documented choices: AWS stores these as sent, so a difference is one update, no loop
    pytest.param(
        doc(cond(Bool={"aws:SecureTransport": "true"})),
        doc(cond(Bool={"aws:securetransport": "true"})),
        id="condition-key-case",
    ),
    pytest.param(doc(read()), doc(read(Action="s3:getobject")), id="action-case"),
    pytest.param(doc(read(Sid="Read")), doc(read(Sid="ReadObjects")), id="sid"),
    pytest.param(doc(read(Sid="Read")), doc(read()), id="sid-removed"),
    # statements and versions
    pytest.param(doc(read()), doc(read(), deny(Action="s3:*", Resource="*")), id="extra-statement"),
    pytest.param(doc(read()), doc(), id="missing-statement"),
    pytest.param(
        doc(read(), Version="2008-10-17"),
        doc(read(), Version="2012-10-17"),
        id="version-2008-vs-2012",
    ),
    pytest.param(doc(read(), Version="2008-10-17"), doc(read()), id="version-2008-vs-default"),
    # realistic trust policies
    pytest.param(doc(irsa()), doc(irsa(sub="system:serviceaccount:ns:other")), id="irsa-other-sa"),
    pytest.param(
        doc(irsa()),
        doc(
            allow(
                Principal={"Federated": OIDC_ARN},
                Action="sts:AssumeRoleWithWebIdentity",
                Condition={"StringEquals": {f"{OIDC}:sub": "system:serviceaccount:ns:sa"}},
            )
        ),
        id="irsa-without-aud",
    ),
    pytest.param(
        doc(irsa()),
        doc(irsa(**{f"{OIDC}:aud": "sts.amazonaws.com.cn"})),
        id="irsa-other-aud",
    ),
    pytest.param(
        doc(trusts(OTHER_ACCOUNT, Condition={"StringEquals": {"sts:ExternalId": "s3cr3t"}})),
        doc(trusts(OTHER_ACCOUNT, Condition={"StringEquals": {"sts:ExternalId": "other"}})),
        id="cross-account-other-external-id",
    ),
    pytest.param(
        doc(trusts(OTHER_ACCOUNT, Condition={"StringEquals": {"sts:ExternalId": "s3cr3t"}})),
        doc(trusts(OTHER_ACCOUNT)),
        id="cross-account-without-external-id",
    ),
    pytest.param(doc(saml()), doc(saml(aud="https://example.com/saml")), id="saml-other-aud"),
    pytest.param(
        doc(saml()),
        doc(saml(provider=f"arn:aws:iam::{ACCOUNT}:saml-provider/AzureAD")),
        id="saml-other-provider",
    ),
    pytest.param(
        doc(saml()),
        doc({**saml(), "Action": "sts:AssumeRoleWithWebIdentity"}),
        id="saml-other-action",
    ),
    pytest.param(
        doc(service("ec2.amazonaws.com")),
        doc(allow(Principal={"Service": "ec2.amazonaws.com"}, Action="sts:TagSession")),
        id="ec2-other-sts-action",
    ),
]

ALL_DOCUMENTS = [
    pytest.param(document, id=f"{param.id}-{side}")
    for param in [*EQUAL, *NOT_EQUAL]
    for side, document in zip("ab", param.values, strict=True)
]


# --- equivalence -------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal(a: Any, b: Any) -> None:
    assert equivalent(a, b)


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_reversed(a: Any, b: Any) -> None:
    assert equivalent(b, a)


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_documents_have_no_diff(a: Any, b: Any) -> None:
    assert describe_diff(a, b) == []


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_not_equal(a: Any, b: Any) -> None:
    assert not equivalent(a, b)


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_not_equal_reversed(a: Any, b: Any) -> None:
    assert not equivalent(b, a)


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_not_equal_documents_have_a_diff(a: Any, b: Any) -> None:
    assert describe_diff(a, b) != []


# --- round trip: what we send must compare equal to what the user wrote ------------


@pytest.mark.parametrize("document", ALL_DOCUMENTS)
def test_sent_document_is_equivalent_to_spec(document: Any) -> None:
    assert equivalent(document, to_json(document))


@pytest.mark.parametrize("document", ALL_DOCUMENTS)
def test_canonical_is_idempotent(document: Any) -> None:
    once = canonical(document)
    assert canonical(once) == once


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_spec_with_account_id_matches_what_aws_returns_in_its_partition(partition: str) -> None:
    spec = doc(trusts(ACCOUNT))
    returned = json.loads(to_json(spec, partition=partition))
    assert describe_diff(returned, spec) == []


# --- canonical form ----------------------------------------------------------------


def test_canonical_collapses_one_element_lists_to_strings() -> None:
    spec = doc(allow(Action=["s3:GetObject"], Resource=["*"]))
    assert canonical(spec)["Statement"] == [read()]


def test_canonical_keeps_lists_of_several_values_sorted() -> None:
    spec = doc(read(Action=["s3:PutObject", "s3:GetObject", "s3:GetObject"]))
    assert canonical(spec)["Statement"][0]["Action"] == ["s3:GetObject", "s3:PutObject"]


def test_canonical_puts_version_first_with_default() -> None:
    assert list(canonical({"Statement": read()})) == ["Version", "Statement"]
    assert canonical({"Statement": read()})["Version"] == "2012-10-17"


def test_canonical_makes_statement_a_list() -> None:
    assert canonical({"Statement": read()})["Statement"] == [read()]


def test_canonical_statement_key_order() -> None:
    statement = {
        "Condition": {"Bool": {"aws:SecureTransport": "true"}},
        "Action": ASSUME,
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Effect": "Allow",
        "Sid": "Ec2",
    }
    keys = list(canonical(doc(statement))["Statement"][0])
    assert keys == ["Sid", "Effect", "Principal", "Action", "Condition"]


def test_canonical_sorts_statements() -> None:
    first, second = read(Action="a:A"), read(Action="b:B")
    assert canonical(doc(second, first))["Statement"] == [first, second]


def test_canonical_capitalises_effect() -> None:
    assert canonical(doc(read(Effect="deny")))["Statement"][0]["Effect"] == "Deny"


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_canonical_account_id_becomes_root_arn_of_partition(partition: str) -> None:
    principal = canonical(doc(trusts(ACCOUNT)), partition)["Statement"][0]["Principal"]
    assert principal == {"AWS": f"arn:{partition}:iam::{ACCOUNT}:root"}


def test_canonical_account_id_only_in_aws_principals() -> None:
    statement = canonical(doc(cond(StringEquals={"aws:PrincipalAccount": ACCOUNT})))
    assert statement["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:PrincipalAccount": ACCOUNT}
    }


def test_canonical_condition_values_are_strings() -> None:
    spec = doc(cond(Bool={"aws:SecureTransport": True}, NumericLessThan={"s3:max-keys": 5}))
    assert canonical(spec)["Statement"][0]["Condition"] == {
        "Bool": {"aws:SecureTransport": "true"},
        "NumericLessThan": {"s3:max-keys": "5"},
    }


@pytest.mark.parametrize("empty", [{}, {"AWS": []}])
def test_canonical_drops_empty_principal(empty: dict[str, Any]) -> None:
    assert "Principal" not in canonical(doc(read(Principal=empty)))["Statement"][0]


def test_canonical_star_principal() -> None:
    statement = canonical(doc(allow(Principal="*", Action=ASSUME)))["Statement"][0]
    assert statement["Principal"] == {"AWS": "*"}


def test_canonical_keeps_sid_and_id() -> None:
    result = canonical(doc(read(Sid="ReadObjects"), Id="logs"))
    assert (result["Id"], result["Statement"][0]["Sid"]) == ("logs", "ReadObjects")


def test_canonical_keeps_unknown_keys_for_validate_to_report() -> None:
    assert canonical(doc(read(Foo="bar")))["Statement"][0]["Foo"] == "bar"


def test_to_json_is_compact_with_sorted_keys() -> None:
    expected = (
        '{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow",'
        '"Principal":{"AWS":"arn:aws:iam::123456789012:root"}}],"Version":"2012-10-17"}'
    )
    assert to_json(doc(trusts([ACCOUNT]))) == expected


# --- parse -------------------------------------------------------------------------


def test_parse_reads_json_string() -> None:
    assert parse('{"Statement": []}') == {"Statement": []}


def test_parse_copies_dict_deeply() -> None:
    spec = doc(read(Action=["s3:GetObject"]))
    parse(spec)["Statement"][0]["Action"].append("s3:PutObject")
    assert spec["Statement"][0]["Action"] == ["s3:GetObject"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            '{"a": 1 "b": 2}',
            "not valid JSON: Expecting ',' delimiter at line 1 column 9",
            id="invalid-json",
        ),
        pytest.param("", "not valid JSON: Expecting value at line 1 column 1", id="empty-string"),
        pytest.param("[]", "must be a JSON object, got array", id="array"),
        pytest.param("5", "must be a JSON object, got number", id="number"),
        pytest.param('"policy"', "must be a JSON object, got string", id="string"),
        pytest.param("null", "must be a JSON object, got null", id="null"),
    ],
)
def test_parse_error_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as error:
        parse(text)
    assert str(error.value) == message


def test_parse_rejects_values_json_cannot_carry() -> None:
    with pytest.raises(PolicyError, match=r"set .* is not a JSON value"):
        parse(doc(read(Action={"s3:GetObject"})))


def test_policy_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        equivalent("{", doc(read()))


# --- describe_diff -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "lines"),
    [
        pytest.param(
            doc(service("ec2.amazonaws.com")),
            doc(service("ec2.amazonaws.com", "lambda.amazonaws.com")),
            ["Statement[0].Principal.Service: + lambda.amazonaws.com"],
            id="service-added",
        ),
        pytest.param(
            doc(read(Action=["s3:GetObject", "s3:ListBucket"])),
            doc(read(Action="s3:ListBucket")),
            ["Statement[0].Action: - s3:GetObject"],
            id="action-removed",
        ),
        pytest.param(
            doc(read()),
            doc(read(Action="s3:PutObject")),
            ["Statement[0].Action: - s3:GetObject", "Statement[0].Action: + s3:PutObject"],
            id="action-replaced",
        ),
        pytest.param(
            doc(read()),
            doc(read(Effect="Deny")),
            ["Statement[0].Effect: Allow -> Deny"],
            id="effect-changed",
        ),
        pytest.param(
            doc(read()),
            doc(read(), Version="2008-10-17"),
            ["Version: 2012-10-17 -> 2008-10-17"],
            id="version-changed",
        ),
        pytest.param(
            doc(irsa()),
            doc(irsa(sub="system:serviceaccount:ns:other")),
            [
                f'Statement[0].Condition.StringEquals["{OIDC}:sub"]: - system:serviceaccount:ns:sa',
                f'Statement[0].Condition.StringEquals["{OIDC}:sub"]: + system:serviceaccount:ns:other',
            ],
            id="irsa-subject-changed",
        ),
        pytest.param(
            doc(read()),
            doc(cond(Bool={"aws:SecureTransport": True})),
            ['Statement[0].Condition: + {"Bool":{"aws:SecureTransport":"true"}}'],
            id="condition-added",
        ),
        pytest.param(
            doc(trusts(ACCOUNT)),
            doc(trusts(OTHER_ACCOUNT)),
            [
                f"Statement[0].Principal.AWS: - arn:aws:iam::{ACCOUNT}:root",
                f"Statement[0].Principal.AWS: + arn:aws:iam::{OTHER_ACCOUNT}:root",
            ],
            id="account-replaced",
        ),
        pytest.param(
            doc(read()),
            doc(read(), deny(Action="s3:DeleteObject", Resource="*")),
            ['Statement[0]: + {"Action":"s3:DeleteObject","Effect":"Deny","Resource":"*"}'],
            id="statement-added",
        ),
        pytest.param(
            None,
            doc(read()),
            [
                "Version: + 2012-10-17",
                'Statement[0]: + {"Action":"s3:GetObject","Effect":"Allow","Resource":"*"}',
            ],
            id="from-nothing",
        ),
        pytest.param(
            doc(read()),
            None,
            [
                "Version: - 2012-10-17",
                'Statement[0]: - {"Action":"s3:GetObject","Effect":"Allow","Resource":"*"}',
            ],
            id="to-nothing",
        ),
        pytest.param(None, None, [], id="nothing-to-nothing"),
    ],
)
def test_describe_diff(old: Any, new: Any, lines: list[str]) -> None:
    assert describe_diff(old, new) == lines


# --- size --------------------------------------------------------------------------


def test_size_ignores_whitespace_outside_strings() -> None:
    spec = doc(read())
    assert size(json.dumps(spec, indent=8)) == size(json.dumps(spec, separators=(",", ":")))


def test_size_counts_whitespace_inside_strings() -> None:
    assert size(doc(read(Sid="A"))) < size(doc(read(Resource="arn:aws:s3:::my bucket")))


def test_size_is_length_of_what_we_send() -> None:
    spec = doc(trusts(ACCOUNT))
    assert size(spec) == len(to_json(spec))


def test_size_counts_a_non_ascii_character_once() -> None:
    plain = doc(cond(StringEquals={"aws:PrincipalTag/city": "Zurich"}))
    accented = doc(cond(StringEquals={"aws:PrincipalTag/city": "Z\u00fcrich"}))
    assert size(accented) == size(plain)


# --- validate ----------------------------------------------------------------------

FIELD = "spec.policy"
TRUST = doc(service("ec2.amazonaws.com"), Version="2012-10-17")
IDENTITY = doc(read(), Version="2012-10-17")


def trust_with(**fields: Any) -> dict[str, Any]:
    return doc({**service("ec2.amazonaws.com"), **fields})


def identity_with(**fields: Any) -> dict[str, Any]:
    return doc({**read(), **fields})


def without(statement: dict[str, Any], *keys: str) -> dict[str, Any]:
    return doc({k: v for k, v in statement.items() if k not in keys})


S0 = f"{FIELD}.Statement[0]"

INVALID = [
    # document
    pytest.param(
        "identity",
        "{",
        [
            f"{FIELD}: not valid JSON: Expecting property name "
            "enclosed in double quotes at line 1 column 2"
        ],
        id="json",
    ),
    pytest.param("identity", "[]", [f"{FIELD}: must be a JSON object, got array"], id="array"),
    pytest.param("identity", {}, [f"{FIELD}: Statement is required"], id="no-statement"),
    pytest.param(
        "identity", doc(), [f"{FIELD}.Statement: must not be empty"], id="empty-statement"
    ),
    pytest.param(
        "identity",
        {"Statement": "Allow"},
        [f"{FIELD}.Statement: must be an object or a list of objects, got string"],
        id="statement-string",
    ),
    pytest.param(
        "identity",
        doc(read(), Version="2012-10-18"),
        [f"{FIELD}.Version: must be 2012-10-17 or 2008-10-17, got '2012-10-18'"],
        id="version",
    ),
    pytest.param(
        "identity",
        doc(read(), Versoin="2012-10-17"),
        [f"{FIELD}: unknown key 'Versoin' (allowed: Version, Id, Statement)"],
        id="unknown-top-level-key",
    ),
    pytest.param("identity", doc(read(), Id=5), [f"{FIELD}.Id: must be a string"], id="id"),
    # statement
    pytest.param(
        "identity",
        {"Statement": ["Allow"]},
        [f"{S0}: must be an object, got string"],
        id="statement-not-object",
    ),
    pytest.param(
        "identity",
        identity_with(Actions="s3:GetObject"),
        [
            f"{S0}: unknown key 'Actions' (allowed: Sid, Effect, Principal, NotPrincipal, "
            "Action, NotAction, Resource, NotResource, Condition)"
        ],
        id="unknown-statement-key",
    ),
    pytest.param(
        "identity",
        identity_with(Sid="read-objects"),
        [f"{S0}.Sid: must contain only letters and digits, got 'read-objects'"],
        id="sid-hyphen",
    ),
    pytest.param(
        "identity", without(read(), "Effect"), [f"{S0}: Effect is required"], id="no-effect"
    ),
    pytest.param(
        "identity",
        identity_with(Effect="Permit"),
        [f"{S0}.Effect: must be Allow or Deny, got 'Permit'"],
        id="effect-permit",
    ),
    pytest.param(
        "identity",
        identity_with(Effect="allow"),
        [f"{S0}.Effect: must be Allow or Deny (case-sensitive), got 'allow'"],
        id="effect-lowercase",
    ),
    pytest.param(
        "identity",
        {"Statement": read(Effect="Permit")},
        [f"{FIELD}.Statement.Effect: must be Allow or Deny, got 'Permit'"],
        id="single-statement-object-path",
    ),
    # actions
    pytest.param(
        "identity",
        identity_with(NotAction="iam:*"),
        [f"{S0}: use exactly one of Action or NotAction, not both"],
        id="action-and-notaction",
    ),
    pytest.param(
        "identity",
        without(read(), "Action"),
        [f"{S0}: Action or NotAction is required"],
        id="no-action",
    ),
    pytest.param(
        "identity",
        identity_with(Action="s3GetObject"),
        [f"{S0}.Action: 's3GetObject' is not an action; expected 'service:ActionName' or '*'"],
        id="action-without-service",
    ),
    pytest.param(
        "identity",
        identity_with(Action=[]),
        [f"{S0}.Action: must be a string or a non-empty list of strings"],
        id="action-empty-list",
    ),
    pytest.param(
        "identity",
        identity_with(Action=["s3:GetObject", 5]),
        [f"{S0}.Action: must be a string or a non-empty list of strings"],
        id="action-not-string",
    ),
    # identity policies
    pytest.param(
        "identity",
        identity_with(Principal={"AWS": ACCOUNT}),
        [f"{S0}: Principal is not allowed in an identity policy"],
        id="identity-principal",
    ),
    pytest.param(
        "identity",
        identity_with(NotPrincipal={"AWS": ACCOUNT}),
        [f"{S0}: NotPrincipal is not allowed in an identity policy"],
        id="identity-notprincipal",
    ),
    pytest.param(
        "identity",
        without(read(), "Resource"),
        [f"{S0}: Resource or NotResource is required"],
        id="identity-no-resource",
    ),
    pytest.param(
        "identity",
        identity_with(NotResource="arn:aws:s3:::secret"),
        [f"{S0}: use exactly one of Resource or NotResource, not both"],
        id="identity-resource-and-notresource",
    ),
    pytest.param(
        "identity",
        identity_with(Resource="my-bucket"),
        [f"{S0}.Resource: 'my-bucket' is not an ARN or '*'"],
        id="identity-resource-not-arn",
    ),
    # trust policies
    pytest.param(
        "trust",
        without(service("ec2.amazonaws.com"), "Principal"),
        [f"{S0}: Principal or NotPrincipal is required in a trust policy"],
        id="trust-no-principal",
    ),
    pytest.param(
        "trust",
        trust_with(NotPrincipal={"AWS": ACCOUNT}, Effect="Deny"),
        [f"{S0}: use exactly one of Principal or NotPrincipal, not both"],
        id="trust-principal-and-notprincipal",
    ),
    pytest.param(
        "trust",
        doc(allow(NotPrincipal={"AWS": ACCOUNT}, Action=ASSUME)),
        [f"{S0}: NotPrincipal with Effect Allow is not allowed"],
        id="trust-notprincipal-allow",
    ),
    pytest.param(
        "trust",
        trust_with(Resource="*"),
        [f"{S0}: Resource is not allowed in a trust policy"],
        id="trust-resource",
    ),
    pytest.param(
        "trust",
        trust_with(Principal={"Services": "ec2.amazonaws.com"}),
        [
            f"{S0}.Principal: unknown principal type 'Services' "
            "(allowed: AWS, CanonicalUser, Federated, Service)"
        ],
        id="trust-principal-type",
    ),
    pytest.param(
        "trust",
        trust_with(Principal="ec2.amazonaws.com"),
        [
            f"{S0}.Principal: must be '*' or an object such as {{\"Service\": ...}}, "
            "got 'ec2.amazonaws.com'"
        ],
        id="trust-principal-string",
    ),
    pytest.param(
        "trust",
        trust_with(Principal={}),
        [f"{S0}.Principal: must name at least one principal"],
        id="trust-principal-empty",
    ),
    pytest.param(
        "trust",
        trust_with(Principal={"AWS": []}),
        [f"{S0}.Principal.AWS: must be a string or a non-empty list of strings"],
        id="trust-principal-empty-list",
    ),
    # conditions
    pytest.param(
        "identity",
        identity_with(Condition=["Bool"]),
        [f"{S0}.Condition: must be an object of operator -> {{key: value}}"],
        id="condition-not-object",
    ),
    pytest.param(
        "identity",
        identity_with(Condition={"StringEqual": {"aws:PrincipalTag/team": "a"}}),
        [f"{S0}.Condition: unknown operator 'StringEqual'"],
        id="condition-unknown-operator",
    ),
    pytest.param(
        "identity",
        identity_with(Condition={"NullIfExists": {"aws:TokenIssueTime": "true"}}),
        [f"{S0}.Condition: unknown operator 'NullIfExists'"],
        id="condition-null-ifexists",
    ),
    pytest.param(
        "identity",
        identity_with(Condition={"Bool": "aws:SecureTransport"}),
        [f"{S0}.Condition.Bool: must be an object of key -> value"],
        id="condition-operator-not-object",
    ),
    pytest.param(
        "identity",
        identity_with(Condition={"StringEquals": {"aws:PrincipalTag/team": {"a": 1}}}),
        [
            f"{S0}.Condition.StringEquals.aws:PrincipalTag/team: must be a string, number, "
            "boolean or a non-empty list of them"
        ],
        id="condition-value-object",
    ),
    pytest.param(
        "trust",
        doc(irsa(sub=[])),
        [
            f'{S0}.Condition.StringEquals["{OIDC}:sub"]: must be a string, number, '
            "boolean or a non-empty list of them"
        ],
        id="condition-value-empty-list",
    ),
]

VALID = [
    pytest.param("trust", TRUST, id="ec2-trust"),
    pytest.param("trust", doc(service("lambda.amazonaws.com")), id="lambda-trust"),
    pytest.param("trust", doc(irsa()), id="irsa-trust"),
    pytest.param(
        "trust",
        doc(trusts(OTHER_ACCOUNT, Condition={"StringEquals": {"sts:ExternalId": "s3cr3t"}})),
        id="cross-account-trust",
    ),
    pytest.param("trust", doc(saml()), id="saml-trust"),
    pytest.param("trust", json.dumps(TRUST), id="json-string"),
    pytest.param("trust", {"Statement": service("ec2.amazonaws.com")}, id="statement-object"),
    pytest.param("trust", doc(allow(Principal="*", Action=ASSUME)), id="star-principal"),
    pytest.param(
        "trust", doc(deny(NotPrincipal={"AWS": ACCOUNT}, Action=ASSUME)), id="notprincipal-deny"
    ),
    pytest.param("trust", trust_with(Sid=""), id="empty-sid"),
    pytest.param("identity", IDENTITY, id="identity"),
    pytest.param("identity", doc(read(), Version="2008-10-17"), id="version-2008"),
    pytest.param("identity", identity_with(Action=["s3:Get*", "s3:List?ucket"]), id="wildcards"),
    pytest.param("identity", identity_with(Action="*"), id="action-star"),
    pytest.param("identity", identity_with(Sid="ReadObjects1"), id="sid"),
    pytest.param(
        "identity",
        identity_with(Condition={"ForAnyValue:StringLikeIfExists": {"aws:TagKeys": ["a*"]}}),
        id="condition-set-operator-ifexists",
    ),
    pytest.param(
        "identity",
        identity_with(Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": 3600}}),
        id="condition-number",
    ),
]


@pytest.mark.parametrize(("kind", "document", "errors"), INVALID)
def test_validate_reports(kind: Any, document: Any, errors: list[str]) -> None:
    assert validate(document, kind, FIELD) == errors


@pytest.mark.parametrize(("kind", "document"), VALID)
def test_validate_accepts(kind: Any, document: Any) -> None:
    assert validate(document, kind, FIELD) == []


def test_validate_reports_every_statement() -> None:
    document = doc(read(Effect="Permit"), read(Action="s3GetObject"))
    assert [e.split(":")[0] for e in validate(document, "identity", FIELD)] == [
        f"{FIELD}.Statement[0].Effect",
        f"{FIELD}.Statement[1].Action",
    ]


@pytest.mark.parametrize("block", [{}, {"aws:SourceVpc": None}], ids=["pruned-by-the-api-server", "null-in-yaml"])
def test_a_condition_operator_without_a_key_is_refused_both_ways(block: dict[str, Any]) -> None:
    """plan sees the null; the operator sees what the API server stored after pruning it ({});
    both must refuse, or plan and operator disagree about one manifest."""
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"StringEquals": block}}]}
    assert validate(doc, "identity", "spec.p") != []
