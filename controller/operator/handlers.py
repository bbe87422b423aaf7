"""Kopf wiring: translate Kubernetes events into reconcile/finalize calls, and outcomes into status.

No IAM decisions are made here: `reconcile` decides; this module parses the object, serialises
work per object, runs the blocking boto3 work on a bounded thread pool, writes status only when
it changes, posts Events for every AWS change and every error, and maps errors to Kopf's retry
semantics. Deletion only ever raises `TemporaryError`: a `PermanentError` would make Kopf drop
the finalizer while AWS still holds the entity.

After every reconcile that reaches a verdict, the object's security findings
(`core.findings`, its suppression annotation applied) go to `status.findings` and a
`SecurityFindings` condition beside Ready (never changing it), with one Event when the set of
unsuppressed ids changes and the `rolekeeper_findings` gauge kept exact per object.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import logging
import os
import random
import socket
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import kopf

from controller.aws import accounts as aws_accounts
from controller.aws import clients as aws
from controller.core import status
from controller.core.actions import Action
from controller.core.errors import (
    AWSError,
    PrincipalNotReady,
    RetryableError,
    SpecError,
    TerminalError,
)
from controller.core.findings import (
    SUPPRESS_ANNOTATION,
    Finding,
    Severity,
    findings_for,
    key_findings,
    suppress,
    usage_findings,
)
from controller.core.status import Reason, Verdict
from controller.engine import references
from controller.engine.gate import Gate
from controller.engine.reconcile import Outcome, Verb, finalize, observe_and_decide, reconcile
from controller.engine.references import KnownToExist
from controller.engine.sweep import RESAMPLE_EVERY, Sweeper
from controller.kinds import registry, snapshot
from controller.kinds.base import Desired, Entity, ObjectRef
from controller.kinds.registry import GROUP, VERSION
from controller.operator import events as cloudtrail_events
from controller.operator import kube, login, metrics, peering, platform
from controller.operator import secrets as access_keys
from controller.operator import serviceaccounts as service_accounts
from controller.operator.drift import Drift, Why
from controller.operator.peering import PeeringState
from controller.settings import Settings

# Chosen once, never to change: renaming them would orphan finalizers and progress on upgrade.
FINALIZER = f"{GROUP}/finalizer"
ANNOTATION_PREFIX = GROUP
# Longest wait between checks of an object whose IAMPolicy is not Ready yet (seconds).
DEPENDENCY_RETRY_CEILING = 15.0

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class PolicyTags:
    """Customer managed policies' tags between sweeps: reused for `reuse` sweeps, then read
    again (a hand edit of an IAMPolicy's tags is put back within that many intervals)."""

    reuse: int = RESAMPLE_EVERY
    _tags: dict[str, dict[str, str]] = field(default_factory=dict)
    _age: int = 0

    def reusable(self) -> dict[str, dict[str, str]] | None:
        return self._tags if self._age < self.reuse else None

    def taken(self, tags: Mapping[str, dict[str, str]]) -> None:
        self._age = self._age + 1 if self._age < self.reuse else 0
        self._tags = dict(tags)


@dataclass
class Runtime:
    """Per-process state shared by all handlers (kept in Kopf's memo)."""

    settings: Settings
    clients: aws.Clients
    executor: concurrent.futures.ThreadPoolExecutor
    sweeper: Sweeper
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Unsuppressed findings by (severity, id): per object, and summed for the gauge.
    findings: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    finding_totals: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Findings depend only on spec (generation) and the suppression annotation: a drift check
    # reuses them instead of judging every document again each interval.
    judged: dict[str, tuple[tuple[int, str], tuple[Finding, ...]]] = field(default_factory=dict)
    # Observe-only objects whose entity differs from the spec (or is missing), by kind.
    out_of_sync: dict[str, set[str]] = field(default_factory=dict)
    # References (policies, groups) seen to exist, shared by every reconcile.
    known: KnownToExist = field(default_factory=KnownToExist)
    # Several AWS accounts (IAMAccount, docs/accounts.md): assumed-role clients, and one
    # Sweeper (one snapshot per interval) per account. Key "" is the operator's own account,
    # served by `clients`, `sweeper` and `known` above.
    accounts: aws_accounts.Accounts | None = None
    sweepers: dict[str, Sweeper] = field(default_factory=dict)
    account_clients: dict[str, aws.Clients] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)  # uid -> key of the account it is in
    knowns: dict[str, KnownToExist] = field(default_factory=dict)
    policy_tags: dict[str, PolicyTags] = field(default_factory=dict)  # per account, as `tags`
    # The drift sweeps and check queue (started by the first handler, in Kopf's context), the
    # live Kopf indices they read outside handlers, and the objects whose account could not be
    # used (in no sweeper: the own account's sweep retries them each interval).
    drift: Drift | None = None
    indices: Mapping[str, Any] = field(default_factory=dict)
    unplaced: set[str] = field(default_factory=set)
    # Kopf's peering verdict: work outside handlers (sweeps, events) stops while it pauses us.
    peering: PeeringState = field(default_factory=PeeringState)

    def begin(self, indices: Mapping[str, Any]) -> None:
        """Start the drift sweeps, once, from a handler: their tasks inherit Kopf's context
        (the Event poster), and the indices are Kopf's live views."""
        if self.drift is not None:
            return
        self.indices = indices
        self.drift = Drift(
            self.settings.drift.interval,
            self.settings.kopf.workers,
            functools.partial(check, self),
            functools.partial(needs_check, self),
            lambda: set(self.unplaced),
            active=lambda: not self.peering.paused,
        )
        self.drift.watch("", self.sweeper)
        for key, sweeper in self.sweepers.items():
            self.drift.watch(key, sweeper)

    def request_check(self, account_id: str, kind: str, aws_name: str, why: str) -> int:
        """Queue an immediate check of the managed objects of `kind` named `aws_name` in AWS
        account `account_id` (a CloudTrail event said it changed); how many there are (0: not
        managed here). One already queued moves to the front, and counts."""
        if self.drift is None:
            return 0
        matched = 0
        accounts = [("", self.sweeper), *self.sweepers.items()]
        for key, sweeper in accounts:
            clients = self.clients_for(key)
            if clients is None or clients.account_id != account_id:
                continue
            for uid, desired in list(sweeper.managed.items()):
                if desired.ref.kind == kind and desired.aws_name == aws_name:
                    log.info("%s: %s; checking now", desired.ref.owner, why)
                    self.drift.request(uid, Why.EVENT)
                    matched += 1
        return matched

    def clients_for(self, key: str) -> aws.Clients | None:
        """The clients of account `key` ("" the operator's own; None: not assumed yet)."""
        return self.account_clients.get(key) if key else self.clients

    def sweeper_for(self, uid: str, key: str) -> Sweeper:
        """The Sweeper of account `key`, with `uid` routed to it (and out of any other)."""
        old = self.routes.get(uid)
        if old is not None and old != key:
            (self.sweepers.get(old) or self.sweeper).forget(uid)
        self.routes[uid] = key
        if not key:
            return self.sweeper
        found = self.sweepers.get(key)
        if found is None:
            found = self.sweepers[key] = Sweeper(
                functools.partial(self._take_snapshot, key), self.settings.drift.interval
            )
            if self.drift is not None:
                self.drift.watch(key, found)
        return found

    def unroute(self, uid: str) -> None:
        (self.sweepers.get(self.routes.pop(uid, "")) or self.sweeper).forget(uid)

    def known_for(self, key: str) -> KnownToExist:
        """References seen to exist in account `key` (a group in one account says nothing
        about another)."""
        return self.knowns.setdefault(key, KnownToExist()) if key else self.known

    async def _take_snapshot(self, key: str) -> snapshot.AccountSnapshot:
        """An IAMAccount's snapshot, as startup's take_snapshot takes the operator's own."""
        names = {desired.aws_name for desired in self.sweepers[key].managed.values()}
        tags = self.policy_tags.setdefault(key, PolicyTags())
        iam = self.account_clients[key].iam
        taken = await self.run(snapshot.take, iam, names, tags.reusable())
        tags.taken(taken.policy_tags)
        return taken

    def lock(self, uid: str) -> asyncio.Lock:
        return self.locks.setdefault(uid, asyncio.Lock())

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def track(self, uid: str, kind: str, reason: str | None) -> None:
        """Keep the objects-by-reason gauge exact. Every drift check calls this, so it adjusts
        the two affected counts instead of recounting all objects (N checks x N objects)."""
        if reason is None:  # the object is gone: so are its findings
            self.track_findings(uid, ())
            self.judged.pop(uid, None)
            self.track_out_of_sync(uid, kind, False)
        new = (kind, reason) if reason is not None else None
        old = self.reasons.pop(uid, None)
        if new is not None:
            self.reasons[uid] = new
        if old == new:
            return
        for series, step in ((old, -1), (new, 1)):
            if series is not None:
                self.counts[series] += step
                metrics.OBJECTS.labels(kind=series[0], reason=series[1]).set(self.counts[series])

    def track_out_of_sync(self, uid: str, kind: str, out: bool) -> None:
        """Keep the gauge of observe-only objects whose entity differs from the spec exact."""
        members = self.out_of_sync.setdefault(kind, set())
        before = len(members)
        (members.add if out else members.discard)(uid)
        if len(members) != before:
            metrics.OUT_OF_SYNC.labels(kind=kind).set(len(members))

    def track_findings(self, uid: str, found: tuple[Finding, ...]) -> None:
        """Keep the findings gauge exact: replace this object's unsuppressed findings in it."""
        new = Counter((str(f.severity), f.id) for f in found if not f.suppressed)
        old = self.findings.pop(uid, Counter())
        if new:
            self.findings[uid] = new
        if old == new:
            return
        for series in old.keys() | new.keys():
            self.finding_totals[series] += new[series] - old[series]
            severity, rule = series
            metrics.FINDINGS.labels(severity=severity, id=rule).set(self.finding_totals[series])

    def judge(
        self, body: kopf.Body, desired: Desired, account_id: str | None = None
    ) -> tuple[Finding, ...]:
        """The object's findings, suppressions marked (cached per generation and annotation)."""
        annotations = body.metadata.annotations or {}
        key = (desired.generation, str(annotations.get(SUPPRESS_ANNOTATION, "")))
        cached = self.judged.get(str(body.metadata.uid))
        if cached is not None and cached[0] == key:
            return cached[1]
        view = registry.of(desired).view(desired)
        account = account_id or self.clients.account_id
        found = suppress(findings_for(view, account_id=account), key[1])
        self.judged[str(body.metadata.uid)] = (key, found)
        return found


