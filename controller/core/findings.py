"""Security findings on what an object asks of IAM, from AWS's own guidance, with where and a fix.

Rolekeeper sees every document before it reaches AWS, so it can say what is dangerous, in which
spec field, and how to fix it: the operator (status.findings), `rolekeeper plan` and
`rolekeeper lint` all call `findings_for` on the kind-neutral `EntityView`. Observed facts (role
last used, access-key age and use, console password without MFA) come from AWS and are judged
by `usage_findings`, `key_findings` and `console_findings`, which take the times as arguments:
nothing here reads a clock.

Judgement calls, each deliberate:

- Actions are matched by meaning, case-insensitively as IAM does: "iam:*", "iam:Pass*", "*" and
  a NotAction that does not exclude it all grant iam:PassRole.
- Conditions are not evaluated except where a rule names the keys it looks for (sts:ExternalId,
  MFA, an OIDC provider's `:sub`). A condition can narrow a grant, but rarely turns "every role"
  into "one role"; a reviewer who knows better suppresses with a reason.
- "Broad" resources are "*", NotResource, and ARNs ending in ":*" or "/*" ("every role"); a
  prefix such as "role/team-a-*" is taken as scoped.
- Statement indices are those the user wrote (not the canonical order), so a finding's field
  is the line a reviewer sees.
- Suppression never drops a finding: it is kept, marked, with the reason given.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from controller.core import catalogue
from controller.core.view import EntityView

__all__ = [
    "RULES",
    "SUPPRESS_ANNOTATION",
    "Finding",
    "Rule",
    "Severity",
    "console_findings",
    "findings_for",
    "key_findings",
    "parse_suppressions",
    "suppress",
    "usage_findings",
]

SUPPRESS_ANNOTATION = "iam.rolekeeper.dev/suppress-findings"


class Severity(enum.StrEnum):
    """How bad a finding is; ordered CRITICAL > HIGH > MEDIUM > LOW > INFO."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for CRITICAL up to 4 for INFO: sorts the worst first."""
        return list(Severity).index(self)

    def at_least(self, threshold: Severity | str) -> bool:
        """True when this severity is `threshold` or worse (`--fail-on high`)."""
        return self.rank <= Severity(str(threshold).lower()).rank


@dataclass(frozen=True)
class Rule:
    """What a finding id means: its fixed severity, a title and the AWS page it comes from."""

    id: str
    severity: Severity
    title: str
    link: str


@dataclass(frozen=True)
class Finding:
    """One thing to fix, where (a spec field path with statement index), and how."""

    id: str
    severity: Severity
    field: str
    message: str
    link: str
    suppressed: bool = False
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """The shape of one `status.findings[]` item and of `lint --format json`."""
        out: dict[str, Any] = {
            "id": self.id,
            "severity": str(self.severity),
            "field": self.field,
            "message": self.message,
            "link": self.link,
        }
        if self.suppressed:
            out["suppressed"] = True
            out["reason"] = self.reason
        return out


_GUIDE = "https://docs.aws.amazon.com/IAM/latest/UserGuide/"
_CHECKS = _GUIDE + "access-analyzer-reference-policy-checks.html"
_BEST = _GUIDE + "best-practices.html"

