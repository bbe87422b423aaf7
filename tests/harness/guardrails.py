"""IAMGuardrails for e2e tests that exercise adoption itself (adoption is refused unless a
guardrail allows the name: docs/guardrails.md). Plain dicts: the harness does not import the
controller. Guardrails are cluster-scoped and the session's control plane is shared, so each
one here selects a single namespace (`kubernetes.io/metadata.name`, set by the API server) and
is deleted when the test is done."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from tests.harness.envtest import Cluster

API_VERSION = "iam.rolekeeper.dev/v1alpha1"


def adoption_guardrail(
    namespace: str, roles: Iterable[str] = (), users: Iterable[str] = (), name: str = ""
) -> dict[str, Any]:
    """An IAMGuardrail that lets objects of `namespace` adopt exactly these role and user names
    (patterns as in docs/guardrails.md; ["*"]: any name) and says nothing else."""
    adoption = {section: {"names": sorted(names)}
                for section, names in (("roles", set(roles)), ("users", set(users))) if names}
    return {
        "apiVersion": API_VERSION,
        "kind": "IAMGuardrail",
        "metadata": {"name": (name or f"adopt-{namespace}")[:63]},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "adoption": adoption,
        },
    }


@contextlib.contextmanager
def allowing_adoption(
    cluster: Cluster, namespace: str, roles: Iterable[str] = (), users: Iterable[str] = ()
) -> Iterator[dict[str, Any]]:
    """Apply `adoption_guardrail` for the block, then delete it."""
    guardrail = adoption_guardrail(namespace, roles, users)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(guardrail))
    try:
        yield guardrail
    finally:
        cluster.kubectl("delete", "iamguardrail", guardrail["metadata"]["name"],
                        "--ignore-not-found", check=False)
