"""Which namespaces' ServiceAccounts a role may trust (core.guardrails, roles.serviceAccounts).

Covers: the operator's default without any guardrail (own namespace only, a cross-namespace
ServiceAccount denied whatever the enforcement, naming the rule and field); a guardrail listing
another namespace (exact, glob) allows it, one that does not list it leaves it denied; a
guardrail that does not select the role's namespace allows nothing; `namespaces: []` forbids
every ServiceAccount and `{namespace}` limits them to the own namespace (deny and warn); the
generated IRSA statement is judged by the trust rules too (oidcProviders subjects); parsing
errors name their field.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.core import podidentity
from controller.core.guardrails import (
    Enforcement,
    GuardrailError,
    Rule,
    evaluate,
    parse_guardrail,
    service_accounts_allowed,
)
from controller.core.view import EntityView

NS = "team-a"
TENANT = {"tenant": "yes"}
ACCOUNT = "111122223333"
ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123"


def guardrail(name: str = "g", enforcement: str = "deny", **spec: Any) -> Any:
    return parse_guardrail({"kind": "IAMGuardrail", "metadata": {"name": name}, "spec": {
        "namespaceSelector": {"matchLabels": TENANT}, "enforcement": enforcement, **spec}})


def role(*accounts: tuple[str, str], trust: dict[str, Any] | None = None) -> EntityView:
    return EntityView(kind="IAMRole", namespace=NS, name=f"{NS}-web", trust_policy=trust or {},
                      max_session_duration=3600, service_accounts=tuple(sorted(accounts)))


def rules(found: Any) -> list[tuple[str, str, str]]:
    return [(v.guardrail, v.rule, v.field) for v in found]


def test_own_namespace_needs_no_guardrail() -> None:
    assert evaluate([], role((NS, "web"), (NS, "api")), TENANT).allowed


def test_another_namespace_is_denied_by_default_naming_the_rule() -> None:
    result = evaluate([], role((NS, "web"), ("team-b", "api")), TENANT)

    assert rules(result.denied) == [("", "roles.serviceAccounts.namespaces",
                                     "spec.serviceAccounts[1]")]
    message = result.denied[0].message
    assert "no IAMGuardrail" in message and "team-b/api" in message
    assert "'team-a'" in message and "roles.serviceAccounts.namespaces" in message


@pytest.mark.parametrize("listed", [["team-b"], ["team-*"], ["{namespace}", "team-?"]])
def test_a_guardrail_listing_the_namespace_allows_it(listed: list[str]) -> None:
    rail = guardrail(roles={"serviceAccounts": {"namespaces": listed}})

    assert evaluate([rail], role(("team-b", "api")), TENANT).allowed


def test_listing_other_namespaces_does_not_allow_this_one() -> None:
    rail = guardrail(roles={"serviceAccounts": {"namespaces": ["{namespace}", "shared"]}})

    result = evaluate([rail], role(("team-b", "api")), TENANT)

    # The guardrail's own rule and the operator's default both say no.
    assert rules(result.denied) == [
        ("g", "roles.serviceAccounts.namespaces", "spec.serviceAccounts[0]"),
        ("", "roles.serviceAccounts.namespaces", "spec.serviceAccounts[0]"),
    ]
    assert "allowed namespaces: 'team-a', 'shared'" in result.denied[0].message


def test_a_guardrail_that_does_not_select_the_namespace_allows_nothing() -> None:
    rail = guardrail(roles={"serviceAccounts": {"namespaces": ["*"]}})

    assert not evaluate([rail], role(("team-b", "api")), {"tenant": "no"}).allowed
    assert service_accounts_allowed([rail], role(("team-b", "api")), TENANT) == []


def test_an_empty_list_forbids_every_service_account() -> None:
    rail = guardrail(roles={"serviceAccounts": {"namespaces": []}})

    result = evaluate([rail], role((NS, "web")), TENANT)

    assert rules(result.denied) == [("g", "roles.serviceAccounts.namespaces",
                                     "spec.serviceAccounts[0]")]
    assert "allowed namespaces: none" in result.denied[0].message
    assert evaluate([rail], role(), TENANT).allowed  # a role without ServiceAccounts passes


def test_warn_enforcement_warns_about_its_own_rule_only() -> None:
    rail = guardrail(enforcement="warn", roles={"serviceAccounts": {"namespaces": []}})

    result = evaluate([rail], role((NS, "web"), ("team-b", "api")), TENANT)

    assert [v.enforcement for v in result.warned] == [Enforcement.WARN, Enforcement.WARN]
    # The default is the operator's, not the guardrail's: still denied.
    assert rules(result.denied) == [("", "roles.serviceAccounts.namespaces",
                                     "spec.serviceAccounts[1]")]


def test_the_generated_statement_meets_the_trust_rules() -> None:
    """Trust rules judge the IRSA statement like a hand-written one: a subject list that does
    not cover the ServiceAccount is refused."""
    statement = podidentity.irsa_statement(
        [podidentity.ServiceAccountRef(NS, "web")], ISSUER, ACCOUNT)
    trust = {"Version": "2012-10-17", "Statement": [statement]}
    provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.*"
    allowed = guardrail(roles={"trust": {"oidcProviders": [
        {"provider": provider, "subjects": ["system:serviceaccount:{namespace}:*"]}]}})
    narrow = guardrail(roles={"trust": {"oidcProviders": [
        {"provider": provider, "subjects": ["system:serviceaccount:{namespace}:batch-*"]}]}})

    assert evaluate([allowed], role((NS, "web"), trust=trust), TENANT).allowed
    denied = evaluate([narrow], role((NS, "web"), trust=trust), TENANT).denied
    assert [v.rule for v in denied] == [str(Rule.TRUST_OIDC)]


@pytest.mark.parametrize(
    ("service_accounts", "error"),
    [
        ({}, "spec.roles.serviceAccounts.namespaces: is required"),
        ({"namespaces": "team-b"}, "spec.roles.serviceAccounts.namespaces: must be a list"),
        ({"namespaces": ["{ns}"]}, "unknown placeholder {ns}"),
        ({"namespaces": ["x"], "names": ["y"]}, "spec.roles.serviceAccounts.names: unknown field"),
    ],
)
def test_parse_errors_name_the_field(service_accounts: dict[str, Any], error: str) -> None:
    with pytest.raises(GuardrailError) as caught:
        guardrail(roles={"serviceAccounts": service_accounts})
    assert any(error in e for e in caught.value.errors), caught.value.errors
