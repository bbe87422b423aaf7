"""What the platform has said, as the operator sees it: guardrails, namespaces, objects, cluster.

Kopf indices keep every IAMGuardrail (parsed), every namespace's labels and uid, and every
Rolekeeper object's namespace and age, so building an object's `Gate` costs no API call; and
every object's latest body, which the drift sweep checks outside Kopf's handlers. The
cluster identity (the `rolekeeper.dev/cluster` ownership tag) is `--cluster-id`, else the uid of
the `kube-system` namespace: stable for the life of a cluster, different in every other one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

from controller.aws.accounts import Account, AccountError, Choice, choose, parse_account
from controller.core.guardrails import Guardrail, GuardrailError, parse_guardrail
from controller.engine import references
from controller.engine.gate import Gate, operator_identity
from controller.kinds import registry
from controller.kinds.base import Desired, PolicyRef
from controller.kinds.registry import GROUP, VERSION

log = logging.getLogger(__name__)

NAMESPACES = "rk_namespaces"
POLICIES = "rk_policies"
GUARDRAILS = "rk_guardrails"
OBJECTS = "rk_objects"
BODIES = "rk_bodies"
ACCOUNTS = "rk_accounts"
IDENTITY_NAMESPACE = "kube-system"

# (kind, creationTimestamp, uid) of one object, as the objects index keeps it.
Age = tuple[str, str, str]


def register() -> None:
    """Register the indices (Kopf fills them before any handler runs)."""
    kopf.index("", "v1", "namespaces", id=NAMESPACES)(_namespace)
    kopf.index(GROUP, VERSION, "iamguardrails", id=GUARDRAILS)(_guardrail)
    kopf.index(GROUP, VERSION, "iamaccounts", id=ACCOUNTS)(_account)
    kopf.index(GROUP, VERSION, "iampolicies", id=POLICIES)(_policy)
    for kind in registry.KINDS.values():
        kopf.index(GROUP, VERSION, kind.plural, id=f"{OBJECTS}_{kind.plural}")(_object)
        kopf.index(GROUP, VERSION, kind.plural, id=f"{BODIES}_{kind.plural}")(_body)


def _namespace(name: str, labels: Mapping[str, str], uid: str, **_: Any) -> dict[str, Any]:
    return {name: (dict(labels), uid)}


def _guardrail(body: kopf.Body, name: str, **_: Any) -> dict[str, Guardrail | str]:
    try:
        return {name: parse_guardrail(body)}
    except GuardrailError as exc:
        log.warning("IAMGuardrail %s cannot be read: %s", name, exc)
        return {name: f"{name}: {exc}"}


def _account(body: kopf.Body, name: str, **_: Any) -> dict[str, Account | str]:
    try:
        return {name: parse_account(body)}
    except AccountError as exc:
        log.warning("IAMAccount %s cannot be read: %s", name, exc)
        return {name: f"{name}: {exc}"}


def account(indices: Mapping[str, Any], namespace: str) -> Choice:
    """Which AWS account the objects of `namespace` live in (IAMAccount, or the operator's own
    when `Choice.account` is None), from the IAMAccount and namespace indices."""
    found: list[Account] = []
    broken: list[str] = []
    accounts_index = indices.get(ACCOUNTS)
    for name in accounts_index or ():
        for value in _values(accounts_index, name):
            (found.append if isinstance(value, Account) else broken.append)(value)
    seen = _values(indices.get(NAMESPACES), namespace)
    if not seen and (found or broken):
        # Labels unknown (the namespace's watch event may come after its objects'): choosing
        # now could pick the operator's own account for a namespace an IAMAccount selects.
        return Choice(problem=f"namespace {namespace!r} is not seen yet", wait=True)
    return choose(found, namespace, seen[0][0] if seen else {}, broken)


def _object(
    body: kopf.Body, namespace: str | None, uid: str, meta: kopf.Meta, **_: Any
) -> dict[str, Age]:
    return {namespace or "": (str(body["kind"]), str(meta.creation_timestamp or ""), uid)}


# What the drift checks never read, and which can be most of an object's size: the field
# managers' record of every field (server-side apply), and kubectl's copy of the whole object.
UNREAD_METADATA = ("managedFields",)
UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _body(body: kopf.Body, uid: str, **_: Any) -> dict[str, kopf.Body]:
    """The latest body of every object by uid, for the drift sweep (it runs outside handlers),
    without what the checks never read (shallow copies: spec and status are shared with
    Kopf's own, not copied). Measured at N = 1,000 in docs/performance.md."""
    raw = dict(body)
    metadata = {k: v for k, v in (raw.get("metadata") or {}).items() if k not in UNREAD_METADATA}
    annotations = metadata.get("annotations")
    if annotations and any(key in annotations for key in UNREAD_ANNOTATIONS):
        metadata["annotations"] = {
            k: v for k, v in annotations.items() if k not in UNREAD_ANNOTATIONS
        }
    raw["metadata"] = metadata
    return {uid: kopf.Body(cast(kopf.RawBody, raw))}


def body(indices: Mapping[str, Any], uid: str) -> kopf.Body | None:
    """The latest body of the object with `uid` (None: deleted, or not seen yet)."""
    for kind in registry.KINDS.values():
        found = _values(indices.get(f"{BODIES}_{kind.plural}"), uid)
        if found:
            return cast(kopf.Body, found[0])
    return None


def _policy(
    namespace: str | None, name: str, status: kopf.Status, annotations: Mapping[str, str], **_: Any
) -> dict[str, tuple[str, bool, str]]:
    """(ARN, Ready, shared-with annotation) of an IAMPolicy, by namespace/name."""
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    share = annotations.get(references.SHARE_ANNOTATION, "")
    return {f"{namespace}/{name}": (str(status.get("arn") or ""), ready, share)}


def policy_arn(indices: Mapping[str, Any], ref: PolicyRef, namespace: str) -> tuple[str, str]:
    """The ARN an object of `namespace` may use for `ref`, or ("", why not)."""
    found = _values(indices.get(POLICIES), f"{ref.namespace}/{ref.name}")
    if not found:
        return "", "does not exist"
    arn, ready, share = found[0]
    if ref.namespace != namespace and not references.shared_with(share, namespace):
        return "", (
            f"is not shared with namespace {namespace} (its {references.SHARE_ANNOTATION} "
            "annotation does not list it)"
        )
    if not ready or not arn:
        return "", "is not Ready yet"
    return str(arn), ""


def _values(index: Any, key: str) -> list[Any]:
    return list(index.get(key, ())) if index is not None else []


def cluster_id(configured: str, indices: Mapping[str, Any]) -> str:
    """The cluster identity: configured, else the kube-system namespace's uid ("" if unknown)."""
    if configured:
        return configured
    found = _values(indices.get(NAMESPACES), IDENTITY_NAMESPACE)
    return str(found[0][1]) if found else ""


def gate(
    indices: Mapping[str, Any],
    desired: Desired,
    *,
    account_id: str,
    caller_arn: str,
    created: str = "",
) -> Gate:
    """The Gate for one object. `created` is its creationTimestamp ("" for an object not yet
    stored, which every existing object precedes)."""
    rules: list[Guardrail] = []
    broken: list[str] = []
    guardrails_index = indices.get(GUARDRAILS)
    for name in guardrails_index or ():
        for value in _values(guardrails_index, name):
            (rules if isinstance(value, Guardrail) else broken).append(value)
    namespace = desired.ref.namespace
    labels = (
        {namespace: found[0][0]} if (found := _values(indices.get(NAMESPACES), namespace)) else {}
    )
    chosen = account(indices, namespace).account
    if chosen is not None:
        # The namespace's IAMAccount: its id for "self" and the accounts rule, and the role the
        # operator acts as there, which nothing may adopt.
        account_id, caller_arn = chosen.account_id, chosen.role_arn
    return Gate(
        guardrails=tuple(sorted(rules, key=lambda g: g.name)),
        labels=labels,
        preceding=_preceding(_ages(indices, namespace), desired.ref.uid, created),
        account_id=account_id,
        operator=operator_identity(caller_arn),
        broken=tuple(sorted(broken)),
    )


def _ages(indices: Mapping[str, Any], namespace: str) -> Iterable[Age]:
    for kind in registry.KINDS.values():
        yield from _values(indices.get(f"{OBJECTS}_{kind.plural}"), namespace)


def _preceding(ages: Iterable[Age], uid: str, created: str) -> dict[str, int]:
    """Objects of the namespace older than this one, by kind (ties broken by uid), so a limit
    lowered later refuses the newest objects, never the ones that were there first."""
    counts: Counter[str] = Counter()
    for kind, stamp, other in ages:
        if other == uid:
            continue
        if not created or (stamp, other) < (created, uid):
            counts[kind] += 1
    return dict(counts)