# --- lifecycle --------------------------------------------------------------------------------


class DigestDiffBaseStorage(kopf.StatusDiffBaseStorage):
    """Kopf's diff base (the last handled essence) kept as its SHA-256 in status, beside the
    status the handler writes, so both go in one Kubernetes write.

    Kopf stores a full copy of spec, labels and annotations, by default in an annotation. That
    cost a second write per handled change (the object, then its status subresource), and all
    annotations of an object share 262,144 bytes, so for a spec near that size the API server
    refused the patch (422) and the status written with it was lost. The handlers never read
    `old`/`new`/`diff`; Kopf only needs to tell whether the essence changed, which the digests
    do. The essence is hashed as Kopf compares it (without this operator's own annotations:
    progress, markers, the old diff base). An object last handled by an older version has its
    base in the annotation (`legacy`, a full essence or a digest): it is read from there, so
    an unchanged object resumes as before; the next stored base goes to status.
    """

    def __init__(self, prefix: str, legacy: str) -> None:
        super().__init__(field="status.lastHandledConfiguration")
        self.prefix = prefix
        self.legacy = f"{prefix}/{legacy}"

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return self._digest(super().build(body=body, extra_fields=extra_fields))

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        found = super().fetch(body=body)
        if found is None:  # handled by a version that kept the base in an annotation
            stored = (body.metadata.annotations or {}).get(self.legacy)
            if stored is None:
                return None
            try:
                found = cast(kopf.BodyEssence, json.loads(stored))
            except ValueError:
                return None  # unreadable: handled as never handled, i.e. reconciled again
        if set(found) == {"sha256"}:
            return found
        return self._digest(found)

    def _digest(self, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        kept: dict[str, Any] = dict(essence)
        metadata: dict[str, Any] = dict(kept.get("metadata") or {})
        annotations = {
            k: v
            for k, v in (metadata.get("annotations") or {}).items()
            if not k.startswith(f"{self.prefix}/")
        }
        if annotations:
            metadata["annotations"] = annotations
        else:
            metadata.pop("annotations", None)
        if metadata:
            kept["metadata"] = metadata
        else:
            kept.pop("metadata", None)
        text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return cast(kopf.BodyEssence, {"sha256": digest})


class UnmarkedProgressStorage(kopf.AnnotationsProgressStorage):
    """Kopf's handler progress in annotations, without its `kopf-managed: yes` marker.

    Kopf adds the marker the first time it stores progress, which for an object handled at
    the first attempt is the only change left to the object itself once the progress is
    purged: a whole extra PATCH per created object (a third of the operator's writes). The
    marker only brands the prefix as Kopf's; the diff base already leaves this operator's
    annotations out (`DigestDiffBaseStorage`), so nothing here reads it."""

    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        return None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: Settings = getattr(memo, "settings", None) or Settings()
    tuning = config.kopf
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = UnmarkedProgressStorage(prefix=ANNOTATION_PREFIX)
    # A digest in status, not a copy of the spec in an annotation: see DigestDiffBaseStorage
    # (an object handled by an older version is read from the old annotation and resumes
    # without a reconcile it does not need).
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, legacy="last-handled-configuration"
    )
    # Events say who reported them: "rolekeeper", not Kopf's default "kopf".
    settings.posting.reporting_component = "rolekeeper"
    settings.posting.reporting_instance = os.environ.get("POD_NAME") or socket.gethostname()
    # Only our own explicit change events and warnings become Kubernetes Events.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = tuning.workers
    # An object's Kopf worker (its task, queue and context) is freed this soon after its last
    # event, not 5 s later. (Not Kopf's worker_limit: with indices, the first workers wait for
    # every object to be indexed, which a full pool then never lets happen: measured deadlock.)
    settings.queueing.idle_timeout = tuning.object_idle_timeout
    # Kopf posts each object's Events from its own worker, unbounded by default: 1,000 objects
    # created at once opened ~330 TLS connections to the API server (+~55 MiB RSS, handshake
    # CPU). Events are not on the way to Ready, so a few posters are enough, provided a worker
    # frees its slot as soon as its object's few Events are out (Kopf waits 1 s for more).
    settings.posting.worker_limit = tuning.event_posters
    settings.posting.idle_timeout = tuning.event_idle_timeout
    # Reconnect watches well before proxies/load balancers cut idle streams.
    settings.watching.server_timeout = tuning.watch_server_timeout
    settings.watching.client_timeout = tuning.watch_client_timeout
    settings.watching.connect_timeout = tuning.watch_connect_timeout
    clients = await asyncio.to_thread(aws.connect, None, config.aws)
    clients.counter.listeners.append(metrics.record_aws_call)
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=tuning.workers, thread_name_prefix="aws"
    )

    tags = PolicyTags()

    async def take_snapshot() -> snapshot.AccountSnapshot:
        loop = asyncio.get_running_loop()
        # Policy tags (ownership; GAAD has none) only for the names this operator manages, and
        # re-read every few intervals, not each: a steady sweep costs the snapshot's pages.
        names = {desired.aws_name for desired in sweeper.managed.values()}
        taken = await loop.run_in_executor(
            executor, snapshot.take, clients.iam, names, tags.reusable()
        )
        tags.taken(taken.policy_tags)
        return taken

    sweeper = Sweeper(take_snapshot, config.drift.interval)
    memo.runtime = Runtime(
        settings=config,
        clients=clients,
        executor=executor,
        sweeper=sweeper,
        accounts=aws_accounts.from_environment(config.aws),
        peering=peering.follow(),
    )
    log.info("connected to AWS account %s (%s)", clients.account_id, clients.partition)
    if config.events.queue_url:  # event-driven drift (docs/drift.md)
        rt: Runtime = memo.runtime
        memo.events = await cloudtrail_events.start(
            config.events,
            rt.request_check,
            # Who the operator is in each account: its own identity, each IAMAccount's role.
            lambda: [rt.clients.caller_arn, *(c.caller_arn for c in rt.account_clients.values())],
            # Not before the drift queue runs (the first handler starts it): a message taken
            # earlier would find no object to check.
            active=lambda: rt.drift is not None and not rt.peering.paused,
        )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    consumer: cloudtrail_events.Consumer | None = getattr(memo, "events", None)
    if consumer is not None:
        await consumer.stop()
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None:
        if runtime.drift is not None:
            await runtime.drift.stop()
        runtime.executor.shutdown(wait=False, cancel_futures=True)


