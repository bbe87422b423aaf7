"""Access-key Secrets: the one place where a key's secret half exists outside AWS.

The handlers call `reconcile` after an IAMUser's entity is in sync and `release` after it is
finalized. `converge` runs the steps `kinds.accesskeys.plan` decides, in the order that keeps a
crash harmless (see that module): announce in the Secret, CreateAccessKey, write the key into
the Secret; retire the previous key only after its grace period; never touch the Secret's key.

The secret is a separate channel from everything else the operator reports: it goes from
CreateAccessKey's answer (`apply.execute`'s `Applied.response`, which nothing logs) into a
`NewKey` (whose repr hides it) and from there only into the Secret's `data`. Actions, Events,
status, metrics, log lines and exception messages carry key ids at most.

Kubernetes calls go through `operator.kube` (Kopf's own authenticated session).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import kopf

from controller.core.actions import Action
from controller.core.errors import AWSError, TerminalError
from controller.core.status import Reason, Verdict
from controller.engine import apply
from controller.engine.reconcile import Outcome
from controller.kinds import accesskeys, registry
from controller.kinds.accesskeys import AccessKeySpec, AwsKey, NewKey, Record
from controller.kinds.base import Desired
from controller.kinds.registry import API_VERSION, GROUP
from controller.operator import kube

log = logging.getLogger(__name__)

PREFIX = f"{GROUP}/"
MANAGED_BY = "app.kubernetes.io/managed-by"
OWNER_LABEL = f"{GROUP}/iamuser"
PREVIOUS = f"{PREFIX}previous-access-key-id"
RETIRE_AT = f"{PREFIX}previous-access-key-retires-at"
LAST_ROTATION = f"{PREFIX}last-rotation"
ROTATE_REQUEST = f"{PREFIX}rotate-request"
PENDING = f"{PREFIX}pending-create"
# GetAccessKeyLastUsed at most this often per key (AWS itself updates it about hourly).
LAST_USED_EVERY = 300.0

Run = Callable[..., Awaitable[Any]]  # runs a blocking AWS function off the event loop
Hook = Callable[[str], None]  # tests: called after each step ("announced", "created", ...)


class SecretError(Exception):
    """A Kubernetes API failure on the Secret (the message names the Secret, never data)."""


class Store(Protocol):
    """Where one IAMUser's key lives (a Kubernetes Secret; a dict in the aws-tier tests)."""

    async def read(self) -> Record: ...
    async def save(self, record: Record, key: NewKey | None) -> None: ...
    async def delete(self) -> None: ...


@dataclass(frozen=True)
class KeyResult:
    """What converging one user's key concluded."""

    verdict: Verdict | None  # None: the key is as spec.accessKey asks
    applied: tuple[Action, ...]
    status: dict[str, Any]  # status.accessKey


# --- the handlers' side -----------------------------------------------------------------------


def entity_only(desired: Desired) -> Desired:
    """`desired` without its access key: the entity's reconcile never creates a key (its secret
    would have nowhere to go); `reconcile` below does, after the entity is in sync."""
    return replace(desired, access_key=None) if desired.access_key is not None else desired


async def reconcile(
    run: Run,
    iam: Any,
    body: kopf.Body,
    desired: Desired,
    status: Mapping[str, Any],
    outcome: Outcome,
) -> tuple[Outcome, dict[str, Any] | None]:
    """The entity's outcome with the key's converged in (None: no status.accessKey)."""
    spec = desired.access_key
    if spec is None or desired.observe_only or not outcome.ready:
        return outcome, None
    store = KubeSecret(desired.ref.namespace, spec.secret_name, owner(body))
    try:
        result = await converge(
            store, run, iam, registry.of(desired), spec, desired.aws_name, known(status)
        )
    except SecretError as exc:
        message = f"{exc}; see docs/access-keys.md (RBAC)"
        verdict = Verdict(False, Reason.DEPENDENCY_NOT_READY, message, *_ids(outcome))
        return replace(outcome, verdict=verdict, up_to_date=False), None
    except TerminalError as exc:
        verdict = Verdict(False, Reason.AWS_ERROR, exc.explain(), *_ids(outcome))
        return replace(outcome, verdict=verdict, up_to_date=False,
                       applied=outcome.applied + exc.applied), None  # fmt: skip
    except AWSError as exc:  # transient: the caller backs off (Events for what was applied)
        exc.applied = outcome.applied + exc.applied
        raise
    applied = outcome.applied + result.applied
    if result.verdict is None:
        return replace(outcome, applied=applied), result.status
    verdict = replace(result.verdict, arn=outcome.verdict.arn, entity_id=outcome.verdict.entity_id)
    return replace(outcome, verdict=verdict, applied=applied, up_to_date=False), result.status


