"""Tenant guardrails: parse IAMGuardrail objects and judge what an object asks of IAM.

A platform team writes cluster-scoped `IAMGuardrail` objects; each selects namespaces by label
and limits what objects there may ask for (names, paths, boundary, managed policies, actions,
trust, session length, users, groups, counts, adoption). This module is the one
implementation the three enforcement points call: the operator before any AWS write (the real
gate), the admission webhook (early feedback at `kubectl apply`) and `rolekeeper plan`.

Contract, for callers:

- `evaluate` is pure and total: every guardrail that selects the namespace is checked and
  *all* must pass; a violation of a `warn` guardrail lands in `Evaluation.warned` and blocks
  nothing (admission warning + status condition), one of a `deny` guardrail in `denied`.
- Every message names the guardrail, the rule (its path in the guardrail's spec), the object's
  field, and what would have been allowed.
- Tightening a guardrail never deletes anything. A violation only stops *writes*: the engine
  reports existing entities that no longer pass (Ready=False, reason GuardrailViolation) and
  leaves them exactly as they are in AWS; it never detaches, strips or deletes to comply.
- Adoption is off unless a guardrail that selects the namespace lists the name (and path).
  What needs AWS — never adopting the operator's own identity, never an entity tagged by
  another cluster — is the engine's check, not this module's.
- Guardrails judge documents by meaning (`controller.core.matching`), erring on the refusing
  side when the meaning is uncertain; AWS managed policies are judged by ARN only, since their
  content is not in the spec.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from controller.core import matching
from controller.core.view import EntityView

__all__ = [
    "API_VERSION",
    "KIND",
    "ActionRules",
    "AdoptionRules",
    "Enforcement",
    "Evaluation",
    "ForeignAccountCondition",
    "Guardrail",
    "GuardrailError",
    "LabelRequirement",
    "Limits",
    "ManagedPolicyRules",
    "NameRules",
    "NamespaceSelector",
    "OIDCProvider",
    "PolicyRules",
    "RoleRules",
    "Rule",
    "SelectorOperator",
    "TrustRules",
    "UserRules",
    "Violation",
    "adoption_allowed",
    "evaluate",
    "matches",
    "parse_guardrail",
    "parse_selector",
    "selects",
    "service_accounts_allowed",
]

GROUP = "iam.rolekeeper.dev"
API_VERSION = f"{GROUP}/v1alpha1"
KIND = "IAMGuardrail"
SELF = "self"  # in trust.accounts: the account the namespace's entities live in
MIN_SESSION, MAX_SESSION = 3600, 43200  # IAM's bounds for MaxSessionDuration
_ACCOUNT = re.compile(r"\d{12}")
_ACTION = re.compile(r"\*|[A-Za-z0-9-]+:[A-Za-z0-9*?]+")  # as policy.validate accepts them
_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_E = TypeVar("_E", bound=StrEnum)


class Enforcement(StrEnum):
    """What a broken rule does: refuse (`deny`) or only warn, for rolling a guardrail out."""

    DENY = "deny"
    WARN = "warn"


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class ForeignAccountCondition(StrEnum):
    """Conditions that make trusting another account acceptable (any one suffices)."""

    EXTERNAL_ID = "ExternalId"  # sts:ExternalId, against the confused deputy
    MFA = "MFA"  # aws:MultiFactorAuthPresent true (or a bounded aws:MultiFactorAuthAge)


class Rule(StrEnum):
    """A rule's name is its path in the guardrail's spec, so a message points at it."""

    ROLE_NAMES = "roles.names"
    ROLE_PATHS = "roles.paths"
    USER_NAMES = "users.names"
    USER_PATHS = "users.paths"
    POLICY_NAMES = "policies.names"
    POLICY_PATHS = "policies.paths"
    PERMISSIONS_BOUNDARY = "permissionsBoundary"
    MANAGED_POLICIES_ALLOWED = "managedPolicies.allowed"
    MANAGED_POLICIES_DENIED = "managedPolicies.denied"
    ACTIONS_DENIED = "actions.denied"
    ACTIONS_ON_WILDCARD = "actions.deniedOnWildcardResource"
    MAX_SESSION_DURATION = "roles.maxSessionDuration"
    TRUST_SERVICES = "roles.trust.services"
    TRUST_ACCOUNTS = "roles.trust.accounts"
    TRUST_OIDC = "roles.trust.oidcProviders"
    TRUST_SAML = "roles.trust.samlProviders"
    TRUST_WILDCARD = "roles.trust.wildcardPrincipalRequires"
    TRUST_FOREIGN = "roles.trust.foreignAccountsRequire"
    SERVICE_ACCOUNT_NAMESPACES = "roles.serviceAccounts.namespaces"
    USERS_ALLOWED = "users.allowed"
    USER_GROUPS = "users.groups"
    USER_ACCESS_KEYS = "users.accessKeys"
    LIMITS = "limits"
    ADOPTION = "adoption"
    ACCOUNTS = "accounts"


class GuardrailError(ValueError):
    """An IAMGuardrail that cannot be used; `errors` name each bad field."""

    def __init__(self, name: str, errors: list[str]) -> None:
        super().__init__(f"IAMGuardrail {name!r} is invalid: " + "; ".join(errors))
        self.errors = errors


# --- the model -------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: SelectorOperator
    values: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NamespaceSelector:
    """A Kubernetes label selector; the empty selector selects every namespace."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[LabelRequirement, ...] = ()