# --- create / update / resume -----------------------------------------------------------------


async def on_change(
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    runtime: Any,
    reason: str = "",
    **indices: Any,
) -> None:
    rt: Runtime = memo.runtime
    rt.begin(indices)
    uid = str(body.metadata.uid)
    async with rt.lock(uid):
        prepared = await _prepare(rt, body, status, patch, "change", indices)
        if prepared is None:
            return
        desired, key, clients, sweeper = prepared
        sweeper.managed[uid] = desired
        observed = None
        if reason == kopf.Reason.RESUME:
            # After a restart every object resumes at once: one shared snapshot answers them
            # all (reconcile re-reads only what differs) instead of 5 reads per object.
            found, hint = await sweeper.lookup(uid, desired)
            observed = hint if found else None
        await _reconcile(
            rt,
            body,
            status,
            patch,
            desired,
            "change",
            retry,
            runtime.total_seconds(),
            observed=observed,
            indices=indices,
            clients=clients,
            account=key,
        )
        sweeper.reconciled(uid)


async def _prepare(
    rt: Runtime,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    trigger: str,
    indices: Mapping[str, Any],
) -> tuple[Desired, str, aws.Clients, Sweeper] | None:
    """The object parsed, its account (key and clients) and that account's sweeper; None when
    the object cannot be handled now (status already says why)."""
    desired = _parse_or_report(rt, body, status, patch, trigger, indices)
    if desired is None:
        return None
    uid = str(body.metadata.uid)
    target = await _account(rt, body, status, patch, trigger, indices)
    if target is None:
        # Out of its account's sweep (no snapshot of an account nothing can use), retried by
        # the operator's own sweep each interval: the account may come back.
        rt.unroute(uid)
        rt.unplaced.add(uid)
        return None
    rt.unplaced.discard(uid)
    key, clients = target
    desired = service_accounts.with_trust(
        desired, rt.settings, clients.account_id, clients.partition
    )
    return desired, key, clients, rt.sweeper_for(uid, key)