RULES: Mapping[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule("RK-TRUST-001", Severity.CRITICAL, "Any AWS principal may assume the role",
             _GUIDE + "reference_policies_elements_principal.html"),
        Rule("RK-TRUST-002", Severity.MEDIUM, "An account root is trusted without conditions",
             _GUIDE + "reference_policies_elements_principal.html"),
        Rule("RK-TRUST-003", Severity.MEDIUM,
             "Another account is trusted without sts:ExternalId or MFA",
             _GUIDE + "id_roles_create_for-user_externalid.html"),
        Rule("RK-TRUST-004", Severity.HIGH, "A web identity trust has no subject condition",
             _GUIDE + "id_roles_create_for-idp_oidc.html"),
        Rule("RK-TRUST-005", Severity.HIGH,
             "A web identity subject wildcard admits any repository or namespace",
             _GUIDE + "id_roles_create_for-idp_oidc.html"),
        Rule("RK-TRUST-006", Severity.LOW,
             "A web identity subject wildcard admits any branch or service account",
             _GUIDE + "id_roles_create_for-idp_oidc.html"),
        Rule("RK-TRUST-007", Severity.MEDIUM,
             "The trust statement's action does not fit its principal",
             _GUIDE + "id_roles_create_for-idp.html"),
        Rule("RK-TRUST-008", Severity.HIGH, "Allow with NotPrincipal trusts almost everyone",
             _GUIDE + "reference_policies_elements_notprincipal.html"),
        Rule("RK-PERM-001", Severity.CRITICAL, "Every action on every resource",
             _BEST + "#grant-least-privilege"),
        Rule("RK-PERM-002", Severity.MEDIUM, "Every action of a service on every resource",
             _BEST + "#grant-least-privilege"),
        Rule("RK-PERM-003", Severity.HIGH, "iam:PassRole on every role",
             _CHECKS + "#access-analyzer-reference-policy-checks-security-warning-pass-role-with-star-in-resource"),  # noqa: E501
        Rule("RK-PERM-004", Severity.MEDIUM, "Allow with NotAction or NotResource",
             _GUIDE + "reference_policies_elements_notaction.html"),
        Rule("RK-PERM-005", Severity.HIGH, "Actions that let the holder raise its own privileges",
             _GUIDE + "access_policies_boundaries.html"),
        Rule("RK-PERM-006", Severity.CRITICAL, "An administrator managed policy is attached",
             _GUIDE + "access_policies_job-functions.html"),
        Rule("RK-PERM-007", Severity.HIGH, "A managed policy with full IAM or power-user access",
             _GUIDE + "access_policies_job-functions.html"),
        Rule("RK-PERM-008", Severity.MEDIUM, "An action that does not exist", _CHECKS),
        Rule("RK-PERM-009", Severity.LOW, "A condition key that does not exist", _CHECKS),
        Rule("RK-USER-001", Severity.MEDIUM, "A user with long-term access keys for a workload",
             _BEST + "#bp-workloads-use-roles"),
        Rule("RK-USER-002", Severity.MEDIUM, "An access key older than the rotation period",
             _BEST + "#rotate-credentials"),
        Rule("RK-USER-003", Severity.MEDIUM, "An access key not used for a long time",
             _BEST + "#remove-credentials"),
        Rule("RK-USER-004", Severity.HIGH, "Console access without MFA",
             _BEST + "#enable-mfa-for-privileged-users"),
        Rule("RK-UNUSED-001", Severity.LOW, "An identity not used for a long time",
             _BEST + "#remove-credentials"),
    )
}  # fmt: skip


def _finding(rule_id: str, field: str, message: str) -> Finding:
    rule = RULES[rule_id]
    return Finding(rule.id, rule.severity, field, message, rule.link)


# --- entry points ------------------------------------------------------------------


def findings_for(view: EntityView, *, account_id: str | None = None) -> tuple[Finding, ...]:
    """Every finding on what `view` asks of IAM, worst first.

    `account_id` is the account the entity lives in; without it a trusted account cannot be
    told foreign (RK-TRUST-003 needs it), which is the case of an offline `lint`.
    """
    found: list[Finding] = []
    if view.trust_policy is not None:
        found += _trust_findings(view.trust_policy, "spec.assumeRolePolicy", account_id)
        found += _catalogue_findings(view.trust_policy, "spec.assumeRolePolicy")
    for field, document in view.documents.items():
        found += _permission_findings(document, field)
        found += _catalogue_findings(document, field)
    found += _escalation_findings(view.documents)
    found += _managed_policy_findings(view.managed_policies)
    if view.access_keys:  # only a kind with access keys (users) sets it
        found.append(_finding(
            "RK-USER-001", "spec.accessKey",
            "Access keys stored in a Secret of this cluster serve a workload that a role would "
            "serve better: give its ServiceAccount an IAMRole (IRSA or EKS Pod Identity) and "
            "remove spec.accessKey; long-term keys leak and never expire.",
        ))  # fmt: skip
    return _ordered(_without_subsumed(found))


def usage_findings(
    noun: str,
    field: str,
    *,
    last_used: datetime | None,
    created: datetime | None,
    now: datetime,
    unused_days: int = 90,
) -> tuple[Finding, ...]:
    """RK-UNUSED-001 for a role (RoleLastUsed) or user (last sign-in or key use) left idle.

    Never used counts from `created`; with neither time known nothing is said.
    """
    since = last_used or created
    if since is None or (now - since).days < unused_days:
        return ()
    idle = (now - since).days
    what = "used" if last_used else "used since it was created"
    return (_finding(
        "RK-UNUSED-001", field,
        f"This {noun} has not been {what} for {idle} days (limit {unused_days}): if "
        "nothing needs it, delete the object; unused identities are standing access nobody "
        "watches.",
    ),)  # fmt: skip


