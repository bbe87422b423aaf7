"""Validating admission: a tenant sees a refusal at `kubectl apply`, naming the broken rule.

The webhook runs the same checks as the operator, from the same code: the kind's parser (the
IAM grammar and limits the CRD schema cannot express: minified sizes, quotas, duplicates) and
the guardrails through `engine.reconcile.refuse_early` with the object's `Gate`. It is early
feedback, not the gate itself: the operator judges every object again before any AWS call, so
`failurePolicy: Ignore` (the default) is safe — a webhook that is down or bypassed lets an object
be stored, never lets it reach AWS. IAMGuardrail objects are checked too, so a typo in a rule
is refused instead of failing closed at run time.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import kopf

from controller.core.errors import SpecError
from controller.core.guardrails import GuardrailError, parse_guardrail
from controller.engine.reconcile import Verb, refuse_early
from controller.kinds import registry
from controller.kinds.registry import GROUP, VERSION
from controller.operator import platform
from controller.operator import serviceaccounts as service_accounts
from controller.settings import Settings

log = logging.getLogger(__name__)
OPERATIONS: list[Literal["CREATE", "UPDATE"]] = ["CREATE", "UPDATE"]


def handler_id(plural: str) -> str:
    """A webhook's id: its URL path on the server (`/iamroles.iam.rolekeeper.dev`) and, with
    Kopf's managed configuration, its name (`<id>.<configuration name>`). The API server wants
    webhook names of at least three dot-separated segments, so the id carries the API group:
    a bare `validate-iamroles` made every managed configuration invalid (422) and stopped the
    operator. manifests/webhook.yaml uses the same paths."""
    return f"{plural}.{GROUP}"


def register(fail_closed: bool) -> None:
    """Validate every kind and IAMGuardrail; `fail_closed` sets failurePolicy: Fail."""
    for kind in registry.KINDS.values():
        kopf.on.validate(
            GROUP,
            VERSION,
            kind.plural,
            id=handler_id(kind.plural),
            operations=OPERATIONS,
            ignore_failures=not fail_closed,
        )(validate_object)
    kopf.on.validate(
        GROUP,
        VERSION,
        "iamguardrails",
        id=handler_id("iamguardrails"),
        operations=OPERATIONS,
        ignore_failures=not fail_closed,
    )(validate_guardrail)


def validate_object(body: kopf.Body, memo: kopf.Memo, warnings: list[str], **indices: Any) -> None:
    """Refuse what the operator would refuse before any AWS call; warn for `warn` guardrails."""
    settings: Settings = memo.runtime.settings
    clients = memo.runtime.clients
    try:
        desired = registry.parse(body, settings.limits)
    except SpecError as exc:
        raise kopf.AdmissionError("\n".join(exc.errors), code=422) from exc
    kind = registry.of(desired)
    gate = platform.gate(
        indices,
        desired,
        account_id=clients.account_id,
        caller_arn=clients.caller_arn,
        created=str(body.get("metadata", {}).get("creationTimestamp") or ""),
    )
    # The trust statements of spec.serviceAccounts, as the operator generates them, so the
    # guardrails' trust rules judge them here too (the namespace's account, from the gate).
    account = gate.account_id or clients.account_id
    desired = service_accounts.with_trust(desired, settings, account, clients.partition)
    decision = refuse_early(kind, desired, gate=gate)
    if decision is None:
        return
    warnings.extend(decision.warnings)
    if decision.verb is not Verb.NOOP:
        raise kopf.AdmissionError("\n".join(decision.errors), code=403)


def validate_guardrail(body: kopf.Body, **_: Any) -> None:
    """An IAMGuardrail that cannot be read is refused (the operator would fail closed on it)."""
    try:
        parse_guardrail(body)
    except GuardrailError as exc:
        raise kopf.AdmissionError("\n".join(exc.errors), code=422) from exc