def needs_check(rt: Runtime, key: str, uid: str, sweeper: Sweeper) -> Why | None:
    """Whether the sweep must check `uid` now, decided in memory from the account's fresh
    snapshot: the same decision a check would make (guardrails, ownership, the calls that would
    make AWS match), so an object in sync costs no call, no thread and no Kubernetes write."""
    body = platform.body(rt.indices, uid)
    desired = sweeper.managed.get(uid)
    if body is None or desired is None:
        sweeper.forget(uid)  # deleted: its finalizer ran, or it vanished while we were away
        return None
    state = body.status
    if not _settled(body):
        return None  # a spec change or a delete is being handled; it reconciles anyway
    if not _synced(state):
        return Why.RETRY  # not in sync: retried each interval (what it waits for may be back)
    if desired.access_key is not None:
        return Why.REFRESH  # its key's rotation and grace period run on the clock
    judged = rt.judged.get(uid)
    suppressions = str((body.metadata.annotations or {}).get(SUPPRESS_ANNOTATION, ""))
    if judged is not None and judged[0][1] != suppressions:
        return Why.RETRY  # findings suppressed or unsuppressed (not a spec change for Kopf)
    found, observed = sweeper.find(desired)
    if not found:
        return Why.RETRY  # per-entity mode: the check reads its own entity
    if sweeper.predates_reconcile(uid):
        return None  # taken before this object's own reconcile finished: shows nothing newer
    resolved, missing = _resolve(rt.indices, desired)
    clients = rt.clients_for(key)
    if missing or desired.observe_only or clients is None:
        return Why.RETRY
    gate = _gate(rt.indices, body, resolved, clients)
    kind = registry.of(desired)
    decision, _ = observe_and_decide(
        kind,
        resolved,
        read=None,
        hint=observed,
        hinted=True,
        partition=clients.partition,
        known_arn=str(state.get("arn") or ""),
        gate=gate,
    )
    if decision.verb is not Verb.NOOP:
        return Why.DRIFT
    guardrail = status.condition(state, "GuardrailViolation") or {}
    if (guardrail.get("reason") == "Warned") != bool(decision.warnings):
        return Why.RETRY  # a guardrail in warn mode started or stopped applying
    assert observed is not None
    if any(state.get(k) != v for k, v in kind.status_fields(observed, ()).items()):
        return Why.REFRESH
    return None