def key_findings(
    *,
    key_id: str,
    created: datetime,
    last_used: datetime | None,
    now: datetime,
    max_age_days: int = 90,
    unused_days: int = 90,
) -> tuple[Finding, ...]:
    """RK-USER-002 (older than `max_age_days`) and RK-USER-003 (idle, from GetAccessKeyLastUsed).

    The key id is not secret (AWS prints it in CloudTrail); the secret key never reaches here.
    """
    found: list[Finding] = []
    age = (now - created).days
    if age >= max_age_days:
        found.append(_finding(
            "RK-USER-002", "spec.accessKey",
            f"Access key {key_id} is {age} days old (limit {max_age_days}): set "
            f"spec.accessKey.rotateAfter to at most {max_age_days}d so Rolekeeper rotates it, "
            "or move the workload to a role.",
        ))  # fmt: skip
    idle = (now - (last_used or created)).days
    if idle >= unused_days:
        what = f"not been used for {idle} days" if last_used else f"never been used in {idle} days"
        found.append(_finding(
            "RK-USER-003", "spec.accessKey",
            f"Access key {key_id} has {what} (limit {unused_days}): remove spec.accessKey "
            "if nothing uses it.",
        ))  # fmt: skip
    return tuple(found)


def console_findings(*, has_console_password: bool, mfa_devices: int) -> tuple[Finding, ...]:
    """RK-USER-004: a user who can sign in to the console with no MFA device."""
    if not has_console_password or mfa_devices > 0:
        return ()
    return (_finding(
        "RK-USER-004", "spec",
        "This user has a console password and no MFA device: enable MFA for it, or delete "
        "the login profile if nobody signs in as this user.",
    ),)  # fmt: skip


def parse_suppressions(annotation_value: str) -> dict[str, str]:
    """`RK-PERM-003=reason, RK-TRUST-002=other reason` -> {id: reason}.

    Entries are separated by commas, semicolons or newlines that start another id, so a reason
    may itself contain commas. An id without a reason is kept with "no reason given", so status
    shows that nobody said why.
    """
    out: dict[str, str] = {}
    for match in _SUPPRESSION.finditer(annotation_value or ""):
        out[match["id"].upper()] = (match["reason"] or "").strip() or "no reason given"
    return out


def suppress(findings: Iterable[Finding], annotation_value: str) -> tuple[Finding, ...]:
    """Mark the findings whose id the annotation lists, with its reason; drop none."""
    reasons = parse_suppressions(annotation_value)
    return tuple(
        replace(f, suppressed=True, reason=reasons[f.id]) if f.id in reasons else f
        for f in findings
    )


_ID = r"RK-[A-Za-z]+-\d{3}"
_SUPPRESSION = re.compile(
    rf"(?P<id>{_ID})\s*(?:[=:]\s*(?P<reason>.*?))?\s*(?=[,;\n]\s*{_ID}|$)", re.DOTALL
)


def _ordered(found: Iterable[Finding]) -> tuple[Finding, ...]:
    unique = dict.fromkeys(found)  # the same finding twice says nothing more
    return tuple(sorted(unique, key=lambda f: (f.severity.rank, f.field, f.id, f.message)))


def _without_subsumed(found: list[Finding]) -> list[Finding]:
    # "Every action on every resource" already says PassRole and escalation; repeating them on
    # the same statement buries the one fix (scope the statement) under three.
    everything = {f.field.rsplit(".", 1)[0] for f in found if f.id == "RK-PERM-001"}
    return [
        f
        for f in found
        if f.id not in ("RK-PERM-002", "RK-PERM-003", "RK-PERM-004", "RK-PERM-005")
        or f.field.rsplit(".", 1)[0] not in everything
    ]


# --- statements as written ---------------------------------------------------------


