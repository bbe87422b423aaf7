"""Event-driven drift: read CloudTrail's IAM events from SQS and check what they touched, now.

An EventBridge rule sends every IAM API call recorded by CloudTrail to an SQS queue
(docs/drift.md). This loop long-polls that queue and, for each call made by anyone but the
operator itself that touched an entity Rolekeeper manages, asks for an immediate check of that
object (`request_check`, the drift queue's; it returns how many objects it queued). The sweep
stays the safety net: an event lost, late or never sent is caught within one interval.

What happens to each message, and why:

- matched, ignored_own, ignored_unmanaged, ignored_failed: deleted once handled. The check runs
  from the drift queue after that, so a crash between the two loses nothing the sweep won't see.
- unparseable (not an IAM CloudTrail event, too big, malformed): with a dead-letter URL, copied
  there with the reason and deleted; without one, left in the queue, whose redrive policy moves
  it to its dead-letter queue after maxReceiveCount receives (each receive counts again).
- a failed `request_check`: left in the queue, to come back after its visibility timeout.

The loop never ends on an error: SQS failures are counted, logged (never a message body: it may
hold policy documents) and retried with jittered exponential backoff. SQS calls block (a long
poll waits up to 20 s), so each runs in a daemon thread of its own rather than on the operator's
worker pool: a poll never takes a reconcile's worker, and never holds up the process's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from controller.aws import events as aws_events
from controller.aws.events import Message, Queue
from controller.core import cloudtrail
from controller.core.errors import AWSError
from controller.kinds import registry
from controller.operator import metrics
from controller.settings import EventSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# (account id, kind, AWS name, why) -> how many managed objects were queued for a check.
RequestCheck = Callable[[str, str, str, str], "int | Awaitable[int]"]
Blocking = Callable[[Callable[[], Any]], Awaitable[Any]]
OUTCOMES = ("matched", "ignored_own", "ignored_unmanaged", "ignored_failed", "unparseable")
STAGES = ("receive", "delete", "dead_letter", "check")


async def in_thread(fn: Callable[[], T]) -> T:
    """`fn()` in a daemon thread of its own. A cancelled wait leaves the thread to finish its
    call (a long poll returns within its wait); its result is dropped, and a received message
    comes back after its visibility timeout."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="rolekeeper-sqs", daemon=True).start()
    return await future