async def check(rt: Runtime, uid: str, why: Why) -> None:
    """One object's drift check outside Kopf's handlers (queued by a sweep or an event): a
    reconcile with the account snapshot as its first observation, and the status it writes
    patched directly (Kopf's watch then sees no change to handle)."""
    patch = kopf.Patch()
    async with rt.lock(uid):
        # Read under the lock: a spec change handled meanwhile is in the index before its
        # handler ran, so this body is that spec (or not yet observed, and skipped below) —
        # never the spec before it, which a check would otherwise put back.
        body = platform.body(rt.indices, uid)
        if body is None:
            return
        state = body.status
        if not _settled(body):
            return  # a spec change or a delete is being handled; it reconciles anyway
        in_sync = _synced(state)
        try:
            prepared = await _prepare(rt, body, state, patch, "drift", rt.indices)
            if prepared is None:
                return
            desired, key, clients, sweeper = prepared
            found, hint = sweeper.find(desired)
            metrics.SNAPSHOT_AGE.set(sweeper.snapshot_age)
            if found and why is Why.EVENT:
                found, hint = False, None  # the event is newer than the snapshot: read
            # On a transient failure the next interval tries again; status already says why.
            with contextlib.suppress(kopf.TemporaryError):
                await _reconcile(
                    rt,
                    body,
                    state,
                    patch,
                    desired,
                    "drift",
                    0,
                    0.0,
                    observed=hint if found else None,
                    indices=rt.indices,
                    clients=clients,
                    account=key,
                    drift=in_sync,
                )
        finally:
            await _patch_status(body, patch)


async def _patch_status(body: kopf.Body, patch: kopf.Patch) -> None:
    """Write what a check put in `patch` (status only) with one merge patch, as Kopf would."""
    changes = dict(patch).get("status")
    if not changes:
        return
    meta = body.metadata
    plural = registry.get(str(body["kind"])).plural
    url = f"/apis/{GROUP}/{VERSION}/namespaces/{meta.namespace}/{plural}/{meta.name}/status"
    try:
        await kube.request("patch", url, {"status": changes}, what=f"write status of {meta.name}",
                           merge=True)  # fmt: skip
    except (kube.KubeError, kube.NotFound) as exc:  # deleted meanwhile, or refused: next time
        log.warning("%s/%s: status not written: %s", meta.namespace, meta.name, exc)


async def on_delete(
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    **indices: Any,
) -> None:
    rt: Runtime = memo.runtime
    uid = str(body.metadata.uid)
    kind = str(body["kind"])
    desired = _desired_for_delete(rt, body, status)
    if desired is not None:
        desired = desired.in_cluster(_cluster(rt, indices))
    if desired is None:
        rt.unroute(uid)
        rt.track(uid, kind, None)
        return  # never created anything in AWS
    async with rt.lock(uid):
        target = await _account(rt, body, status, patch, "delete", indices, deleting=True)
        assert target is not None  # deleting: raises instead
        with metrics.RECONCILE_SECONDS.labels(kind=kind, trigger="delete").time():
            try:
                known_arn = str(status.get("arn") or "")
                outcome = await rt.run(finalize, target[1], desired, known_arn=known_arn)
            except AWSError as exc:
                _post_applied(body, exc.applied, "Deleted")
                message = f"cannot delete IAM {_noun(desired)} yet: {exc}"
                _write_status(
                    rt,
                    body,
                    status,
                    patch,
                    Verdict(
                        False,
                        Reason.DELETING if isinstance(exc, RetryableError) else Reason.AWS_ERROR,
                        message,
                    ),
                )
                kopf.warn(body, reason="DeleteFailed", message=message)
                metrics.RECONCILES.labels(kind=kind, trigger="delete", result="retry").inc()
                # Terminal or not, the finalizer stays until AWS is clean: retry, slower when
                # a human has to act (permissions, a foreign attachment AWS refuses to drop).
                delay = _backoff(retry, rt.settings.kopf.max_backoff)
                if isinstance(exc, TerminalError):
                    delay = rt.settings.kopf.max_backoff
                raise kopf.TemporaryError(message, delay=delay) from exc
    await access_keys.release(body, desired, status, desired.deletion_policy == "Retain")
    await service_accounts.release(body, desired, status)
    _post_applied(body, outcome.applied, "Deleted")
    metrics.RECONCILES.labels(kind=kind, trigger="delete", result="deleted").inc()
    rt.unroute(uid)
    rt.locks.pop(uid, None)
    rt.track(uid, kind, None)


def register() -> None:
    """Attach the handlers to every kind (called once, before the operator starts). Drift has
    no per-object timer: one sweep per account (`operator.drift`), started by the first
    handler, checks every object each interval."""
    platform.register()
    login.register()
    for plural in (kind.plural for kind in registry.KINDS.values()):
        kopf.on.resume(GROUP, VERSION, plural, id="reconcile")(on_change)
        kopf.on.create(GROUP, VERSION, plural, id="reconcile")(on_change)
        kopf.on.update(GROUP, VERSION, plural, id="reconcile")(on_change)
        kopf.on.delete(GROUP, VERSION, plural, id="finalize")(on_delete)


# --- shared steps -----------------------------------------------------------------------------