class _Statement(NamedTuple):
    """One statement, its values as lists of strings, with the path a user reads."""

    path: str
    allow: bool
    actions: tuple[str, ...] | None  # None: the statement uses NotAction
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_resource: bool
    principals: Mapping[str, tuple[str, ...]]
    not_principal: bool
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...]  # (operator, key, values)

    @property
    def broad(self) -> bool:
        """Applies to every resource, or to every resource of a type."""
        return self.not_resource or any(_broad(r) for r in self.resources)

    def grants(self, action: str) -> bool:
        """This statement names `action` (by pattern or by not excluding it)."""
        if self.actions is None:
            return not any(_matches(p, action) for p in self.not_actions)
        return any(_matches(p, action) for p in self.actions)

    def condition_keys(self) -> set[str]:
        return {key.lower() for _, key, _ in self.conditions}


def _statements(document: Mapping[str, Any], field: str) -> Iterator[_Statement]:
    raw = document.get("Statement", [])
    listed = isinstance(raw, list)
    for index, statement in enumerate(raw if listed else [raw]):
        if isinstance(statement, Mapping):
            path = f"{field}.Statement[{index}]" if listed else f"{field}.Statement"
            yield _statement(statement, path)


def _statement(raw: Mapping[str, Any], path: str) -> _Statement:
    principal_key = "NotPrincipal" if "NotPrincipal" in raw else "Principal"
    return _Statement(
        path=path,
        allow=str(raw.get("Effect", "")).lower() == "allow",
        actions=None if "NotAction" in raw else _strings(raw.get("Action")),
        not_actions=_strings(raw.get("NotAction")),
        resources=_strings(raw.get("Resource")),
        not_resource="NotResource" in raw,
        principals=_principals(raw.get(principal_key)),
        not_principal=principal_key == "NotPrincipal",
        conditions=tuple(_conditions(raw.get("Condition"))),
    )


def _strings(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(item for item in items if isinstance(item, str))


def _principals(value: Any) -> dict[str, tuple[str, ...]]:
    if value == "*":
        return {"AWS": ("*",)}  # AWS documents "*" and {"AWS": "*"} as the same principal
    if not isinstance(value, Mapping):
        return {}
    return {str(kind): _strings(values) for kind, values in value.items()}


def _conditions(value: Any) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    if not isinstance(value, Mapping):
        return
    for operator, block in value.items():
        if isinstance(block, Mapping):
            for key, values in block.items():
                items = values if isinstance(values, list) else [values]
                yield str(operator), str(key), tuple(str(v) for v in items)


def _matches(pattern: str, action: str) -> bool:
    return catalogue.glob(pattern).fullmatch(action) is not None


def _broad(resource: str) -> bool:
    return resource == "*" or resource.endswith((":*", "/*"))


def _field(statement: _Statement, element: str) -> str:
    return f"{statement.path}.{element}"


# --- trust -------------------------------------------------------------------------

# Keys that name who may come in; any one of them makes "*" a deliberate, bounded trust.
_NARROWING_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:PrincipalOrgID", "aws:PrincipalOrgPaths", "aws:PrincipalAccount", "aws:PrincipalArn",
        "aws:userid", "aws:SourceAccount", "aws:SourceArn", "aws:SourceOrgID",
        "aws:SourceOrgPaths",
    )
)  # fmt: skip
_MFA_KEYS = frozenset({"aws:multifactorauthpresent", "aws:multifactorauthage"})
_ASSUME = "sts:AssumeRole"
_WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity"
_SAML = "sts:AssumeRoleWithSAML"
# Operators under which a condition on `:sub` restricts the token's subject; negated operators
# and ForAllValues (true when the key is absent) do not.
_RESTRICTING = re.compile(r"(ForAnyValue:)?String(Equals|EqualsIgnoreCase|Like)")
_ARN_ACCOUNT = re.compile(r"arn:[^:]+:(?:iam|sts)::(\d{12}):(.*)")


def _trust_findings(
    document: Mapping[str, Any], field: str, account_id: str | None
) -> Iterator[Finding]:
    for statement in _statements(document, field):
        if not statement.allow:
            continue
        if statement.not_principal:
            yield _finding(
                "RK-TRUST-008", _field(statement, "NotPrincipal"),
                "Allow with NotPrincipal trusts every principal except those listed, including "
                "anonymous ones: name the principals that may assume the role in Principal.",
            )  # fmt: skip
            continue
        yield from _aws_principal_findings(statement, account_id)
        yield from _federated_findings(statement)
        yield from _action_fit_findings(statement)