def patch_status(current: Mapping[str, Any], patch: kopf.Patch, key: dict[str, Any] | None,
                 managed: bool) -> None:  # fmt: skip
    """status.accessKey = `key` (fields it lacks removed); removed when keys are not managed."""
    old = current.get("accessKey")
    if not managed:
        if old is not None:
            patch.status["accessKey"] = None
        return
    if key is None or old == key:
        return
    cleared = {k: None for k in (old or {}) if k not in key}
    patch.status["accessKey"] = {**cleared, **key}


def known(status: Mapping[str, Any]) -> frozenset[str]:
    """Key ids the object's status records as Rolekeeper's."""
    found = status.get("accessKey") or {}
    ids = (found.get("accessKeyId"), found.get("previousAccessKeyId"))
    return frozenset(str(k) for k in ids if k)


async def release(body: kopf.Body, desired: Desired | None, status: Mapping[str, Any],
                  retain: bool) -> None:  # fmt: skip
    """After finalize: delete the Secret (Retain: keep it, without the owner reference, as the
    user and its key stay in AWS). Only a Secret carrying this object's labels is touched."""
    name = desired.access_key.secret_name if desired and desired.access_key else ""
    name = name or str((status.get("accessKey") or {}).get("secretName") or "")
    if not name:
        return
    store = KubeSecret(str(body.metadata.namespace), name, owner(body))
    record = await store.read()
    if not record.exists or not record.ours:
        return
    if retain:
        await store.disown()
    else:
        await store.delete()


def owner(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": str(body["kind"]),
        "name": str(body.metadata.name),
        "uid": str(body.metadata.uid),
        "controller": True,
    }


def _ids(outcome: Outcome) -> tuple[str, str]:
    return outcome.verdict.arn, outcome.verdict.entity_id


# --- converging one user's key ----------------------------------------------------------------