async def _reconcile(
    rt: Runtime,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    desired: Desired,
    trigger: str,
    retry: int,
    elapsed: float,
    observed: Entity | None = None,
    indices: Mapping[str, Any] | None = None,
    clients: aws.Clients | None = None,
    account: str = "",
    drift: bool = False,
) -> None:
    """Reconcile one object and write its status. `drift`: the object was in sync before this
    check, so what it applies is drift put back (a recovery from an error is not)."""
    clients = clients or rt.clients  # the object's account (`_account`)
    kind = desired.ref.kind
    # The reason of the one Event that lists what this reconcile changes in AWS.
    applying = "DriftReverted" if drift else "Updated" if status.get("arn") else "Created"
    desired, missing = _resolve(indices or {}, desired)
    if missing:
        # Nothing is applied until every referenced IAMPolicy is Ready (never half the
        # policies); retried soon, not at the next drift interval, and on its own timeline.
        message = "; ".join(missing)
        if _ready(status) != (Reason.DEPENDENCY_NOT_READY, message):
            kopf.warn(body, reason=str(Reason.DEPENDENCY_NOT_READY), message=message)
        _write_status(rt, body, status, patch, Verdict(False, Reason.DEPENDENCY_NOT_READY, message))
        metrics.RECONCILES.labels(kind=kind, trigger=trigger, result="dependencynotready").inc()
        raise kopf.TemporaryError(message, delay=_backoff(retry, DEPENDENCY_RETRY_CEILING))
    gate = _gate(indices or {}, body, desired, clients)
    key_status = None
    accounts = None  # status.serviceAccounts (operator/serviceaccounts.py)
    with metrics.RECONCILE_SECONDS.labels(kind=kind, trigger=trigger).time():
        try:
            known_arn = str(status.get("arn") or "")
            outcome = await rt.run(
                reconcile,
                clients,
                access_keys.entity_only(desired),
                observed,
                known_arn=known_arn,
                # A new object that never recorded an ARN: create without reading first.
                likely_absent=trigger == "change"
                and not known_arn
                and not status.get("conditions"),
                gate=gate,
                known=rt.known_for(account),
            )
            # spec.accessKey: once the user is in sync, its key and Secret (own channel).
            outcome, key_status = await access_keys.reconcile(
                rt.run, clients.iam, body, desired, status, outcome
            )
            outcome, accounts = await service_accounts.reconcile(body, desired, status, outcome)
        except PrincipalNotReady as exc:
            _post_applied(body, exc.applied, applying)
            if elapsed < rt.settings.aws.principal_window:
                message = (
                    f"waiting for IAM to recognise the trust policy principal "
                    f"({exc.aws_message}); retrying"
                )
                _write_status(rt, body, status, patch, Verdict(False, Reason.CREATING, message))
                metrics.RECONCILES.labels(kind=kind, trigger=trigger, result="retry").inc()
                raise kopf.TemporaryError(message, delay=_backoff(retry, 30)) from exc
            outcome = Outcome(
                Verdict(
                    False,
                    Reason.AWS_ERROR,
                    f"a principal in spec.assumeRolePolicy does not exist (still rejected "
                    f"after {rt.settings.aws.principal_window:.0f}s): {exc.aws_message}",
                ),
                exists=True,
                up_to_date=False,
            )
        except RetryableError as exc:
            _post_applied(body, exc.applied, applying)
            throttled = exc.throttled
            message = f"AWS is temporarily failing, will retry: {exc}"
            _write_status(
                rt,
                body,
                status,
                patch,
                # Retried by Kopf: Reconciling for GitOps tools, not Stalled (docs/status.md).
                Verdict(
                    False,
                    Reason.THROTTLED if throttled else Reason.AWS_ERROR,
                    message,
                    retrying=True,
                ),
            )
            metrics.RECONCILES.labels(kind=kind, trigger=trigger, result="retry").inc()
            raise kopf.TemporaryError(
                message, delay=_backoff(retry, rt.settings.kopf.max_backoff)
            ) from exc
    _post_applied(body, outcome.applied, "DriftReverted" if drift and outcome.drift else applying)
    if not outcome.ready:
        previous = _ready(status)
        if previous != (outcome.verdict.reason, outcome.verdict.message):
            kopf.warn(body, reason=str(outcome.verdict.reason), message=outcome.verdict.message)
    _write_status(
        rt,
        body,
        status,
        patch,
        outcome.verdict,
        findings=rt.judge(body, desired, clients.account_id)
        + _usage_findings(body, desired, outcome)
        + _key_findings(body, key_status),
        conditions=_conditions(body, status, outcome),
    )
    if status.get("accountId") != clients.account_id:
        patch.status["accountId"] = clients.account_id
    access_keys.patch_status(status, patch, key_status, desired.access_key is not None)
    service_accounts.patch_status(status, patch, accounts)
    result = "synced" if outcome.ready else str(outcome.verdict.reason).lower()
    metrics.RECONCILES.labels(kind=kind, trigger=trigger, result=result).inc()


async def _account(
    rt: Runtime,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    trigger: str,
    indices: Mapping[str, Any],
    deleting: bool = False,
) -> tuple[str, aws.Clients] | None:
    """(key, clients) of the AWS account the object lives in: its namespace's IAMAccount, or
    the operator's own. None when that account cannot be used: Ready=False says why (the STS
    error, an ambiguous mapping) and nothing is called in any account; when `deleting`, raises
    instead, so the finalizer stays."""
    namespace = str(body.metadata.namespace)
    choice = platform.account(indices, namespace)
    key, clients, message = choice.key, rt.clients, choice.problem
    if choice.wait:
        raise kopf.TemporaryError(message, delay=2)
    if not message and choice.account is not None and rt.accounts is not None:
        try:
            clients = await rt.run(rt.accounts.clients, choice.account)
        except AWSError as exc:
            message = exc.aws_message
        else:
            if rt.account_clients.get(key) is not clients:
                clients.counter.listeners.append(metrics.record_aws_call)
                rt.account_clients[key] = clients
    arn = str(status.get("arn") or "")
    held = arn.split(":")[4] if arn.count(":") >= 5 else ""
    if not message and held and held != clients.account_id:
        # Following the namespace would create a second entity and orphan the first.
        message = (
            f"{arn} is in account {held}, but namespace {namespace!r} now uses account "
            f"{clients.account_id}; Rolekeeper does not move entities between accounts: restore "
            "the namespace's account, or delete this object (deletionPolicy as needed) and "
            "create it again"
        )
    if not message:
        return key, clients
    expected = choice.account.account_id if choice.account is not None else ""
    if _ready(status) != (Reason.AWS_ERROR, message):
        kopf.warn(body, reason="AccountUnavailable", message=message)
    _write_status(rt, body, status, patch, Verdict(False, Reason.AWS_ERROR, message))
    if expected and status.get("accountId") != expected:
        patch.status["accountId"] = expected
    metrics.RECONCILES.labels(
        kind=str(body["kind"]), trigger=trigger, result="accountunavailable"
    ).inc()
    if deleting:
        raise kopf.TemporaryError(message, delay=rt.settings.kopf.max_backoff)
    return None