def _aws_principal_findings(statement: _Statement, account_id: str | None) -> Iterator[Finding]:
    keys = statement.condition_keys()
    where = _field(statement, "Principal")
    for principal in statement.principals.get("AWS", ()):
        if principal == "*":
            if not keys & _NARROWING_KEYS:
                yield _finding(
                    "RK-TRUST-001", where,
                    'Principal "*" lets any AWS account assume this role: name the account or '
                    "role ARNs that need it, or add an aws:PrincipalOrgID condition.",
                )  # fmt: skip
            continue
        account, rest = _account_of(principal)
        if account is None:
            continue
        if account_id is not None and account != account_id:
            if "sts:externalid" not in keys and not keys & _MFA_KEYS:
                yield _finding(
                    "RK-TRUST-003", where,
                    f"Account {account} is trusted without sts:ExternalId or MFA: for a third "
                    "party add Condition StringEquals sts:ExternalId (the id agreed with it, "
                    "against the confused deputy); for your own people require "
                    "aws:MultiFactorAuthPresent.",
                )  # fmt: skip
        elif rest == "root" and not statement.conditions:
            yield _finding(
                "RK-TRUST-002", where,
                f"The root of account {account} is trusted with no condition: every user and "
                "role of that account whose own policies allow sts:AssumeRole may assume this "
                "role. Name the role ARNs that need it, or add an aws:PrincipalArn condition.",
            )  # fmt: skip


def _account_of(principal: str) -> tuple[str | None, str]:
    if re.fullmatch(r"\d{12}", principal):
        return principal, "root"  # AWS stores a bare account id as that account's root
    match = _ARN_ACCOUNT.fullmatch(principal)
    return (match[1], match[2]) if match else (None, "")


def _federated_findings(statement: _Statement) -> Iterator[Finding]:
    for provider in statement.principals.get("Federated", ()):
        host = _oidc_host(provider)
        if host is None:
            continue
        key = "aud" if host == "cognito-identity.amazonaws.com" else "sub"
        values = _subject_values(statement, f"{host}:{key}".lower())
        if values is None:
            yield _finding(
                "RK-TRUST-004", _field(statement, "Condition"),
                f"Any identity that {host} issues a token to may assume this role: add a "
                f'Condition StringEquals "{host}:{key}" naming the one subject (service '
                "account, repository and branch) that needs it.",
            )  # fmt: skip
        elif key == "sub":
            yield from _wildcard_subject_findings(statement, host, values)


def _oidc_host(provider: str) -> str | None:
    """The issuer host of a web identity provider, or None for SAML and unknown shapes."""
    if ":oidc-provider/" in provider:
        return provider.split(":oidc-provider/", 1)[1]
    if provider in ("cognito-identity.amazonaws.com", "accounts.google.com",
                    "graph.facebook.com", "www.amazon.com"):  # fmt: skip
        return provider
    return None


def _subject_values(statement: _Statement, key: str) -> list[tuple[str, str]] | None:
    """(operator, value) pairs restricting `key`; None when no condition restricts it."""
    pairs = [
        (operator, value)
        for operator, name, values in statement.conditions
        if name.lower() == key and _RESTRICTING.fullmatch(operator)
        for value in values
    ]
    return pairs or None


def _wildcard_subject_findings(
    statement: _Statement, host: str, values: list[tuple[str, str]]
) -> Iterator[Finding]:
    where = _field(statement, "Condition")
    for operator, value in values:
        if "Like" not in operator or not re.search(r"[*?]", value):
            continue  # StringEquals treats "*" as a character
        breadth = _subject_breadth(value)
        if breadth == "any":
            yield _finding(
                "RK-TRUST-005", where,
                f'"{host}:sub" matches "{value}", which admits subjects of any repository '
                "owner or Kubernetes namespace (for GitHub: anyone's workflow). Name the "
                'owner and repository, e.g. "repo:my-org/my-repo:ref:refs/heads/main", or '
                '"system:serviceaccount:<namespace>:<name>".',
            )  # fmt: skip
        elif breadth == "some":
            yield _finding(
                "RK-TRUST-006", where,
                f'"{host}:sub" matches "{value}": every branch, environment or service '
                "account under it may assume the role. Name the branch or environment (or "
                "service account) if only one needs it.",
            )  # fmt: skip