class Consumer:
    """The events loop: `start()` it once the operator runs, `stop()` it on the way out."""

    def __init__(
        self,
        queue: Queue,
        request_check: RequestCheck,
        identities: Callable[[], Iterable[str]],
        *,
        keys: Mapping[str, tuple[str, ...]] = registry.CLOUDTRAIL_KEYS,
        max_backoff: float = 60.0,
        blocking: Blocking = in_thread,
        clock: Callable[[], float] = time.time,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.queue = queue
        self.request_check = request_check
        self.identities = identities  # the operator's own caller ARNs, one per account
        self.keys = keys
        self.max_backoff = max_backoff
        self.blocking = blocking
        self.clock = clock
        # False while this replica is not the one reconciling (peering): it must not take
        # messages the active replica needs, so it does not poll.
        self.active = active
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        for outcome in OUTCOMES:  # every series exists from the start, at 0
            metrics.EVENTS.labels(outcome=outcome)
        for stage in STAGES:
            metrics.EVENT_ERRORS.labels(stage=stage)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="rolekeeper-events")
            log.info("events: reading IAM events from %s", self.queue.url)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Poll until cancelled; an error backs off and polls again, it never ends the loop."""
        while True:
            if not self.active():
                await asyncio.sleep(1.0)
                continue
            try:
                await self.poll()
                self.failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the operator must outlive any SQS failure
                self.failures += 1
                delay = self.backoff()
                log.warning("events: %s; polling again in %.1f s", _describe(exc), delay)
                await asyncio.sleep(delay)

    def backoff(self) -> float:
        """Jittered exponential delay after `failures` failed polls in a row (1 s doubling)."""
        ceiling = min(self.max_backoff, 2.0 ** max(0, self.failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def poll(self) -> list[str]:
        """One long poll: handle every message received, delete those handled. Returns each
        message's outcome ("error" for one left in the queue by a failed check)."""
        try:
            messages: list[Message] = await self.blocking(self.queue.receive)
        except Exception:
            metrics.EVENT_ERRORS.labels(stage="receive").inc()
            raise
        outcomes: list[str] = []
        handled: list[Message] = []
        for message in messages:
            metrics.EVENTS_RECEIVED.inc()
            try:
                outcome, delete = await self.handle(message)
            except Exception as exc:  # one bad check must not stop the others
                metrics.EVENT_ERRORS.labels(stage="check").inc()
                log.warning(
                    "events: handling message %s failed, it will come back: %s",
                    message.message_id,
                    _describe(exc),
                )
                outcome, delete = "error", False
            outcomes.append(outcome)
            if delete:
                handled.append(message)
        if handled:
            await self._delete(handled)
        return outcomes

    async def handle(self, message: Message) -> tuple[str, bool]:
        """(outcome, whether to delete the message) for one message; raises what a failed
        `request_check` raised (the message is then left in the queue)."""
        try:
            event = cloudtrail.parse(message.body, self.keys)
        except cloudtrail.EventError as exc:
            metrics.EVENTS.labels(outcome="unparseable").inc()
            return "unparseable", await self._dead_letter(message, str(exc))
        if event.failed:
            outcome = "ignored_failed"
        elif cloudtrail.made_by(event, self.identities()):
            outcome = "ignored_own"
        else:
            queued = await self._check(event)
            outcome = "matched" if queued else "ignored_unmanaged"
            if queued and message.sent_at is not None:
                metrics.EVENT_DELAY.observe(max(0.0, self.clock() - message.sent_at))
        metrics.EVENTS.labels(outcome=outcome).inc()
        log.debug("events: %s (message %s): %s", event.event_name, message.message_id, outcome)
        return outcome, True

    async def _check(self, event: cloudtrail.Event) -> int:
        """Ask for a check of every managed object of every kind the event's entities name."""
        why = f"{event.event_name} by {event.issuer_arn or 'an AWS service'} (CloudTrail)"
        queued = 0
        asked: set[tuple[str, str, str]] = set()
        for touched in event.touched:
            for kind in self.keys.get(touched.resource_type, ()):
                target = (touched.account_id, kind, touched.name)
                if target in asked:
                    continue
                asked.add(target)
                found = self.request_check(touched.account_id, kind, touched.name, why)
                count = await found if inspect.isawaitable(found) else found
                if count:
                    metrics.EVENT_CHECKS.labels(kind=kind).inc(count)
                queued += count
        return queued

    async def _dead_letter(self, message: Message, reason: str) -> bool:
        """Forward an unreadable message if a dead-letter URL is set; whether to delete it."""
        log.warning(
            "events: message %s is not a readable IAM event: %s", message.message_id, reason
        )
        if not self.queue.dead_letter_url:
            return False  # the queue's redrive policy moves it after maxReceiveCount receives
        try:
            await self.blocking(lambda: self.queue.dead_letter(message, reason))
        except AWSError as exc:
            metrics.EVENT_ERRORS.labels(stage="dead_letter").inc()
            log.warning(
                "events: forwarding message %s failed: %s", message.message_id, _describe(exc)
            )
            return False
        metrics.EVENTS_DEAD_LETTERED.inc()
        return True

    async def _delete(self, messages: list[Message]) -> None:
        try:
            kept: list[Message] = await self.blocking(lambda: self.queue.delete(messages))
        except AWSError as exc:
            metrics.EVENT_ERRORS.labels(stage="delete").inc(len(messages))
            log.warning(
                "events: deleting %d handled messages failed: %s", len(messages), _describe(exc)
            )
            return
        if kept:
            metrics.EVENT_ERRORS.labels(stage="delete").inc(len(kept))
            log.warning("events: SQS kept %d handled messages; they will come back", len(kept))


def _describe(exc: BaseException) -> str:
    """An error for the log: AWS's code and message, or the exception's type (never a body)."""
    if isinstance(exc, AWSError):
        return f"{exc.operation}: {exc.code or 'error'}: {exc.aws_message}"
    return type(exc).__name__


async def start(
    settings: EventSettings,
    request_check: RequestCheck,
    identities: Callable[[], Iterable[str]],
    active: Callable[[], bool] = lambda: True,
) -> Consumer:
    """Connect to the queue `settings` name and start reading it (the operator's startup)."""
    queue = await asyncio.to_thread(aws_events.connect, settings)
    consumer = Consumer(
        queue, request_check, identities, max_backoff=settings.max_backoff, active=active
    )
    consumer.start()
    return consumer