def _usage_findings(body: kopf.Body, desired: Desired, outcome: Outcome) -> tuple[Finding, ...]:
    """RK-UNUSED-001 from what AWS says of the entity's last use (not cached: time moves)."""
    usage = outcome.usage
    if usage is None:
        return ()
    found = usage_findings(
        registry.of(desired).noun,
        usage.field,
        last_used=_when(usage.last_used),
        created=_when(usage.created),
        now=datetime.now(UTC),
    )
    annotations = body.metadata.annotations or {}
    return suppress(found, str(annotations.get(SUPPRESS_ANNOTATION, "")))


def _key_findings(body: kopf.Body, key: Mapping[str, Any] | None) -> tuple[Finding, ...]:
    """RK-USER-002/003 for the managed access key: its age, and its last use (from
    GetAccessKeyLastUsed, already in status.accessKey; never the secret)."""
    created = _when(str((key or {}).get("created") or ""))
    if key is None or created is None or not key.get("accessKeyId"):
        return ()
    found = key_findings(
        key_id=str(key["accessKeyId"]),
        created=created,
        last_used=_when(str(key.get("lastUsed") or "")),
        now=datetime.now(UTC),
    )
    annotations = body.metadata.annotations or {}
    return suppress(found, str(annotations.get(SUPPRESS_ANNOTATION, "")))