async def converge(
    store: Store,
    run: Run,
    iam: Any,
    kind: Any,
    spec: AccessKeySpec,
    user: str,
    known_ids: frozenset[str] = frozenset(),
    hook: Hook | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> KeyResult:
    """Run planned steps until the key is as `spec` asks (at most a handful: orphans, the
    previous key, a creation). AWS errors propagate with `applied` set; SecretError too."""
    record = await store.read()
    keys = await run(accesskeys.list_keys, iam, user)
    applied: list[Action] = []
    verdict: Verdict | None = None
    try:
        for _ in range(8):
            step = accesskeys.plan(spec, record, keys, user, now(), known_ids)
            if step.refuse:
                verdict = Verdict(False, Reason.CONFLICT, step.refuse)
                break
            if step.done:
                break
            if step.create is not None and step.record is not None:
                # Announce first: what appears after this is recognisably ours.
                announced = replace(
                    record, exists=True, pending=tuple(sorted(k.key_id for k in keys))
                )
                await store.save(announced, None)
                record = announced
                _call(hook, "announced")
                done = await run(apply.execute, iam, kind, (step.create,))
                key = accesskeys.new_key(done[0].response)
                applied.append(step.create)
                _call(hook, "created")
                written = replace(step.record, current=key.key_id)
                await store.save(written, key)
                record, keys = written, (*keys, AwsKey(key.key_id, True, key.created))
                log.info("%s: %s written to Secret %s", user, key, spec.secret_name)
                _call(hook, "written")
                break  # one key per run, whatever the clocks say: the next run sees it
            if step.actions:
                actions = accesskeys.guard(step.actions, record.current)
                await run(apply.execute, iam, kind, actions, applied.append)
                gone = {a.params["AccessKeyId"] for a in actions if a.api == "DeleteAccessKey"}
                keys = tuple(k for k in keys if k.key_id not in gone)
                _call(hook, "+".join(a.api for a in actions))
            if step.record is not None and step.record != record:
                await store.save(step.record, None)
                record = step.record
                _call(hook, "recorded")
    except AWSError as exc:
        exc.applied = (*applied, *exc.applied)
        raise
    return KeyResult(
        verdict, tuple(applied), await _status(run, iam, spec, record, keys, known_ids)
    )


def _call(hook: Hook | None, step: str) -> None:
    if hook is not None:
        hook(step)


_last_used: dict[str, tuple[float, datetime | None]] = {}


async def _status(
    run: Run, iam: Any, spec: AccessKeySpec, record: Record, keys: tuple[AwsKey, ...],
    known_ids: frozenset[str],
) -> dict[str, Any]:  # fmt: skip
    """status.accessKey: ids and times, never the secret."""
    by_id = {k.key_id: k for k in keys}
    current = by_id.get(record.current)
    found: dict[str, Any] = {"secretName": spec.secret_name}
    if current is not None:
        found["accessKeyId"] = current.key_id
        found["created"] = accesskeys.timestamp(current.created)
        cached = _last_used.get(current.key_id)
        if cached is None or time.monotonic() - cached[0] > LAST_USED_EVERY:
            cached = (time.monotonic(), await run(accesskeys.last_used, iam, current.key_id))
            _last_used[current.key_id] = cached
        if cached[1] is not None:
            found["lastUsed"] = accesskeys.timestamp(cached[1])
    if record.last_rotation:
        found["lastRotation"] = accesskeys.timestamp(record.last_rotation)
    due = accesskeys.next_due(spec, record, current)
    if due:
        found["nextRotation"] = accesskeys.timestamp(due)
    if record.previous:
        found["previousAccessKeyId"] = record.previous
        found["previousRetiresAt"] = accesskeys.timestamp(record.retire_at)
    recorded = {record.current, record.previous} | known_ids
    if foreign := sorted(k for k in by_id if k not in recorded):
        found["unmanagedAccessKeyIds"] = foreign
    return found


# --- the Kubernetes Secret --------------------------------------------------------------------


class KubeSecret:
    """One IAMUser's Secret in the Kubernetes API (get, create, patch, delete by name)."""

    def __init__(self, namespace: str, name: str, owner_ref: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.name = name
        self.owner = dict(owner_ref)
        self.url = f"/api/v1/namespaces/{namespace}/secrets/{name}"

    async def read(self) -> Record:
        try:
            found = await _request("get", self.url, what=f"read Secret {self}")
        except kube.NotFound:
            return Record(exists=False)
        meta = found.get("metadata") or {}
        labels = meta.get("labels") or {}
        notes = meta.get("annotations") or {}
        ours = (
            labels.get(MANAGED_BY) == "rolekeeper" and labels.get(OWNER_LABEL) == self.owner["name"]
        )
        data = found.get("data") or {}
        current = base64.b64decode(data.get("AWS_ACCESS_KEY_ID") or "").decode(errors="replace")
        pending = notes.get(PENDING)
        return Record(
            exists=True,
            ours=ours,
            current=current.strip(),
            previous=str(notes.get(PREVIOUS) or ""),
            retire_at=accesskeys.parse_time(notes.get(RETIRE_AT)),
            last_rotation=accesskeys.parse_time(notes.get(LAST_ROTATION)),
            rotate_request=str(notes.get(ROTATE_REQUEST) or ""),
            pending=tuple(json.loads(pending)) if pending else None,
        )

    async def save(self, record: Record, key: NewKey | None) -> None:
        """Create the Secret or merge-patch it: the record's annotations (cleared ones removed),
        and the key's data when given."""
        notes: dict[str, str | None] = {
            PREVIOUS: record.previous or None,
            RETIRE_AT: accesskeys.timestamp(record.retire_at) or None,
            LAST_ROTATION: accesskeys.timestamp(record.last_rotation) or None,
            ROTATE_REQUEST: record.rotate_request or None,
            PENDING: json.dumps(list(record.pending)) if record.pending is not None else None,
        }
        body: dict[str, Any] = {
            "metadata": {
                "labels": {MANAGED_BY: "rolekeeper", OWNER_LABEL: self.owner["name"]},
                "annotations": notes,
                "ownerReferences": [self.owner],
            },
        }
        if key is not None:
            body["data"] = {
                k: base64.b64encode(v.encode()).decode()
                for k, v in accesskeys.secret_data(key).items()
            }
        try:
            await _request("patch", self.url, body, what=f"write Secret {self}", merge=True)
        except kube.NotFound:
            body["metadata"]["name"] = self.name
            body["metadata"]["annotations"] = {k: v for k, v in notes.items() if v is not None}
            created = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", **body}
            url = f"/api/v1/namespaces/{self.namespace}/secrets"
            await _request("post", url, created, what=f"create Secret {self}")

    async def delete(self) -> None:
        with contextlib.suppress(kube.NotFound):
            await _request("delete", self.url, what=f"delete Secret {self}")

    async def disown(self) -> None:
        body = {"metadata": {"ownerReferences": None}}
        await _request("patch", self.url, body, what=f"release Secret {self}", merge=True)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


async def _request(method: str, url: str, payload: object = None, *, what: str,
                   merge: bool = False) -> Any:  # fmt: skip
    """`kube.request`, its errors as SecretError (which names the Secret, never its data)."""
    try:
        return await kube.request(method, url, payload, what=what, merge=merge)
    except kube.KubeError as exc:
        raise SecretError(str(exc)) from None