def _subject_breadth(value: str) -> str:
    """"any" when the wildcard is in the owner/namespace part, else "some"."""
    github = re.fullmatch(r"repo:([^/]*)/(.*)", value)
    if github:
        return "any" if re.search(r"[*?]", github[1]) else "some"
    eks = re.fullmatch(r"system:serviceaccount:([^:]*):(.*)", value)
    if eks:
        return "any" if re.search(r"[*?]", eks[1]) else "some"
    return "any"  # "*", "repo:*", "system:*": the wildcard comes before any owner


def _action_fit_findings(statement: _Statement) -> Iterator[Finding]:
    if statement.actions is None:
        return
    assumes = [a for a in statement.actions if a.lower().startswith("sts:assumerole")]
    if not assumes:
        return  # sts:TagSession and friends alone say nothing about how the role is assumed
    for kind, principals in statement.principals.items():
        expected = _expected_action(kind, principals)
        if expected and not statement.grants(expected):
            yield _finding(
                "RK-TRUST-007", _field(statement, "Action"),
                f"A {kind} principal assumes a role with {expected}, but this statement allows "
                f"{', '.join(assumes)}: the principal can never assume the role this way. "
                f"Set Action to {expected}.",
            )  # fmt: skip


def _expected_action(kind: str, principals: Sequence[str]) -> str | None:
    if kind in ("AWS", "Service"):
        return _ASSUME
    if kind != "Federated" or not principals:
        return None
    if all(":saml-provider/" in p for p in principals):
        return _SAML
    if all(_oidc_host(p) for p in principals):
        return _WEB_IDENTITY
    return None


# --- permissions -------------------------------------------------------------------


def _permission_findings(document: Mapping[str, Any], field: str) -> Iterator[Finding]:
    for statement in _statements(document, field):
        if not statement.allow:
            continue
        yield from _wildcard_findings(statement)
        if statement.broad and statement.grants("iam:PassRole"):
            yield _finding(
                "RK-PERM-003", _field(statement, _action_key(statement)),
                "iam:PassRole on every role lets the holder hand any role, an administrator's "
                "too, to a service it controls: list the role ARNs it passes in Resource and add "
                "an iam:PassedToService condition.",
            )  # fmt: skip


def _wildcard_findings(statement: _Statement) -> Iterator[Finding]:
    everywhere = statement.not_resource or "*" in statement.resources
    if statement.actions is None:
        yield _finding(
            "RK-PERM-004", _field(statement, "NotAction"),
            "Allow with NotAction grants every action not listed, including those AWS adds "
            "later: list the actions to allow in Action instead.",
        )  # fmt: skip
    elif "*" in statement.actions and everywhere:
        yield _finding(
            "RK-PERM-001", _field(statement, "Action"),
            'Action "*" on Resource "*" is administrator access: list the actions this '
            "identity calls and the resources it calls them on.",
        )  # fmt: skip
    elif everywhere:
        services = sorted({a for a in statement.actions if re.fullmatch(r"[\w-]+:\*", a)})
        if services:
            yield _finding(
                "RK-PERM-002", _field(statement, "Action"),
                f"{', '.join(services)} on every resource grants each of those services' "
                "actions, present and future: list the actions needed, or scope Resource.",
            )  # fmt: skip
    if statement.not_resource:
        yield _finding(
            "RK-PERM-004", _field(statement, "NotResource"),
            "Allow with NotResource applies to every resource not listed, including ones "
            "created later: list the resources in Resource instead.",
        )  # fmt: skip


def _action_key(statement: _Statement) -> str:
    return "NotAction" if statement.actions is None else "Action"


# Privilege-escalation paths: each set, granted on broad resources, lets the holder gain more
# than it was given (Rhino Security Labs' list, as cloudsplaining ships it; the issue's own).
ESCALATIONS: tuple[tuple[str, ...], ...] = (
    ("iam:CreatePolicyVersion",),
    ("iam:SetDefaultPolicyVersion",),
    ("iam:CreateAccessKey",),
    ("iam:CreateLoginProfile",),
    ("iam:UpdateLoginProfile",),
    ("iam:AttachUserPolicy",),
    ("iam:AttachGroupPolicy",),
    ("iam:AttachRolePolicy",),
    ("iam:PutUserPolicy",),
    ("iam:PutGroupPolicy",),
    ("iam:PutRolePolicy",),
    ("iam:AddUserToGroup",),
    ("iam:UpdateAssumeRolePolicy",),
    ("iam:PassRole", "ec2:RunInstances"),
    ("iam:PassRole", "lambda:CreateFunction"),
    ("lambda:UpdateFunctionCode",),
    ("iam:PassRole", "glue:CreateDevEndpoint"),
    ("glue:UpdateDevEndpoint",),
    ("iam:PassRole", "cloudformation:CreateStack"),
    ("iam:PassRole", "datapipeline:CreatePipeline"),
    ("iam:PassRole", "sagemaker:CreateNotebookInstance"),
    ("iam:PassRole", "ecs:RunTask"),
    ("iam:PassRole", "codebuild:CreateProject"),
)


