"""The Kubernetes side of spec.serviceAccounts: the IRSA annotation, put on and taken back.

An IAMRole that lists ServiceAccounts (IRSA) gets its trust statements generated
(`core.podidentity`, bound here with the operator's OIDC issuer and the role's account), and
once the role is in sync each listed ServiceAccount gets `eks.amazonaws.com/role-arn: <ARN>`.
The rules, each checked on every reconcile of the role:

- A ServiceAccount is annotated only while the role is Ready; one that does not exist yet keeps
  the role at Ready=False DependencyNotReady, so the drift sweep checks it again every interval
  (the annotation follows within one interval of the ServiceAccount's creation).
- An annotation naming another ARN is never overwritten (Ready=False Conflict, and the value is
  not quoted: it may be another namespace's role). Writes carry the resourceVersion read, so a
  concurrent writer makes the patch fail (retried) instead of being overwritten.
- An annotation is removed only while it still holds this role's ARN: when the ServiceAccount
  leaves the list (or the object turns to EKS Pod Identity only), and when the object is deleted
  (not with deletionPolicy Retain: the role stays, and so do the workloads that use it).
- status.serviceAccounts records which ServiceAccounts the object annotates (or waits for), so
  one that left the spec, or the ones of an object whose spec no longer parses, are still found.
- managementPolicy: Observe writes nothing, here either.

No watch on ServiceAccounts: RBAC get and patch only, no memory per ServiceAccount of the
cluster; the price is the latency above (docs/pod-identity.md).
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import kopf

from controller.core import podidentity
from controller.core.podidentity import ServiceAccountRef, TrustContext
from controller.core.status import Reason
from controller.engine.reconcile import Outcome
from controller.kinds import registry
from controller.kinds.base import Desired
from controller.operator import kube
from controller.settings import Settings

log = logging.getLogger(__name__)

ANNOTATION = podidentity.ANNOTATION
STATUS_FIELD = "serviceAccounts"
DISCOVERY_PATH = "/.well-known/openid-configuration"
MISSING_ISSUER = (
    "spec.serviceAccounts: the cluster's OIDC issuer is not known, so the IRSA trust statement "
    f"cannot be written: the operator found none at start (GET {DISCOVERY_PATH} on the API "
    "server; see its log). Run it with --oidc-issuer URL (on EKS: the cluster's OpenID Connect "
    "provider URL)"
)


class State:
    """What status.serviceAccounts says of one ServiceAccount."""

    ANNOTATED = "Annotated"  # holds this role's ARN
    NOT_FOUND = "NotFound"  # does not exist (yet): annotated when it appears
    CONFLICT = "Conflict"  # holds another ARN: never overwritten
    ERROR = "Error"  # could not be read or written (RBAC, a concurrent write): retried
    RELEASING = "Releasing"  # left the spec, still holds this role's ARN: removal retried


@dataclass(frozen=True)
class Seen:
    account: ServiceAccountRef
    state: str
    problem: str = ""

    def to_json(self) -> dict[str, str]:
        return {"namespace": self.account.namespace, "name": self.account.name,
                "state": self.state}  # fmt: skip


# --- the trust statements ---------------------------------------------------------------------


def with_trust(desired: Desired, settings: Settings, account_id: str, partition: str) -> Desired:
    """`desired` with the trust statements its spec.serviceAccounts asks for, for the AWS
    account it lives in; unchanged for every other object."""
    if desired.pod_identity is None:
        return desired
    context = TrustContext(
        issuer=settings.pod_identity.oidc_issuer,
        account_id=account_id,
        partition=partition,
        trust_policy_size=settings.limits.trust_policy_size,
        missing_issuer=MISSING_ISSUER,
    )
    return registry.of(desired).bind_trust(desired, context)


def discover_issuer(timeout: float = 10.0) -> tuple[str | None, str]:
    """(the cluster's service-account issuer, "") from the API server's OIDC discovery document,
    with the credentials Kopf will log in with (in-cluster ServiceAccount, else kubeconfig); or
    (None, why not). Called once, before the operator starts (Kopf's own client only exists
    after its startup handlers). Every ServiceAccount may read the document by default (the
    system:service-account-issuer-discovery ClusterRoleBinding)."""
    settings = kopf.OperatorSettings()
    info = None
    for login in (kopf.login_with_service_account, kopf.login_with_kubeconfig):
        try:
            info = login(settings=settings)
        except Exception as exc:  # a broken kubeconfig: say why, and run on
            return None, f"no Kubernetes credentials ({type(exc).__name__}: {exc})"
        if info is not None:
            break
    if info is None:
        return None, "no Kubernetes credentials (neither in-cluster nor a kubeconfig)"
    url = info.server.rstrip("/") + DISCOVERY_PATH
    request = urllib.request.Request(url, headers=info.as_http_headers())
    context: ssl.SSLContext | None = info.as_ssl_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            document = json.loads(answer.read(65536))
        return podidentity.normalize_issuer(str(document["issuer"])), ""
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"GET {url}: {type(exc).__name__}: {exc}"


# --- annotations --------------------------------------------------------------------------------


async def reconcile(
    body: kopf.Body, desired: Desired, status: Mapping[str, Any], outcome: Outcome
) -> tuple[Outcome, list[dict[str, str]] | None]:
    """Annotate the listed ServiceAccounts of a Ready role and release those that left; the
    outcome made not Ready while any cannot be annotated, and status.serviceAccounts (None: as
    it is)."""
    identity = desired.pod_identity
    recorded = recorded_accounts(status)
    if desired.observe_only or not outcome.ready or not outcome.verdict.arn:
        return outcome, None
    if (identity is None or not identity.irsa) and not recorded:
        return outcome, None
    arn = outcome.verdict.arn
    wanted = identity.service_accounts if identity is not None and identity.irsa else ()
    seen = [await _annotate(body, account, arn) for account in wanted]
    for account in sorted(set(recorded) - set(wanted)):
        released = await _release(body, account, arn)
        if released is not None:
            seen.append(released)
    trouble = [s for s in seen if s.state != State.ANNOTATED]
    if not trouble:
        return outcome, [s.to_json() for s in seen]
    conflict = any(s.state == State.CONFLICT for s in trouble)
    message = "IAM role is in sync, but " + "; ".join(s.problem for s in trouble)
    verdict = replace(
        outcome.verdict,
        ready=False,
        reason=Reason.CONFLICT if conflict else Reason.DEPENDENCY_NOT_READY,
        message=message,
    )
    return replace(outcome, verdict=verdict, up_to_date=False), [s.to_json() for s in seen]


def patch_status(
    current: Mapping[str, Any], patch: kopf.Patch, seen: Sequence[Mapping[str, str]] | None
) -> None:
    """status.serviceAccounts = `seen` (removed when empty); nothing when None or unchanged."""
    if seen is None:
        return
    new = list(seen) or None
    if current.get(STATUS_FIELD) != new:
        patch.status[STATUS_FIELD] = new


async def release(body: kopf.Body, desired: Desired | None, status: Mapping[str, Any]) -> None:
    """After finalize (the role deleted): take this role's ARN off every ServiceAccount it
    annotated. With deletionPolicy Retain the role stays in AWS and so do the annotations.
    Best effort: a ServiceAccount that cannot be written gets a Warning Event, not a finalizer
    that never goes (the annotation then names a deleted role: pods get no credentials)."""
    arn = str(status.get("arn") or "")
    if not arn or (desired is not None and desired.deletion_policy == "Retain"):
        return
    if desired is not None and desired.observe_only:
        return
    identity = desired.pod_identity if desired is not None else None
    listed = identity.service_accounts if identity is not None and identity.irsa else ()
    for account in sorted({*recorded_accounts(status), *listed}):
        left = await _release(body, account, arn)
        if left is not None:
            kopf.warn(body, reason="ServiceAccountNotReleased", message=left.problem)


def recorded_accounts(status: Mapping[str, Any]) -> list[ServiceAccountRef]:
    """The ServiceAccounts status.serviceAccounts lists."""
    found = []
    for item in status.get(STATUS_FIELD) or ():
        if isinstance(item, Mapping) and item.get("namespace") and item.get("name"):
            found.append(ServiceAccountRef(str(item["namespace"]), str(item["name"])))
    return found


async def _annotate(body: kopf.Body, account: ServiceAccountRef, arn: str) -> Seen:
    try:
        found = await kube.request("get", _url(account), what=f"read ServiceAccount {account}")
    except kube.NotFound:
        return Seen(account, State.NOT_FOUND,
                    f"ServiceAccount {account} does not exist yet (it is annotated with the "
                    "role's ARN once it does; checked every drift interval)")  # fmt: skip
    except kube.KubeError as exc:
        return Seen(account, State.ERROR, str(exc))
    meta = found.get("metadata") or {}
    current = (meta.get("annotations") or {}).get(ANNOTATION)
    if current == arn:
        return Seen(account, State.ANNOTATED)
    if current:
        return Seen(account, State.CONFLICT,
                    f"ServiceAccount {account} is already annotated {ANNOTATION} with another "
                    "role's ARN; Rolekeeper never overwrites it: remove that annotation, or this "
                    "ServiceAccount from spec.serviceAccounts")  # fmt: skip
    try:
        await _write(account, meta, arn, "annotate")
    except kube.NotFound:
        return Seen(account, State.NOT_FOUND, f"ServiceAccount {account} was deleted meanwhile")
    except kube.KubeError as exc:
        return Seen(account, State.ERROR, str(exc))
    kopf.event(body, type="Normal", reason="ServiceAccountAnnotated",
               message=f"Annotated ServiceAccount {account} with {ANNOTATION}")  # fmt: skip
    return Seen(account, State.ANNOTATED)


async def _release(body: kopf.Body, account: ServiceAccountRef, arn: str) -> Seen | None:
    """Remove `arn` from the ServiceAccount if it still holds it; None when done (or nothing
    to do), else what is left to retry."""
    try:
        found = await kube.request("get", _url(account), what=f"read ServiceAccount {account}")
        meta = found.get("metadata") or {}
        if (meta.get("annotations") or {}).get(ANNOTATION) != arn:
            return None  # someone else's, or nobody's: not ours to touch
        await _write(account, meta, None, "release")
    except kube.NotFound:
        return None
    except kube.KubeError as exc:
        return Seen(account, State.RELEASING,
                    f"the {ANNOTATION} annotation of ServiceAccount {account} could not be "
                    f"removed: {exc}")  # fmt: skip
    kopf.event(body, type="Normal", reason="ServiceAccountReleased",
               message=f"Removed {ANNOTATION} from ServiceAccount {account}")  # fmt: skip
    return None


async def _write(account: ServiceAccountRef, meta: Mapping[str, Any], value: str | None,
                 verb: str) -> None:  # fmt: skip
    """Set (or, with None, remove) the annotation; the API server refuses the patch (409) if
    the ServiceAccount changed since `meta` was read, so nobody's concurrent write is lost."""
    patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                          "annotations": {ANNOTATION: value}}}  # fmt: skip
    await kube.request("patch", _url(account), patch, what=f"{verb} ServiceAccount {account}",
                       merge=True)  # fmt: skip


def _url(account: ServiceAccountRef) -> str:
    return f"/api/v1/namespaces/{account.namespace}/serviceaccounts/{account.name}"