@dataclass(frozen=True)
class NameRules:
    """Allowed names and paths (globs with `{namespace}`); None leaves that part free."""

    names: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OIDCProvider:
    provider: str  # provider ARN pattern, or a host such as accounts.google.com
    subjects: tuple[str, ...] | None = None  # allowed `:sub` values (globs with {namespace})


@dataclass(frozen=True)
class TrustRules:
    """Who a role may trust. Each list left None leaves that kind of principal free."""

    services: tuple[str, ...] | None = None
    accounts: tuple[str, ...] | None = None  # 12-digit ids or "self"
    oidc_providers: tuple[OIDCProvider, ...] | None = None
    saml_providers: tuple[str, ...] | None = None
    wildcard_principal_requires: tuple[str, ...] = ()  # condition keys; empty: `*` never
    foreign_accounts_require: frozenset[ForeignAccountCondition] = frozenset()


@dataclass(frozen=True)
class RoleRules:
    names: NameRules = NameRules()
    max_session_duration: int | None = None
    trust: TrustRules | None = None
    # Namespaces (globs with {namespace}) whose ServiceAccounts spec.serviceAccounts may name.
    # None: the operator's default, the role's own namespace only (`service_accounts_allowed`).
    service_account_namespaces: tuple[str, ...] | None = None


@dataclass(frozen=True)
class UserRules:
    allowed: bool = True
    names: NameRules = NameRules()
    groups: tuple[str, ...] | None = None
    access_keys: bool = True


@dataclass(frozen=True)
class PolicyRules:
    names: NameRules = NameRules()


@dataclass(frozen=True)
class ManagedPolicyRules:
    allowed: tuple[str, ...] | None = None
    denied: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionRules:
    denied: tuple[str, ...] = ()
    denied_on_wildcard_resource: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    """Objects per namespace, per kind and in total; None is no limit."""

    roles: int | None = None
    users: int | None = None
    policies: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class AdoptionRules:
    """Names (and paths) that may be adopted, per kind; None: that kind is never adopted."""

    roles: NameRules | None = None
    users: NameRules | None = None
    policies: NameRules | None = None


@dataclass(frozen=True)
class Guardrail:
    name: str
    selector: NamespaceSelector = NamespaceSelector()
    enforcement: Enforcement = Enforcement.DENY
    roles: RoleRules = RoleRules()
    users: UserRules = UserRules()
    policies: PolicyRules = PolicyRules()
    permissions_boundary: tuple[str, ...] | None = None  # required boundary ARN patterns
    managed_policies: ManagedPolicyRules = ManagedPolicyRules()
    actions: ActionRules = ActionRules()
    limits: Limits = Limits()
    adoption: AdoptionRules = AdoptionRules()
    # AWS account ids (IAMAccount spec.accountId, or the operator's own) the selected
    # namespaces' entities may live in; None: any account.
    accounts: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Violation:
    guardrail: str  # the IAMGuardrail's name; "" when no guardrail allows (adoption)
    rule: str  # a `Rule` value: the rule's path in the guardrail's spec
    field: str  # the object's field path, e.g. spec.assumeRolePolicy.Statement[0].Principal
    message: str  # complete: guardrail, rule, field, what is wrong and what would be allowed
    enforcement: Enforcement = Enforcement.DENY


