"""A kind-neutral view of what one object asks of IAM: the input of guardrails and findings.

Every kind turns its parsed spec into an `EntityView` (`Kind.view`), so the guardrail and
findings rules are written once, never per kind, and run the same way in the admission webhook,
the operator and `rolekeeper plan`/`lint`. Field names in `documents` are spec field paths, so a
violation or finding can say exactly where it is ("spec.inlinePolicies.logs").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EntityView:
    """What an object asks of IAM, in terms every rule understands."""

    kind: str  # "IAMRole" | "IAMUser" | "IAMPolicy"
    namespace: str
    name: str  # the AWS name (roleName / userName / policyName)
    path: str = "/"
    trust_policy: Mapping[str, Any] | None = None  # roles only: spec.assumeRolePolicy
    # Identity-policy documents by spec field path: "spec.inlinePolicies.<name>", "spec.document".
    documents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    managed_policies: frozenset[str] = frozenset()  # ARNs (references already resolved)
    permissions_boundary: str | None = None  # ARN
    max_session_duration: int | None = None  # roles only
    groups: frozenset[str] = frozenset()  # users only
    access_keys: bool = False  # a user whose spec asks Rolekeeper for access keys
    adopt: bool = False
    # roles only: spec.serviceAccounts as (namespace, name), namespaces defaulted, sorted
    service_accounts: tuple[tuple[str, str], ...] = ()
    observe_only: bool = False  # managementPolicy: Observe (never writes)