def _escalation_findings(documents: Mapping[str, Mapping[str, Any]]) -> Iterator[Finding]:
    broad = [
        s
        for field, document in documents.items()
        for s in _statements(document, field)
        if s.allow and s.broad
    ]
    by_path: dict[str, tuple[_Statement, list[str]]] = {}
    for actions in ESCALATIONS:
        granted = [next((s for s in broad if s.grants(a)), None) for a in actions]
        anchor = granted[-1]  # the action that completes the set is the one to look at
        if anchor is not None and all(granted):
            by_path.setdefault(anchor.path, (anchor, []))[1].append(" + ".join(actions))
    for statement, paths in by_path.values():
        yield _finding(
            "RK-PERM-005", _field(statement, _action_key(statement)),
            f"Granted on every resource, {'; '.join(paths)} let this identity raise its own "
            "privileges (e.g. attach AdministratorAccess to itself). Scope Resource to the "
            "entities it must manage, or require a permissions boundary on what it creates.",
        )  # fmt: skip


_ADMIN = frozenset({"AdministratorAccess"})
_NEAR_ADMIN = frozenset({"IAMFullAccess", "PowerUserAccess"})


def _managed_policy_findings(arns: Iterable[str]) -> Iterator[Finding]:
    for arn in sorted(arns):
        name = arn.rsplit("/", 1)[-1]
        if not re.fullmatch(r"arn:[^:]+:iam::aws:policy/.*", arn):
            continue  # the content of a customer policy is not visible here
        if name in _ADMIN:
            yield _finding(
                "RK-PERM-006", "spec.managedPolicies",
                f"{arn} grants every action on every resource: attach only the policies "
                "this identity's job needs.",
            )  # fmt: skip
        elif name in _NEAR_ADMIN:
            yield _finding(
                "RK-PERM-007", "spec.managedPolicies",
                f"{arn} grants " + ("all of IAM, so the holder can make itself "
                "administrator" if name == "IAMFullAccess" else "every service but IAM and "
                "Organizations") + ": attach policies scoped to this identity's job.",
            )  # fmt: skip


# --- the catalogue: actions and keys that do not exist --------------------------------


def _catalogue_findings(document: Mapping[str, Any], field: str) -> Iterator[Finding]:
    for statement in _statements(document, field):
        key = _action_key(statement)
        for action in statement.not_actions if statement.actions is None else statement.actions:
            if ":" in action and catalogue.action_known(action) is False:
                yield _finding("RK-PERM-008", _field(statement, key), _unknown_action(action))
        for operator, name, _ in statement.conditions:
            if catalogue.condition_key_known(name) is False:
                yield _finding(
                    "RK-PERM-009", _field(statement, f"Condition.{operator}.{name}"),
                    f'"{name}" is not a condition key of any AWS service (catalogue '
                    f"{catalogue.version()}): IAM never finds it in a request, so this "
                    "condition "
                    + ("never matches" if "Not" not in operator else "always matches")
                    + ". Fix the spelling from the service's authorization reference.",
                )  # fmt: skip


def _unknown_action(action: str) -> str:
    prefix = action.partition(":")[0]
    if catalogue.service_known(prefix) is False:
        what = f'"{prefix}" is not an AWS service prefix'
    elif re.search(r"[*?]", action):
        what = f'"{action}" matches no {prefix} action'
    else:
        what = f'"{action}" is not a {prefix} action'
    return (
        f"{what} (catalogue {catalogue.version()}): IAM accepts it and never matches it, so it "
        "grants (or denies) nothing. Fix the spelling from the service's authorization "
        "reference."
    )