def _when(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _cluster(rt: Runtime, indices: Mapping[str, Any]) -> str:
    """This cluster's identity; until it is known nothing may be written (ownership needs it)."""
    found = platform.cluster_id(rt.settings.cluster_id, indices)
    if not found:
        raise kopf.TemporaryError(
            f"the cluster identity is not known yet (namespace {platform.IDENTITY_NAMESPACE} not "
            "seen; set --cluster-id)",
            delay=10,
        )
    return found


def _conditions(
    body: kopf.Body, current: Mapping[str, Any], outcome: Outcome
) -> list[dict[str, Any]]:
    """The conditions beside Ready that this outcome sets."""
    found = [_guardrail_condition(outcome)]
    if outcome.observe_only:
        synced = _synced_condition(outcome)
        old = status.condition(current, "Synced")
        if old is None or old.get("message") != synced["message"]:
            kopf.event(body, type="Normal", reason="DriftObserved", message=synced["message"])
        found.append(synced)
    return found


def _synced_condition(outcome: Outcome) -> dict[str, Any]:
    """managementPolicy: Observe: whether AWS matches the spec, the differences in words."""
    if not outcome.exists:
        return {"type": "Synced", "status": "False", "reason": "NotFound",
                "message": outcome.verdict.message}  # fmt: skip
    if outcome.up_to_date:
        return {"type": "Synced", "status": "True", "reason": "InSync",
                "message": "AWS matches the spec"}  # fmt: skip
    return {"type": "Synced", "status": "False", "reason": "OutOfSync",
            "message": "; ".join(outcome.drift)}  # fmt: skip


def _guardrail_condition(outcome: Outcome) -> dict[str, Any]:
    """The GuardrailViolation condition: True while a guardrail denies or warns about the
    object (the message says which and why), False when it passes them all."""
    if outcome.verdict.reason is Reason.GUARDRAIL_VIOLATION:
        state, reason, message = "True", "Denied", outcome.verdict.message
    elif outcome.warnings:
        state, reason, message = "True", "Warned", "; ".join(outcome.warnings)
    else:
        state, reason, message = "False", "Compliant", "no guardrail is violated"
    return {"type": "GuardrailViolation", "status": state, "reason": reason, "message": message}


def _parse_or_report(
    rt: Runtime,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    trigger: str,
    indices: Mapping[str, Any],
) -> Desired | None:
    try:
        return registry.parse(body, rt.settings.limits).in_cluster(_cluster(rt, indices))
    except SpecError as exc:
        message = str(exc)
        # Counted like every other outcome, so an invalid spec shows on the reconcile dashboard.
        metrics.RECONCILES.labels(
            kind=str(body["kind"]), trigger=trigger, result=str(Reason.INVALID_SPEC).lower()
        ).inc()
        if _ready(status) != (Reason.INVALID_SPEC, message):
            kopf.warn(body, reason="InvalidSpec", message=message)
        _write_status(rt, body, status, patch, Verdict(False, Reason.INVALID_SPEC, message))
        return None


def _desired_for_delete(rt: Runtime, body: kopf.Body, status: kopf.Status) -> Desired | None:
    """What to clean up; an object whose spec no longer parses still owns what it created."""
    try:
        return registry.parse(body, rt.settings.limits)
    except SpecError:
        arn = str(status.get("arn") or "")
        if not arn:
            return None
        meta = body.metadata
        ref = ObjectRef(str(body["kind"]), str(meta.namespace), str(meta.name), str(meta.uid))
        entity = registry.get(ref.kind).placeholder(arn.rsplit("/", 1)[-1])
        retain = (body.get("spec") or {}).get("deletionPolicy") == "Retain"
        return Desired(ref, entity, deletion_policy="Retain" if retain else "Delete")


def _write_status(
    rt: Runtime,
    body: kopf.Body,
    current: Mapping[str, Any],
    patch: kopf.Patch,
    verdict: Verdict,
    findings: tuple[Finding, ...] | None = None,
    conditions: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Ready from `verdict`; with `findings`, status.findings and SecurityFindings too, and
    with `guardrails` the GuardrailViolation condition (an error that stops short of a verdict
    leaves the last ones as they are)."""
    id_field = registry.get(str(body["kind"])).id_field
    generation = int(body.meta.get("generation") or 0)
    new = status.render(current, verdict, generation, id_field)
    rt.track(str(body.metadata.uid), str(body["kind"]), str(verdict.reason))
    if findings is not None:
        new = status.with_findings(new, [f.to_json() for f in findings], generation)
        rt.track_findings(str(body.metadata.uid), findings)
        _post_findings(body, current, findings)
    for extra in conditions:
        condition = {**extra, "observedGeneration": generation}
        new["conditions"] = status.set_condition(new["conditions"], condition)
    synced = next((c for c in conditions if c["type"] == "Synced"), None)
    if synced is not None:
        rt.track_out_of_sync(str(body.metadata.uid), str(body["kind"]), synced["status"] != "True")
    if status.changed(current, new):
        for key, value in new.items():
            patch.status[key] = value


def _ready(current: Mapping[str, Any]) -> tuple[str, str] | None:
    found = status.condition(current, "Ready")
    return None if found is None else (str(found.get("reason")), str(found.get("message")))


def _synced(current: Mapping[str, Any]) -> bool:
    """Whether the last verdict was Ready=True Synced (not an error, not observe-only)."""
    ready = _ready(current)
    return ready is not None and ready[0] == Reason.SYNCED


def _settled(body: kopf.Body) -> bool:
    """Neither being deleted nor holding a spec change not handled yet (either reconciles
    anyway, in Kopf's handlers)."""
    observed = (body.get("status") or {}).get("observedGeneration")
    return not body.metadata.deletion_timestamp and observed == body.meta.get("generation")


def _resolve(indices: Mapping[str, Any], desired: Desired) -> tuple[Desired, list[str]]:
    """`desired` with its IAMPolicy references as ARNs, and what cannot be resolved yet."""
    namespace = desired.ref.namespace
    return references.resolve(desired, lambda ref: platform.policy_arn(indices, ref, namespace))


def _gate(
    indices: Mapping[str, Any], body: kopf.Body, desired: Desired, clients: aws.Clients
) -> Gate:
    """The guardrails and facts that judge `desired` in the account of `clients`."""
    return platform.gate(
        indices,
        desired,
        account_id=clients.account_id,
        caller_arn=clients.caller_arn,
        created=str(body.metadata.creation_timestamp or ""),
    )


def _post_applied(body: kopf.Body, applied: tuple[Action, ...], reason: str) -> None:
    """One Event for all the AWS changes of one reconcile (not one per call: Events are
    Kubernetes writes), each call named, e.g. "Created role web (CreateRole); Attached ...".
    DriftReverted counts each call in the drift metric."""
    if not applied:
        return
    kind = str(body["kind"])
    if reason == "DriftReverted":
        for action in applied:
            metrics.DRIFT_CORRECTIONS.labels(kind=kind, operation=action.api).inc()
    kopf.event(body, type="Normal", reason=reason, message=applied_message(applied))


def applied_message(applied: Sequence[Action]) -> str:
    """The calls of one reconcile in words, within an Event's readable length: as many as fit,
    then how many more (their names stay in the operator's log and metrics)."""
    parts = [f"{action.summary} ({action.api})" for action in applied]
    for shown in range(len(parts), 0, -1):
        tail = f"; and {len(parts) - shown} more" if shown < len(parts) else ""
        message = "; ".join(parts[:shown]) + tail
        if len(message) <= status.MAX_MESSAGE:
            return message
    return f"{len(parts)} AWS calls"


def _post_findings(body: kopf.Body, current: Mapping[str, Any], found: tuple[Finding, ...]) -> None:
    """One Event when the set of unsuppressed finding ids differs from what status records."""
    active = [f for f in found if not f.suppressed]
    if {f.id for f in active} == status.unsuppressed_ids(current):
        return
    suppressed = len(found) - len(active)
    tail = f" ({suppressed} suppressed)" if suppressed else ""
    if not active:
        message = f"No unsuppressed security findings{tail}"
    else:
        listed = ", ".join(dict.fromkeys(f"{f.id} ({f.severity})" for f in active))
        message = f"Security findings: {listed}{tail}; see status.findings for where and how to fix"
    serious = any(f.severity.at_least(Severity.HIGH) for f in active)
    kopf.event(
        body, type="Warning" if serious else "Normal", reason="SecurityFindings", message=message
    )


def _noun(desired: Desired) -> str:
    return f"{registry.of(desired).noun} {desired.aws_name}"


def _backoff(retry: int, ceiling: float) -> float:
    """Exponential with jitter, so objects failing together do not retry together."""
    base: float = min(ceiling, 2.0 * 2 ** min(retry, 10))
    return float(base * random.uniform(0.7, 1.3))