@dataclass(frozen=True)
class Evaluation:
    denied: tuple[Violation, ...] = ()
    warned: tuple[Violation, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.denied

    @property
    def message(self) -> str:
        """The denied violations as one text, for a status condition or an admission answer."""
        return "; ".join(v.message for v in self.denied)

    @property
    def warnings(self) -> tuple[str, ...]:
        """One admission warning per warned violation."""
        return tuple(v.message for v in self.warned)


# --- parsing ---------------------------------------------------------------------------


class _Reader:
    """Reads one object, collecting every error with its field path instead of stopping."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, problem: str) -> None:
        self.errors.append(f"{path}: {problem}")

    def mapping(self, value: Any, path: str, keys: Iterable[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(path, "must be an object")
            return {}
        allowed = set(keys)
        # A typo must not silently switch a rule off: unknown keys are errors.
        for key in sorted(set(value) - allowed):
            self.fail(f"{path}.{key}", f"unknown field (known: {', '.join(sorted(allowed))})")
        return value

    def strings(self, value: Any, path: str, *, pattern: bool = True) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(path, "must be a list of non-empty strings")
            return None
        if pattern:
            for index, item in enumerate(value):
                for placeholder in _PLACEHOLDER.findall(item):
                    if placeholder != matching.NAMESPACE:
                        self.fail(
                            f"{path}[{index}]",
                            f"unknown placeholder {placeholder} (only {{namespace}})",
                        )
        return tuple(value)

    def arns(self, value: Any, path: str) -> tuple[str, ...] | None:
        items = self.strings(value, path)
        for index, item in enumerate(items or ()):
            if not item.startswith("arn:") or item.count(":") < 5:
                # ArnLike compares six parts; a shorter pattern would silently match nothing.
                self.fail(
                    f"{path}[{index}]",
                    f"{item!r} is not an ARN pattern (arn:partition:service:region:account:...)",
                )
        return items

    def integer(self, value: Any, path: str, low: int, high: int | None = None) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "must be an integer")
            return None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.fail(path, f"must be {bounds}, got {value}")
            return None
        return value

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(path, "must be true or false")
            return default
        return value

    def enum(self, value: Any, path: str, kind: type[_E], default: _E) -> _E:
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            self.fail(path, f"must be one of {', '.join(kind)}, got {value!r}")
            return default


def parse_guardrail(obj: Mapping[str, Any]) -> Guardrail:
    """An IAMGuardrail object (as the API returns it) as a `Guardrail`.

    Raises GuardrailError listing every problem, each starting with its field path.
    """
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    read = _Reader()
    if not isinstance(name, str) or not name:
        read.fail("metadata.name", "is required")
        name = ""
    if obj.get("kind", KIND) != KIND:
        read.fail("kind", f"must be {KIND}, got {obj.get('kind')!r}")
    spec_value = obj.get("spec")
    if not isinstance(spec_value, Mapping):
        read.fail("spec", "is required and must be an object")
        raise GuardrailError(name, read.errors)
    spec = read.mapping(
        spec_value,
        "spec",
        (
            "namespaceSelector", "enforcement", "roles", "users", "policies",
            "permissionsBoundary", "managedPolicies", "actions", "limits", "adoption",
            "accounts",
        ),
    )
    if "namespaceSelector" not in spec:
        # Explicit on purpose: `{}` selects every namespace, a missing selector is a mistake.
        read.fail("spec.namespaceSelector", "is required ({} selects every namespace)")
    guardrail = Guardrail(
        name=name,
        selector=_selector(read, spec.get("namespaceSelector"), "spec.namespaceSelector"),
        enforcement=read.enum(
            spec.get("enforcement"), "spec.enforcement", Enforcement, Enforcement.DENY
        ),
        roles=_roles(read, spec.get("roles"), "spec.roles"),
        users=_users(read, spec.get("users"), "spec.users"),
        policies=PolicyRules(_names(read, spec.get("policies"), "spec.policies")),
        permissions_boundary=_boundary(read, spec.get("permissionsBoundary")),
        managed_policies=_managed(read, spec.get("managedPolicies"), "spec.managedPolicies"),
        actions=_actions(read, spec.get("actions"), "spec.actions"),
        limits=_limits(read, spec.get("limits"), "spec.limits"),
        adoption=_adoption(read, spec.get("adoption"), "spec.adoption"),
        accounts=_accounts(read, spec.get("accounts"), "spec.accounts"),
    )
    if read.errors:
        raise GuardrailError(name, read.errors)
    return guardrail


def parse_selector(value: Any, path: str) -> tuple[NamespaceSelector, list[str]]:
    """A label selector read as guardrails read theirs (IAMAccount uses it): the selector and
    the problems found, each starting with its field path."""
    read = _Reader()
    return _selector(read, value, path), read.errors


def _selector(read: _Reader, value: Any, path: str) -> NamespaceSelector:
    spec = read.mapping(value, path, ("matchLabels", "matchExpressions"))
    labels = spec.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        read.fail(f"{path}.matchLabels", "must map label keys to string values")
        labels = {}
    expressions = spec.get("matchExpressions") or []
    if not isinstance(expressions, list):
        read.fail(f"{path}.matchExpressions", "must be a list")
        expressions = []
    requirements = []
    for index, item in enumerate(expressions):
        where = f"{path}.matchExpressions[{index}]"
        entry = read.mapping(item, where, ("key", "operator", "values"))
        key = entry.get("key")
        if not isinstance(key, str) or not key:
            read.fail(f"{where}.key", "is required")
            continue
        operator = read.enum(
            entry.get("operator"), f"{where}.operator", SelectorOperator, SelectorOperator.IN
        )
        values = read.strings(entry.get("values"), f"{where}.values", pattern=False) or ()
        # Kubernetes' own rule: In/NotIn need values, Exists/DoesNotExist must have none.
        needs_values = operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values and not values:
            read.fail(f"{where}.values", f"must not be empty for operator {operator}")
        if not needs_values and values:
            read.fail(f"{where}.values", f"must be empty for operator {operator}")
        requirements.append(LabelRequirement(key, operator, frozenset(values)))
    return NamespaceSelector(tuple(sorted(labels.items())), tuple(requirements))


_NAME_KEYS = ("names", "paths")


def _names(read: _Reader, value: Any, path: str) -> NameRules:
    spec = read.mapping(value, path, _NAME_KEYS)
    paths = read.strings(spec.get("paths"), f"{path}.paths")
    for index, item in enumerate(paths or ()):
        if not (item.startswith("/") and item.endswith(("/", "*"))):
            read.fail(f"{path}.paths[{index}]", f"{item!r} must start with / and end with / or *")
    return NameRules(read.strings(spec.get("names"), f"{path}.names"), paths)


def _roles(read: _Reader, value: Any, path: str) -> RoleRules:
    spec = read.mapping(
        value, path, (*_NAME_KEYS, "maxSessionDuration", "trust", "serviceAccounts")
    )
    trust = spec.get("trust")
    where = f"{path}.serviceAccounts"
    accounts = read.mapping(spec.get("serviceAccounts"), where, ("namespaces",))
    if "serviceAccounts" in spec and "namespaces" not in accounts:
        read.fail(f"{where}.namespaces", "is required ([] allows none)")
    namespaces = accounts.get("namespaces")
    if namespaces == []:
        namespaces_rule: tuple[str, ...] | None = ()  # no ServiceAccount at all
    else:
        namespaces_rule = read.strings(namespaces, f"{where}.namespaces")
    return RoleRules(
        service_account_namespaces=namespaces_rule,
        names=_names(read, {k: spec[k] for k in _NAME_KEYS if k in spec}, path),
        max_session_duration=read.integer(
            spec.get("maxSessionDuration"), f"{path}.maxSessionDuration", MIN_SESSION, MAX_SESSION
        ),
        trust=None if trust is None else _trust(read, trust, f"{path}.trust"),
    )


def _trust(read: _Reader, value: Any, path: str) -> TrustRules:
    spec = read.mapping(
        value,
        path,
        (
            "services", "accounts", "oidcProviders", "samlProviders",
            "wildcardPrincipalRequires", "foreignAccountsRequire",
        ),
    )
    accounts = read.strings(spec.get("accounts"), f"{path}.accounts", pattern=False)
    for index, account in enumerate(accounts or ()):
        if account != SELF and not _ACCOUNT.fullmatch(account):
            read.fail(f"{path}.accounts[{index}]", f"{account!r} is not a 12-digit id or 'self'")
    providers: list[OIDCProvider] | None = None
    raw_providers = spec.get("oidcProviders")
    if raw_providers is not None:
        providers = []
        if not isinstance(raw_providers, list):
            read.fail(f"{path}.oidcProviders", "must be a list")
            raw_providers = []
        for index, item in enumerate(raw_providers):
            where = f"{path}.oidcProviders[{index}]"
            entry = read.mapping(item, where, ("provider", "subjects"))
            provider = entry.get("provider")
            if not isinstance(provider, str) or not provider:
                read.fail(f"{where}.provider", "is required")
                continue
            providers.append(
                OIDCProvider(provider, read.strings(entry.get("subjects"), f"{where}.subjects"))
            )
    foreign = read.strings(
        spec.get("foreignAccountsRequire"), f"{path}.foreignAccountsRequire", pattern=False
    )
    return TrustRules(
        services=read.strings(spec.get("services"), f"{path}.services"),
        accounts=accounts,
        oidc_providers=None if providers is None else tuple(providers),
        saml_providers=read.arns(spec.get("samlProviders"), f"{path}.samlProviders"),
        wildcard_principal_requires=read.strings(
            spec.get("wildcardPrincipalRequires"), f"{path}.wildcardPrincipalRequires",
            pattern=False,
        ) or (),
        foreign_accounts_require=frozenset(
            read.enum(v, f"{path}.foreignAccountsRequire[{i}]", ForeignAccountCondition,
                      ForeignAccountCondition.EXTERNAL_ID)
            for i, v in enumerate(foreign or ())
        ),
    )


def _users(read: _Reader, value: Any, path: str) -> UserRules:
    spec = read.mapping(value, path, (*_NAME_KEYS, "allowed", "groups", "accessKeys"))
    return UserRules(
        allowed=read.boolean(spec.get("allowed"), f"{path}.allowed", True),
        names=_names(read, {k: spec[k] for k in _NAME_KEYS if k in spec}, path),
        groups=read.strings(spec.get("groups"), f"{path}.groups"),
        access_keys=read.boolean(spec.get("accessKeys"), f"{path}.accessKeys", True),
    )


def _boundary(read: _Reader, value: Any) -> tuple[str, ...] | None:
    path = "spec.permissionsBoundary"
    spec = read.mapping(value, path, ("required",))
    required = read.arns(spec.get("required"), f"{path}.required")
    if value is not None and not required:
        read.fail(f"{path}.required", "must list at least one boundary ARN pattern")
    return required


def _managed(read: _Reader, value: Any, path: str) -> ManagedPolicyRules:
    spec = read.mapping(value, path, ("allowed", "denied"))
    return ManagedPolicyRules(
        allowed=read.arns(spec.get("allowed"), f"{path}.allowed"),
        denied=read.arns(spec.get("denied"), f"{path}.denied") or (),
    )


def _actions(read: _Reader, value: Any, path: str) -> ActionRules:
    spec = read.mapping(value, path, ("denied", "deniedOnWildcardResource"))
    found: dict[str, tuple[str, ...]] = {}
    for key in ("denied", "deniedOnWildcardResource"):
        found[key] = read.strings(spec.get(key), f"{path}.{key}", pattern=False) or ()
        for index, action in enumerate(found[key]):
            if not _ACTION.fullmatch(action):
                read.fail(f"{path}.{key}[{index}]", f"{action!r} is not 'service:Action' or '*'")
    return ActionRules(found["denied"], found["deniedOnWildcardResource"])


def _limits(read: _Reader, value: Any, path: str) -> Limits:
    spec = read.mapping(value, path, ("roles", "users", "policies", "total"))
    return Limits(**{key: read.integer(spec.get(key), f"{path}.{key}", 0) for key in spec})


def _accounts(read: _Reader, value: Any, path: str) -> tuple[str, ...] | None:
    accounts = read.strings(value, path, pattern=False)
    for index, account in enumerate(accounts or ()):
        if not _ACCOUNT.fullmatch(account):
            read.fail(f"{path}[{index}]", f"{account!r} is not a 12-digit account id")
    return accounts


def _adoption(read: _Reader, value: Any, path: str) -> AdoptionRules:
    spec = read.mapping(value, path, ("roles", "users", "policies"))
    rules: dict[str, NameRules] = {}
    for key, item in spec.items():
        rules[key] = _names(read, item, f"{path}.{key}")
        if not rules[key].names:
            # Adopting "any name" would undo the point of adoption being off by default.
            read.fail(f"{path}.{key}.names", "must list at least one name pattern")
    return AdoptionRules(**rules)


# --- selection -------------------------------------------------------------------------


def selects(g: Guardrail, namespace_labels: Mapping[str, str]) -> bool:
    """Whether the guardrail's namespaceSelector selects a namespace with these labels."""
    return matches(g.selector, namespace_labels)


def matches(selector: NamespaceSelector, namespace_labels: Mapping[str, str]) -> bool:
    """Whether a label selector selects a namespace with these labels (also IAMAccount's)."""
    if any(namespace_labels.get(k) != v for k, v in selector.match_labels):
        return False
    return all(_requirement(r, namespace_labels) for r in selector.match_expressions)


def _requirement(r: LabelRequirement, labels: Mapping[str, str]) -> bool:
    match r.operator:
        case SelectorOperator.IN:
            return r.key in labels and labels[r.key] in r.values
        case SelectorOperator.NOT_IN:
            # As in Kubernetes: a namespace without the label is "not in" any value set.
            return r.key not in labels or labels[r.key] not in r.values
        case SelectorOperator.EXISTS:
            return r.key in labels
        case SelectorOperator.DOES_NOT_EXIST:
            return r.key not in labels


# --- evaluation ------------------------------------------------------------------------


@dataclass(frozen=True)
class _KindInfo:
    section: str  # the guardrail section and limits key: roles / users / policies
    name_field: str
    name_rule: Rule
    path_rule: Rule
    boundary: bool  # whether a required permissions boundary applies


_KINDS = {
    "IAMRole": _KindInfo("roles", "spec.roleName", Rule.ROLE_NAMES, Rule.ROLE_PATHS, True),
    "IAMUser": _KindInfo("users", "spec.userName", Rule.USER_NAMES, Rule.USER_PATHS, True),
    "IAMPolicy": _KindInfo(
        "policies", "spec.policyName", Rule.POLICY_NAMES, Rule.POLICY_PATHS, False
    ),
}


@dataclass(frozen=True)
class _Finding:
    """A broken rule before it is worded with its guardrail's name and enforcement."""

    rule: Rule
    field: str
    detail: str


@dataclass(frozen=True)
class _Context:
    view: EntityView
    info: _KindInfo
    account_id: str | None
    counts: Mapping[str, int] | None = field(default=None)


def evaluate(
    guardrails: Sequence[Guardrail],
    view: EntityView,
    namespace_labels: Mapping[str, str],
    *,
    objects_in_namespace: int | Mapping[str, int] | None = None,
    account_id: str | None = None,
) -> Evaluation:
    """Check one object against every guardrail that selects its namespace.

    `objects_in_namespace` counts the objects that *precede* this one in its namespace (older
    creationTimestamp; for a new object, all existing ones), so a limit tightened later refuses
    the newest objects, not all of them. An int counts this object's kind; a mapping of kind
    (IAMRole, ...) to count also lets `limits.total` see every kind. None skips the limits.
    `account_id` is the AWS account the namespace's entities live in: it resolves "self" in
    trust.accounts and tells foreign accounts apart; None treats every account as foreign.
    """
    info = _KINDS.get(view.kind)
    if info is None:
        raise ValueError(f"guardrails cannot judge kind {view.kind!r}")
    counts = (
        {view.kind: objects_in_namespace}
        if isinstance(objects_in_namespace, int)
        else objects_in_namespace
    )
    context = _Context(view, info, account_id, counts)
    denied: list[Violation] = []
    warned: list[Violation] = []
    for g in guardrails:
        if not selects(g, namespace_labels):
            continue
        for finding in _findings(g, context):
            violation = _violation(g.name, g.enforcement, finding, view)
            (denied if g.enforcement is Enforcement.DENY else warned).append(violation)
    adoption = adoption_allowed(guardrails, view, namespace_labels)
    if adoption is not None:
        denied.append(adoption)
    denied.extend(service_accounts_allowed(guardrails, view, namespace_labels))
    return Evaluation(tuple(denied), tuple(warned))


def _violation(name: str, enforcement: Enforcement, f: _Finding, view: EntityView) -> Violation:
    who = f"IAMGuardrail {name!r}" if name else "no IAMGuardrail"
    message = f"{who}, rule {f.rule} ({enforcement}): {f.field} {f.detail}"
    return Violation(name, str(f.rule), f.field, message, enforcement)


def _findings(g: Guardrail, c: _Context) -> Iterator[_Finding]:
    yield from _check_account(g, c)
    yield from _check_kind(g, c)
    yield from _check_names(getattr(g, c.info.section).names, c)
    if c.info.boundary:
        yield from _check_boundary(g, c)
    yield from _check_managed(g.managed_policies, c)
    yield from _check_actions(g.actions, c)
    # What a view carries says which rules apply (only roles have a session and a trust policy).
    if c.view.max_session_duration is not None:
        yield from _check_session(g.roles, c)
    if g.roles.trust is not None and c.view.trust_policy is not None:
        yield from _check_trust(g.roles.trust, c)
    if g.roles.service_account_namespaces is not None:
        yield from _check_service_accounts(g.roles.service_account_namespaces, c)
    if c.info.section == "users":
        yield from _check_user(g.users, c)
    yield from _check_limits(g.limits, c)


def _listed(patterns: Iterable[str], namespace: str) -> str:
    return ", ".join(repr(matching.substitute(p, namespace)) for p in patterns)


def _check_account(g: Guardrail, c: _Context) -> Iterator[_Finding]:
    if g.accounts is None or c.account_id in g.accounts:
        return
    used = f"AWS account {c.account_id}" if c.account_id else "an AWS account not known here"
    yield _Finding(
        Rule.ACCOUNTS, "metadata.namespace",
        f"{c.view.namespace!r} uses {used} (its IAMAccount, or the operator's own); allowed "
        f"accounts: {', '.join(g.accounts) or 'none'}",
    )


def _check_kind(g: Guardrail, c: _Context) -> Iterator[_Finding]:
    if c.info.section == "users" and not g.users.allowed:
        yield _Finding(
            Rule.USERS_ALLOWED, "kind",
            "IAMUser is not allowed in this namespace; use an IAMRole (e.g. with IRSA) instead",
        )


def _check_names(rules: NameRules, c: _Context) -> Iterator[_Finding]:
    view, ns = c.view, c.view.namespace
    if rules.names is not None and not any(
        matching.name_matches(p, view.name, ns) for p in rules.names
    ):
        yield _Finding(
            c.info.name_rule, c.info.name_field,
            f"{view.name!r} is not allowed; allowed names: {_listed(rules.names, ns)}",
        )
    if rules.paths is not None and not any(
        matching.name_matches(p, view.path, ns) for p in rules.paths
    ):
        yield _Finding(
            c.info.path_rule, "spec.path",
            f"{view.path!r} is not allowed; allowed paths: {_listed(rules.paths, ns)}",
        )


def _check_boundary(g: Guardrail, c: _Context) -> Iterator[_Finding]:
    required = g.permissions_boundary
    if required is None:
        return
    ns, boundary = c.view.namespace, c.view.permissions_boundary
    wanted = f"set it to {_listed(required, ns)}"
    if boundary is None:
        yield _Finding(
            Rule.PERMISSIONS_BOUNDARY, "spec.permissionsBoundary", f"is required; {wanted}"
        )
    elif not any(matching.arn_matches(p, boundary, ns) for p in required):
        yield _Finding(
            Rule.PERMISSIONS_BOUNDARY, "spec.permissionsBoundary",
            f"{boundary!r} is not an allowed boundary; {wanted}",
        )


def _check_managed(rules: ManagedPolicyRules, c: _Context) -> Iterator[_Finding]:
    ns = c.view.namespace
    for arn in sorted(c.view.managed_policies):
        denied = [p for p in rules.denied if matching.arn_matches(p, arn, ns, ignore_case=True)]
        if denied:
            yield _Finding(
                Rule.MANAGED_POLICIES_DENIED, "spec.managedPolicies",
                f"{arn!r} is denied (matches {_listed(denied, ns)})",
            )
        elif rules.allowed is not None and not any(
            matching.arn_matches(p, arn, ns) for p in rules.allowed
        ):
            yield _Finding(
                Rule.MANAGED_POLICIES_ALLOWED, "spec.managedPolicies",
                f"{arn!r} is not allowed; allowed: {_listed(rules.allowed, ns) or 'none'}",
            )


def _statement_field(doc: Mapping[str, Any], base: str, index: int) -> str:
    return f"{base}.Statement" if isinstance(doc.get("Statement"), Mapping) else (
        f"{base}.Statement[{index}]"
    )


def _check_actions(rules: ActionRules, c: _Context) -> Iterator[_Finding]:
    for base, doc in sorted(c.view.documents.items()):
        for hit in matching.document_allows_any(doc, rules.denied):
            yield _Finding(
                Rule.ACTIONS_DENIED, _statement_field(doc, base, hit.statement),
                f"grants the denied action {hit.denied!r} through {hit.pattern!r}; "
                "name the actions needed, none matching the denied list",
            )
        for index, statement in matching.statements(doc):
            if not matching.is_wildcard_resource(statement):
                continue
            for pattern in rules.denied_on_wildcard_resource:
                granting = matching.statement_grants(statement, pattern)
                if granting:
                    yield _Finding(
                        Rule.ACTIONS_ON_WILDCARD, _statement_field(doc, base, index),
                        f"grants {pattern!r} on every resource; name the resources (ARNs) "
                        "it applies to",
                    )


def _check_session(rules: RoleRules, c: _Context) -> Iterator[_Finding]:
    cap, asked = rules.max_session_duration, c.view.max_session_duration
    if cap is not None and asked is not None and asked > cap:
        yield _Finding(
            Rule.MAX_SESSION_DURATION, "spec.maxSessionDuration",
            f"{asked} is over the cap; at most {cap} seconds",
        )


def _check_user(rules: UserRules, c: _Context) -> Iterator[_Finding]:
    ns = c.view.namespace
    if rules.groups is not None:
        for group in sorted(c.view.groups):
            if not any(matching.name_matches(p, group, ns) for p in rules.groups):
                yield _Finding(
                    Rule.USER_GROUPS, "spec.groups",
                    f"{group!r} is not allowed; allowed groups: "
                    f"{_listed(rules.groups, ns) or 'none'}",
                )
    if c.view.access_keys and not rules.access_keys:
        yield _Finding(
            Rule.USER_ACCESS_KEYS, "spec.accessKey",
            "access keys are not allowed in this namespace; use a role instead",
        )


def _check_limits(limits: Limits, c: _Context) -> Iterator[_Finding]:
    if c.counts is None:
        return
    own: int | None = getattr(limits, c.info.section)
    preceding = c.counts.get(c.view.kind, 0)
    if own is not None and preceding + 1 > own:
        yield _Finding(
            Rule.LIMITS, "metadata.name",
            f"would be {c.view.kind} number {preceding + 1} in namespace {c.view.namespace!r}; "
            f"at most {own} ({Rule.LIMITS}.{c.info.section})",
        )
    total = sum(c.counts.values())
    if limits.total is not None and total + 1 > limits.total:
        yield _Finding(
            Rule.LIMITS, "metadata.name",
            f"would be object number {total + 1} in namespace {c.view.namespace!r}; "
            f"at most {limits.total} ({Rule.LIMITS}.total)",
        )


# --- trust -----------------------------------------------------------------------------

# Condition operators that constrain only when the key is present and positive: IfExists
# passes when the key is missing, ForAllValues passes on an empty set, negations exclude
# rather than name. None of those narrows who may assume the role.
_NARROWING = {"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike"}


def _conditions(statement: Mapping[str, Any]) -> Iterator[tuple[str, str, list[Any]]]:
    """(operator, key, values) of a statement's Condition, operator and key lower-cased."""
    block = statement.get("Condition")
    if not isinstance(block, Mapping):
        return
    for operator, entries in block.items():
        if not isinstance(operator, str) or not isinstance(entries, Mapping):
            continue
        for key, values in entries.items():
            if isinstance(key, str):
                items = values if isinstance(values, list) else [values]
                yield operator.lower(), key.lower(), items


def _narrowed_by(statement: Mapping[str, Any], keys: Iterable[str]) -> bool:
    wanted = {k.lower() for k in keys}
    return any(op in _NARROWING and key in wanted for op, key, _ in _conditions(statement))


def _has_foreign_condition(
    statement: Mapping[str, Any], required: frozenset[ForeignAccountCondition]
) -> bool:
    for op, key, values in _conditions(statement):
        if ForeignAccountCondition.EXTERNAL_ID in required and (
            op in _NARROWING and key == "sts:externalid"
        ):
            return True
        if ForeignAccountCondition.MFA in required and (
            (op == "bool" and key == "aws:multifactorauthpresent"
             and all(str(v).lower() == "true" for v in values))
            or (op in ("numericlessthan", "numericlessthanequals")
                and key == "aws:multifactorauthage")
        ):
            return True
    return False


def _principals(statement: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(type, value) for every principal of a statement; `*` alone is ("AWS", "*")."""
    principal = statement.get("Principal")
    if principal == "*":
        yield "AWS", "*"
        return
    if not isinstance(principal, Mapping):
        return
    for kind, values in principal.items():
        for value in values if isinstance(values, list) else [values]:
            if isinstance(kind, str) and isinstance(value, str):
                yield kind, value


def _account_of(principal: str) -> str | None:
    if _ACCOUNT.fullmatch(principal):
        return principal
    parts = principal.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and _ACCOUNT.fullmatch(parts[4]):
        return parts[4]
    return None


def _check_trust(rules: TrustRules, c: _Context) -> Iterator[_Finding]:
    doc = c.view.trust_policy or {}
    for index, statement in matching.statements(doc):
        if str(statement.get("Effect", "")).lower() == "deny":
            continue  # a Deny grants nobody anything
        where = _statement_field(doc, "spec.assumeRolePolicy", index)
        for kind, value in _principals(statement):
            field_path = f"{where}.Principal.{kind}"
            if kind == "AWS":
                yield from _check_aws_principal(rules, c, statement, field_path, value)
            elif kind == "Service":
                yield from _check_allowed(
                    rules.services, value, c, Rule.TRUST_SERVICES, field_path, "service"
                )
            elif kind == "Federated":
                yield from _check_federated(rules, c, statement, field_path, value)
            else:
                yield _Finding(
                    Rule.TRUST_ACCOUNTS, field_path,
                    f"{kind} principals are not allowed; trust an account, service or provider",
                )


def _check_allowed(
    patterns: tuple[str, ...] | None, value: str, c: _Context, rule: Rule, path: str, what: str
) -> Iterator[_Finding]:
    ns = c.view.namespace
    if patterns is not None and not any(matching.name_matches(p, value, ns) for p in patterns):
        allowed = _listed(patterns, ns) or "none"
        yield _Finding(rule, path, f"{what} {value!r} is not allowed; allowed: {allowed}")


def _check_aws_principal(
    rules: TrustRules, c: _Context, statement: Mapping[str, Any], path: str, value: str
) -> Iterator[_Finding]:
    if value == "*":
        if not rules.wildcard_principal_requires:
            yield _Finding(
                Rule.TRUST_WILDCARD, path,
                "'*' (anyone) is not allowed; name the accounts, services or providers",
            )
        elif not _narrowed_by(statement, rules.wildcard_principal_requires):
            keys = ", ".join(rules.wildcard_principal_requires)
            yield _Finding(
                Rule.TRUST_WILDCARD, path,
                f"'*' (anyone) needs a Condition on one of: {keys} (StringEquals/StringLike/"
                "ArnEquals/ArnLike, not IfExists)",
            )
        return
    account = _account_of(value)
    if account is None:
        yield _Finding(
            Rule.TRUST_ACCOUNTS, path,
            f"{value!r} is not an account id or IAM ARN; write the principal's ARN",
        )
        return
    own = account == c.account_id
    if rules.accounts is not None and not any(
        a == account or (a == SELF and own) for a in rules.accounts
    ):
        allowed = ", ".join(
            (f"self ({c.account_id})" if c.account_id else "self (account unknown)")
            if a == SELF else a for a in rules.accounts
        )
        yield _Finding(
            Rule.TRUST_ACCOUNTS, path,
            f"account {account} is not allowed; allowed accounts: {allowed or 'none'}",
        )
    required = rules.foreign_accounts_require
    if required and not own and not _has_foreign_condition(statement, required):
        needs = " or ".join(
            "sts:ExternalId" if r is ForeignAccountCondition.EXTERNAL_ID
            else "aws:MultiFactorAuthPresent true"
            for r in sorted(required)
        )
        yield _Finding(
            Rule.TRUST_FOREIGN, path,
            f"account {account} is another account; its statement needs a Condition on {needs}",
        )


def _check_federated(
    rules: TrustRules, c: _Context, statement: Mapping[str, Any], path: str, value: str
) -> Iterator[_Finding]:
    ns = c.view.namespace
    if ":saml-provider/" in value:
        yield from _check_allowed(
            rules.saml_providers, value, c, Rule.TRUST_SAML, path, "SAML provider"
        )
        return
    host = value.split(":oidc-provider/", 1)[1] if ":oidc-provider/" in value else value
    entries = rules.oidc_providers
    matched = (
        None if entries is None
        else [e for e in entries if matching.arn_matches(e.provider, value, ns)]
    )
    if matched is not None and not matched:
        allowed = ", ".join(repr(e.provider) for e in entries or ()) or "none"
        yield _Finding(
            Rule.TRUST_OIDC, path, f"provider {value!r} is not allowed; allowed: {allowed}"
        )
        return
    # Without a `:sub` condition every identity the provider vouches for (any pod of any
    # cluster on a shared EKS issuer) could assume the role.
    sub_key = f"{host}:sub".lower()
    subjects = [
        v for op, key, values in _conditions(statement)
        if op in ("stringequals", "stringlike") and key == sub_key
        for v in values
    ]
    if not subjects:
        yield _Finding(
            Rule.TRUST_OIDC, path,
            f"provider {value!r} needs a StringEquals or StringLike Condition on '{host}:sub'",
        )
        return
    if matched is None or any(e.subjects is None for e in matched):
        return  # no subject list: any subject of an allowed provider will do
    allowed_subjects = [matching.substitute(s, ns) for e in matched for s in e.subjects or ()]
    for subject in subjects:
        if not any(matching.covers(p, str(subject), ignore_case=False) for p in allowed_subjects):
            shown = ", ".join(repr(s) for s in allowed_subjects) or "none"
            yield _Finding(
                Rule.TRUST_OIDC, path.rsplit(".Principal", 1)[0] + ".Condition",
                f"subject {subject!r} is not allowed; allowed subjects: {shown}",
            )


# --- ServiceAccounts (IRSA, EKS Pod Identity) ------------------------------------------


def _check_service_accounts(patterns: tuple[str, ...], c: _Context) -> Iterator[_Finding]:
    ns = c.view.namespace
    for index, (namespace, name) in enumerate(c.view.service_accounts):
        if not any(matching.name_matches(p, namespace, ns) for p in patterns):
            yield _Finding(
                Rule.SERVICE_ACCOUNT_NAMESPACES, f"spec.serviceAccounts[{index}]",
                f"ServiceAccount {namespace}/{name} is in a namespace roles may not trust; "
                f"allowed namespaces: {_listed(patterns, ns) or 'none'}",
            )


def service_accounts_allowed(
    guardrails: Sequence[Guardrail], view: EntityView, namespace_labels: Mapping[str, str]
) -> list[Violation]:
    """Why ServiceAccounts of *other* namespaces may not be trusted ([] when they may).

    The operator's default, like adoption: a role trusts ServiceAccounts of its own namespace
    only, because the operator also annotates them, and a tenant must not hand its role to
    (or change the pods of) another namespace. A guardrail selecting the role's namespace that
    lists the other namespace under `roles.serviceAccounts.namespaces` allows it; one such
    guardrail suffices. Refused whatever the guardrails' enforcement.
    """
    selecting = [g for g in guardrails if selects(g, namespace_labels)]
    ns = view.namespace
    found = []
    for index, (namespace, name) in enumerate(view.service_accounts):
        if namespace == ns or any(
            matching.name_matches(p, namespace, ns)
            for g in selecting
            for p in g.roles.service_account_namespaces or ()
        ):
            continue
        detail = (
            f"ServiceAccount {namespace}/{name} is in another namespace; a role trusts "
            f"ServiceAccounts of its own namespace ({ns!r}) unless an IAMGuardrail selecting "
            f"it lists {namespace!r} under {Rule.SERVICE_ACCOUNT_NAMESPACES}"
        )
        where = f"spec.serviceAccounts[{index}]"
        finding = _Finding(Rule.SERVICE_ACCOUNT_NAMESPACES, where, detail)
        found.append(_violation("", Enforcement.DENY, finding, view))
    return found


# --- adoption --------------------------------------------------------------------------


def adoption_allowed(
    guardrails: Sequence[Guardrail], view: EntityView, namespace_labels: Mapping[str, str]
) -> Violation | None:
    """None when the object may adopt (or does not ask to); otherwise why not.

    Adoption is off unless a guardrail selecting the namespace lists the name (and path)
    under `adoption.<kind>`; one such guardrail suffices. It is refused whatever the
    guardrails' enforcement: it is the operator's default, not a guardrail's rule.
    """
    if not view.adopt:
        return None
    info = _KINDS.get(view.kind)
    if info is None:
        raise ValueError(f"guardrails cannot judge kind {view.kind!r}")
    selecting = [g for g in guardrails if selects(g, namespace_labels)]
    for g in selecting:
        rules: NameRules | None = getattr(g.adoption, info.section)
        if rules is None or rules.names is None:
            continue
        ns = view.namespace
        if any(matching.name_matches(p, view.name, ns) for p in rules.names) and (
            rules.paths is None or any(matching.name_matches(p, view.path, ns) for p in rules.paths)
        ):
            return None
    offered = [
        f"{g.name}: {_listed(rules.names or (), view.namespace)}"
        for g in selecting
        if (rules := getattr(g.adoption, info.section)) is not None
    ]
    detail = (
        f"adopting {view.name!r} (path {view.path!r}) is not allowed; adoptable: "
        + ("; ".join(offered) if offered else f"nothing (no IAMGuardrail allows adopting "
           f"{info.section} in namespace {view.namespace!r})")
        + "; remove spec.adopt or pick another name"
    )
    name = selecting[0].name if len(selecting) == 1 else ""
    return _violation(name, Enforcement.DENY, _Finding(Rule.ADOPTION, "spec.adopt", detail), view)
