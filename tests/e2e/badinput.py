"""The bad-input catalogue: malformed and hostile IAMRole/IAMUser specs and what each must cause.

Pure data (no cluster needed), so the unit tier can check docs/reliability.md lists every case:
`python -m tests.e2e.badinput` prints the Markdown table that the doc embeds.

Outcomes, from the earliest stop to the latest:

- `rejected`    the API server refuses it at `kubectl apply` (CRD schema or CEL rule); it is
                never stored, the operator never sees it, AWS gets no call.
- `InvalidSpec` stored, but Rolekeeper's own validation refuses it: Ready=False, reason
                InvalidSpec, and no AWS call at all (not even a read).
- `Conflict`    the name belongs to an entity Rolekeeper did not create: no write except the
                create AWS refuses because the name is taken (a new object creates without
                reading first), then reads.
- `DependencyNotReady`  a referenced policy, boundary or group does not exist: the operator
                reads AWS before writing and creates nothing (never half an entity); retried
                until the reference appears or the spec changes.
- `AWSError`    only AWS can know (a referenced policy or group that does not exist, a resource
                ARN IAM's grammar refuses): the writes listed happen, then Ready=False with AWS's
                message; nothing is retried until the spec changes or the next drift check.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.helpers import EC2_TRUST, manifest

Outcome = Literal["rejected", "InvalidSpec", "Conflict", "DependencyNotReady", "AWSError"]

ACCOUNT = "123456789012"
# Real AWS refuses these at the call; moto accepts them, so the suite's proxy answers for AWS
# (see RecordingProxy.rules): what that proves is the operator's reaction, not AWS's grammar.
NO_SUCH_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/rolekeeper-no-such-role"
NO_SUCH_BOUNDARY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/rolekeeper-no-such-boundary"



def _identity(**statement: Any) -> dict[str, Any]:
    body = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", **statement}
    return {"Version": "2012-10-17", "Statement": [{k: v for k, v in body.items() if v is not None}]}


def _trust(**statement: Any) -> dict[str, Any]:
    body = {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole", **statement}
    return {"Version": "2012-10-17", "Statement": [{k: v for k, v in body.items() if v is not None}]}


def _nested(depth: int, leaf: Any = "x") -> Any:
    """`depth` levels of single-key objects around `leaf` (what crashed Kopf's deepcopy at ~600)."""
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def _nested_list(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _condition(operator: str, key: str, value: Any) -> dict[str, Any]:
    return {"inlinePolicies": {"p": _identity(Condition={operator: {key: value}})}}


def _big_identity(statements: int) -> dict[str, Any]:
    """A document of about 120 characters per statement (whitespace does not count)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": f"S{i}", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::bucket-number-{i:05d}/prefix/of/some/length/*"}
        for i in range(statements)
    ]}


@dataclass(frozen=True)
class Case:
    """One hostile object: its spec (name filled in by `obj`), the outcome and the message."""

    id: str  # also metadata.name (a DNS label)
    what: str  # the input, in words, for the doc table
    outcome: Outcome
    fragment: str  # must appear in kubectl's error or in the Ready message
    spec: Mapping[str, Any] = field(default_factory=dict)
    kind: Literal["IAMRole", "IAMUser"] = "IAMRole"
    name_field: bool = True  # False: leave roleName/userName unset (defaulted from metadata.name)
    metadata_name: str = ""  # override metadata.name
    # AWSError cases: the writes that reach AWS, as (action, succeeded); every other outcome
    # makes none. A set: rejected calls may be retried (their count is not part of the contract).
    writes: frozenset[tuple[str, bool]] = frozenset()
    emulated: bool = False  # AWS's answer comes from the proxy (moto is lenient here)
    note: str = ""

    @property
    def name_key(self) -> str:
        return "roleName" if self.kind == "IAMRole" else "userName"

    def aws_name(self, prefix: str) -> str:
        return str(self.spec.get(self.name_key) or f"{prefix}-{self.id}"[:64])

    def obj(self, prefix: str) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.kind == "IAMRole":
            spec["assumeRolePolicy"] = EC2_TRUST
        if self.name_field:
            spec[self.name_key] = self.aws_name(prefix)
        spec.update(self.spec)
        spec = {k: v for k, v in spec.items() if v is not _OMIT}
        return manifest(self.kind, self.metadata_name or self.id, spec, namespace=None)


_OMIT: Any = object()  # a spec value that removes the key (e.g. the required trust policy)

W = frozenset


CASES: tuple[Case, ...] = (
    # --- names and paths ---------------------------------------------------------------------
    Case("name-with-space", "roleName `has space`", "rejected",
         "spec.roleName in body should match", {"roleName": "has space"}),
    Case("name-65-chars", "roleName of 65 characters", "rejected",
         "spec.roleName: Too long", {"roleName": "r" * 65}),
    Case("name-with-slash", "roleName `team/app` (a path in the name)", "rejected",
         "spec.roleName in body should match", {"roleName": "team/app"}),
    Case("name-non-ascii", "roleName `rôle-é` (letters outside ASCII)", "rejected",
         "spec.roleName in body should match", {"roleName": "rôle-é"}),
    Case("metadata-name-over-64", "no roleName and a 70-character metadata.name", "rejected",
         "metadata.name is longer than 64 characters", name_field=False,
         metadata_name="m" * 70),
    Case("user-name-with-star", "IAMUser userName `ci*`", "rejected",
         "spec.userName in body should match", {"userName": "ci*"}, kind="IAMUser"),
    Case("path-no-trailing-slash", "path `/apps`", "rejected",
         "spec.path in body should match", {"path": "/apps"}),
    # --- scalar types and ranges -------------------------------------------------------------
    Case("session-below-minimum", "maxSessionDuration 900", "rejected",
         "should be greater than or equal to 3600", {"maxSessionDuration": 900}),
    Case("session-above-maximum", "maxSessionDuration 50000", "rejected",
         "should be less than or equal to 43200", {"maxSessionDuration": 50000}),
    Case("session-as-string", 'maxSessionDuration `"1h"`', "rejected",
         "spec.maxSessionDuration in body must be of type integer", {"maxSessionDuration": "1h"}),
    Case("instance-profile-as-string", 'instanceProfile `"yes"`', "rejected",
         "spec.instanceProfile in body must be of type boolean", {"instanceProfile": "yes"}),
    Case("deletion-policy-unknown", "deletionPolicy `Orphan`", "rejected",
         'spec.deletionPolicy: Unsupported value: "Orphan"', {"deletionPolicy": "Orphan"}),
    Case("unknown-spec-field", "a misspelt field `roleNmae`", "rejected",
         'unknown field "spec.roleNmae"', {"roleNmae": "typo"}),
    Case("description-outside-latin1", "description with `Ω` (outside IAM's Latin-1 range)",
         "rejected", "spec.description in body should match", {"description": "Ω role"}),
    Case("description-1001-chars", "description of 1001 characters", "rejected",
         "spec.description: Too long", {"description": "d" * 1001}),
    # --- policy documents: shape -------------------------------------------------------------
    Case("trust-missing", "no assumeRolePolicy", "rejected",
         "spec.assumeRolePolicy: Required value", {"assumeRolePolicy": _OMIT}),
    Case("trust-as-json-string", "assumeRolePolicy as a JSON string", "rejected",
         "spec.assumeRolePolicy in body must be of type object",
         {"assumeRolePolicy": json.dumps(EC2_TRUST)}),
    Case("inline-as-json-string", "an inline policy as a JSON string", "rejected",
         "spec.inlinePolicies.p in body must be of type object",
         {"inlinePolicies": {"p": json.dumps(_identity())}}),
    Case("inline-policy-bad-name", "inline policy named `has space`", "rejected",
         "inline policy names must be 1 to 128", {"inlinePolicies": {"has space": _identity()}}),
    Case("policy-version-unknown", 'inline policy Version `"2012-10-18"`', "rejected",
         'spec.inlinePolicies.p.Version: Unsupported value: "2012-10-18"',
         {"inlinePolicies": {"p": {**_identity(), "Version": "2012-10-18"}}}),
    # --- managed policies and boundary -------------------------------------------------------
    Case("managed-policies-as-string", "managedPolicies as a single string", "rejected",
         "spec.managedPolicies in body must be of type array",
         {"managedPolicies": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}),
    Case("eleven-policies", "11 managed policies (the account's default quota is 10)",
         "InvalidSpec", "11 policies exceeds the limit 10",
         {"managedPolicies": [f"arn:aws:iam::aws:policy/P{i}" for i in range(11)]}),
    Case("twenty-one-policies", "21 managed policies (IAM's hard limit is 20)", "rejected",
         "must have at most 20 items",
         {"managedPolicies": [f"arn:aws:iam::aws:policy/P{i}" for i in range(21)]}),
    Case("duplicated-policy-arn", "the same policy ARN twice", "rejected",
         "spec.managedPolicies[1]: Duplicate value",
         {"managedPolicies": ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"] * 2}),
    Case("policy-name-not-arn", "managedPolicies `AmazonS3ReadOnlyAccess` (a name, not an ARN)",
         "rejected", "spec.managedPolicies[0] in body should match",
         {"managedPolicies": ["AmazonS3ReadOnlyAccess"]}),
    Case("boundary-not-arn", "permissionsBoundary `PowerUserAccess`", "rejected",
         "spec.permissionsBoundary in body should match",
         {"permissionsBoundary": "PowerUserAccess"}),
    Case("group-name-with-space", "IAMUser groups `[dev ops]`", "rejected",
         "spec.groups[0] in body should match", {"groups": ["dev ops"]}, kind="IAMUser"),
    # --- tags --------------------------------------------------------------------------------
    Case("fifty-one-tags", "51 tags", "rejected", "spec.tags: Too many: 51",
         {"tags": {f"k{i}": "v" for i in range(51)}}),
    Case("aws-tag-key", "tag key `aws:cloudformation:stack-name`", "rejected",
         "starting with 'aws:' are reserved by AWS",
         {"tags": {"aws:cloudformation:stack-name": "x"}}),
    Case("forged-owner-tag", "tag `rolekeeper.dev/owner: other-team/role` (forged ownership)",
         "rejected", "reserved for the operator's ownership tags",
         {"tags": {"rolekeeper.dev/owner": "other-team/role"}}),
    Case("tag-value-emoji", "tag value `🚀` (outside IAM's tag characters)", "rejected",
         "spec.tags.team in body should match", {"tags": {"team": "🚀"}}),
    Case("tag-value-zero-width-space", "tag value with U+200B (a format character)",
         "rejected", "spec.tags.team in body should match", {"tags": {"team": "a\u200bb"}}),
    Case("tag-key-with-tab", "tag key with a tab", "rejected",
         "tag keys may contain only", {"tags": {"bad\tkey": "x"}}),
    Case("tag-value-number", "tag value `3` (a number)", "rejected",
         "spec.tags.replicas in body must be of type string", {"tags": {"replicas": 3}}),
    # --- stored, refused by Rolekeeper before any AWS call -----------------------------------
    Case("identity-policy-with-principal", "Principal in an inline (identity) policy",
         "InvalidSpec", "Principal is not allowed in an identity policy",
         {"inlinePolicies": {"p": _identity(Principal="*")}}),
    Case("trust-notprincipal-allow", "NotPrincipal with Effect Allow in the trust policy",
         "InvalidSpec", "NotPrincipal with Effect Allow is not allowed",
         {"assumeRolePolicy": _trust(Principal=None, NotPrincipal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"})}),
    Case("trust-without-principal", "trust policy statement without Principal", "InvalidSpec",
         "Principal or NotPrincipal is required in a trust policy",
         {"assumeRolePolicy": _trust(Principal=None)}),
    Case("trust-with-resource", "Resource in the trust policy", "InvalidSpec",
         "Resource is not allowed in a trust policy", {"assumeRolePolicy": _trust(Resource="*")}),
    Case("principal-type-unknown", 'trust Principal `{"Account": ...}`', "rejected",
         'Statement[0].Principal" must validate at least one schema',
         {"assumeRolePolicy": _trust(Principal={"Account": ACCOUNT})}),
    Case("effect-lowercase", 'Effect `"allow"`', "InvalidSpec",
         "must be Allow or Deny (case-sensitive)",
         {"inlinePolicies": {"p": _identity(Effect="allow")}}),
    Case("statement-key-typo", "statement key `Actions`", "rejected",
         'Statement[0]" must validate at least one schema',
         {"inlinePolicies": {"p": _identity(Action=None, Actions="s3:GetObject")}}),
    Case("document-key-typo", "document key `Statment`", "rejected", "Statment",
         {"inlinePolicies": {"p": {"Version": "2012-10-17", "Statment": _identity()["Statement"]}}}),
    Case("statement-empty", "Statement `[]`", "InvalidSpec", "Statement: must not be empty",
         {"inlinePolicies": {"p": {"Version": "2012-10-17", "Statement": []}}}),
    Case("action-not-a-string", "Action `42`", "InvalidSpec",
         "must be a string or a non-empty list of strings",
         {"inlinePolicies": {"p": _identity(Action=42)}}),
    Case("action-without-service", "Action `GetObject` (no service prefix)", "InvalidSpec",
         "is not an action", {"inlinePolicies": {"p": _identity(Action="GetObject")}}),
    Case("resource-not-arn", "Resource `my-bucket/*`", "InvalidSpec", "is not an ARN or '*'",
         {"inlinePolicies": {"p": _identity(Resource="my-bucket/*")}}),
    Case("condition-operator-unknown", "Condition operator `StringEqualz`", "InvalidSpec",
         "unknown operator 'StringEqualz'",
         {"inlinePolicies": {"p": _identity(Condition={"StringEqualz": {"aws:username": "x"}})}}),
    Case("huge-trust-policy", "trust policy over IAM's 2,048 characters", "InvalidSpec",
         "exceeds the limit 2048",
         {"assumeRolePolicy": _trust(Principal={"AWS": [f"arn:aws:iam::{i:012d}:root" for i in range(80)]})}),
    Case("huge-inline-policies", "inline policies over IAM's 10,240 characters per role",
         "InvalidSpec", "exceeds the limit 10240",
         {"inlinePolicies": {"a": _big_identity(50), "b": _big_identity(50)}}),
    Case("user-inline-over-2048", "IAMUser inline policies over IAM's 2,048 characters",
         "InvalidSpec", "exceeds the limit 2048",
         {"inlinePolicies": {"a": _big_identity(20)}}, kind="IAMUser"),
    Case("forty-eight-tags", "48 tags (IAM allows 50; Rolekeeper needs 3 for ownership)",
         "InvalidSpec", "exceeds the limit 47", {"tags": {f"k{i}": "v" for i in range(48)}}),
    Case("tag-keys-differ-by-case", "tags `Team` and `team` (IAM ignores key case)",
         "InvalidSpec", "(IAM ignores case)", {"tags": {"Team": "a", "team": "b"}}),
    # --- issue 14: what crashed Kopf or was rounded, now refused by the structural schema ----
    Case("trust-nested-600-condition", "assumeRolePolicy with a Condition value nested 600 "
         "objects deep", "rejected", "must have at most 0 items",
         {"assumeRolePolicy": _trust(Condition={"StringEquals": {"aws:PrincipalTag/x": _nested(600)}})}),
    Case("trust-nested-600-unknown-key", "assumeRolePolicy with an unknown document key "
         "holding 600 levels", "rejected", 'unknown field "spec.assumeRolePolicy.Deep"',
         {"assumeRolePolicy": {**_trust(), "Deep": _nested(600)}}),
    Case("trust-nested-600-lists", "assumeRolePolicy Principal AWS as a list nested 600 deep",
         "rejected", "Statement[0].Principal",
         {"assumeRolePolicy": _trust(Principal={"AWS": _nested_list(600, f"arn:aws:iam::{ACCOUNT}:root")})}),
    Case("condition-number-over-2-53", "Condition value `99999999999999999999` (above 2^53: "
         "the API server would round it)", "rejected", "should be less than or equal to 9.007199254740991e+15",
         _condition("NumericLessThan", "aws:MultiFactorAuthAge", 99999999999999999999),
         note="kubectl and the API server read it as 1e+20: the message shows the rounded value"),
    Case("condition-number-below-minus-2-53", "Condition value `-99999999999999999999`",
         "rejected", "should be greater than or equal to -9.007199254740991e+15",
         _condition("NumericGreaterThan", "aws:MultiFactorAuthAge", -99999999999999999999)),
    Case("condition-float-1e300", "Condition value `1.5e300`", "rejected",
         "should be less than or equal to 9.007199254740991e+15",
         _condition("NumericLessThan", "aws:MultiFactorAuthAge", 1.5e300)),
    # --- more hostile documents: bounds of the structural schema -----------------------------
    Case("condition-value-object", "Condition value an object `{nested: x}`", "rejected",
         "must have at most 0 items", _condition("StringEquals", "aws:username", {"nested": "x"})),
    Case("condition-value-nested-list", "Condition value `[[x]]`", "rejected",
         "must have at most 0 items", _condition("StringEquals", "aws:username", [["x"]])),
    Case("condition-65-operators", "Condition with 65 operators", "rejected",
         "must have at most 64 items", {"inlinePolicies": {"p": _identity(Condition={
             f"StringEquals{'IfExists' if i % 2 else ''}{i}": {"aws:username": "x"}
             for i in range(65)})}}),
    Case("condition-1001-values", "Condition key with 1,001 values", "rejected",
         "must have at most 1000 items",
         _condition("StringEquals", "aws:username", [f"user-{i}" for i in range(1001)])),
    Case("statement-501", "501 statements in one document", "rejected",
         "must have at most 500 items", {"inlinePolicies": {"p": _big_identity(501)}}),
    Case("action-257-chars", "Action of 257 characters", "rejected", "Too long",
         {"inlinePolicies": {"p": _identity(Action="s3:" + "G" * 254)}}),
    Case("resource-2049-chars", "Resource of 2,049 characters", "rejected", "Too long",
         {"inlinePolicies": {"p": _identity(Resource="arn:aws:s3:::" + "b" * 2036)}}),
    Case("sid-129-chars", "Sid of 129 characters", "rejected", "Too long",
         {"inlinePolicies": {"p": _identity(Sid="S" * 129)}}),
    Case("principal-1001-accounts", "trust Principal AWS list of 1,001 accounts", "rejected",
         "must have at most 1000 items",
         {"assumeRolePolicy": _trust(Principal={"AWS": [f"{i:012d}" for i in range(1001)]})}),
    Case("action-and-notaction", "a statement with both Action and NotAction", "rejected",
         'Statement[0]" must validate at least one schema',
         {"inlinePolicies": {"p": _identity(NotAction="s3:PutObject")}}),
    Case("inline-101-policies", "101 inline policies", "rejected", "must have at most 100 items",
         {"inlinePolicies": {f"p{i}": _identity() for i in range(101)}}),
    Case("path-513-chars", "path of 513 characters", "rejected", "spec.path: Too long",
         {"path": "/" + "p" * 511 + "/"}),
    Case("tag-value-257-chars", "tag value of 257 characters", "rejected", "Too long",
         {"tags": {"team": "v" * 257}}),
    Case("description-with-nul", "description with a NUL character", "rejected",
         "spec.description in body should match", {"description": "a\u0000b"}),
    # --- more hostile documents: stored, refused by Rolekeeper before any AWS call ----------
    Case("statement-as-string", "Statement as a string (the schema lets this scalar through)",
         "InvalidSpec", "Statement: must be an object or a list of objects, got string",
         {"inlinePolicies": {"p": {"Version": "2012-10-17", "Statement": "allow everything"}}}),
    Case("effect-maybe", 'Effect `"Maybe"`', "InvalidSpec", "must be Allow or Deny",
         {"inlinePolicies": {"p": _identity(Effect="Maybe")}}),
    Case("action-empty-list", "Action `[]`", "InvalidSpec",
         "must be a string or a non-empty list of strings",
         {"inlinePolicies": {"p": _identity(Action=[])}}),
    Case("action-list-with-number", "Action `[s3:GetObject, 7]`", "InvalidSpec",
         "must be a string or a non-empty list of strings",
         {"inlinePolicies": {"p": _identity(Action=["s3:GetObject", 7])}}),
    Case("action-bidi-override", "Action with U+202E (right-to-left override) inside",
         "InvalidSpec", "is not an action",
         {"inlinePolicies": {"p": _identity(Action="s3:Get\u202eObject")}}),
    Case("action-wildcard-service", "Action `*:GetObject`", "InvalidSpec", "is not an action",
         {"inlinePolicies": {"p": _identity(Action="*:GetObject")}}),
    Case("resource-number", "Resource `12`", "InvalidSpec",
         "must be a string or a non-empty list of strings",
         {"inlinePolicies": {"p": _identity(Resource=12)}}),
    Case("principal-empty-object", "trust Principal `{}`", "InvalidSpec",
         "must name at least one principal", {"assumeRolePolicy": _trust(Principal={})}),
    Case("principal-arn-string", "trust Principal as a bare ARN string (not `*`)",
         "InvalidSpec", "must be '*' or an object",
         {"assumeRolePolicy": _trust(Principal=f"arn:aws:iam::{ACCOUNT}:root")}),
    Case("action-empty-string", 'Action `""`', "InvalidSpec", "is not an action",
         {"inlinePolicies": {"p": _identity(Action="")}}),
    Case("resource-empty-list", "Resource `[]`", "InvalidSpec",
         "must be a string or a non-empty list of strings",
         {"inlinePolicies": {"p": _identity(Resource=[])}}),
    Case("condition-value-empty-list", "Condition value `[]`", "InvalidSpec",
         "must be a string, number, boolean or a non-empty list of them",
         _condition("StringEquals", "aws:username", [])),
    Case("sid-with-space", "Sid `has space`", "InvalidSpec", "must contain only letters and digits",
         {"inlinePolicies": {"p": _identity(Sid="has space")}}),
    Case("condition-operator-typo-qualified", "Condition operator "
         "`ForAnyValue:StringEqualsIfExistz`", "InvalidSpec", "unknown operator",
         _condition("ForAnyValue:StringEqualsIfExistz", "aws:TagKeys", "x")),
    # --- names that belong to someone else ---------------------------------------------------
    Case("hand-made-role-name", "roleName of an existing role Rolekeeper did not create",
         "Conflict", "was not created by Rolekeeper", note="the hand-made role is unchanged"),
    Case("hand-made-user-name", "userName of an existing user Rolekeeper did not create",
         "Conflict", "was not created by Rolekeeper", kind="IAMUser",
         note="the hand-made user is unchanged"),
    # --- only AWS can know -------------------------------------------------------------------
    Case("no-such-managed-policy", "managedPolicies naming a policy that does not exist",
         "DependencyNotReady", "does not exist: nothing was created",
         {"managedPolicies": [f"arn:aws:iam::{ACCOUNT}:policy/rolekeeper-no-such-policy"]}),
    Case("no-such-group", "IAMUser groups naming a group that does not exist",
         "DependencyNotReady", "does not exist: nothing was created",
         {"groups": ["rolekeeper-no-such-group"]}, kind="IAMUser"),
    Case("resource-arn-malformed", "Resource `arn:aws:s3` (an ARN IAM's grammar refuses)",
         "AWSError", "MalformedPolicyDocument",
         {"inlinePolicies": {"p": _identity(Resource="arn:aws:s3")}},
         writes=W({("CreateRole", True), ("PutRolePolicy", False)}),
         note="the role exists without the inline policy until the spec is fixed"),
    Case("trust-names-missing-role", "trust policy naming a role that does not exist",
         "AWSError", "a principal in spec.assumeRolePolicy does not exist",
         {"assumeRolePolicy": _trust(Principal={"AWS": NO_SUCH_ROLE_ARN})},
         writes=W({("CreateRole", False)}), emulated=True,
         note="reported as Creating while retried for --principal-window, then AWSError"),
    Case("boundary-does-not-exist", "permissionsBoundary naming a policy that does not exist",
         "DependencyNotReady", "does not exist: nothing was created",
         {"permissionsBoundary": NO_SUCH_BOUNDARY_ARN}),
)


def by_id() -> dict[str, Case]:
    return {case.id: case for case in CASES}


STOPPED_AT = {
    "rejected": "kubectl apply",
    "InvalidSpec": "operator, before AWS",
    "Conflict": "operator, after AWS refuses the create",
    "DependencyNotReady": "operator, after reading AWS",
    "AWSError": "AWS",
}


def _writes(case: Case) -> str:
    if case.outcome == "rejected":
        return "none (never stored)"
    if case.outcome == "InvalidSpec":
        return "none (no call at all)"
    if case.outcome == "DependencyNotReady":
        return "none (reads only)"
    if not case.writes:
        return f"only Create{case.kind[3:]}, refused by AWS (name taken); then reads"
    order = {"Create": 0}
    shown = sorted(case.writes, key=lambda w: (order.get(w[0][:6], 1), w[0]))
    return ", ".join(f"{action} {'ok' if ok else 'refused'}" for action, ok in shown)


def markdown_table() -> str:
    """The catalogue as the Markdown table docs/reliability.md embeds."""
    lines = [
        "| id | kind | input | outcome | stopped at | message contains | AWS writes |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        outcome = case.outcome if case.outcome == "rejected" else f"Ready=False `{case.outcome}`"
        writes = _writes(case)
        if case.emulated:
            writes += " — AWS's answer emulated (moto accepts)"
        if case.note:
            writes += f"; {case.note}"
        fragment = case.fragment.replace("|", "\\|").replace("`", "'")
        what = case.what.replace("|", "\\|")
        lines.append(
            f"| `{case.id}` | {case.kind} | {what} | {outcome} | "
            f"{STOPPED_AT[case.outcome]} | `{fragment}` | {writes} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
