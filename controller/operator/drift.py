"""Drift: one sweep per AWS account each interval, and one queue of objects to check now.

Each account's sweep takes one snapshot per interval (`engine.sweep.Sweeper.refresh`) and asks,
for every managed object of that account, whether it needs a check (`Judge`: compared with the
snapshot in memory, no call). Only those go on the queue; the workers run the handlers' check
(`Check`), which re-reads what differs before writing, as every reconcile does. So drift is seen
at most one interval after it happens, whatever the number of objects, and a steady account
costs one snapshot per interval and no Kubernetes write.

Other sources queue objects too (CloudTrail events, `request`). An object is queued once however
often it is asked for; differences from the spec go before retries of objects in error, and
those before the periodic refresh of objects in sync, so a correction never waits behind a
thousand objects that are fine.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from controller.engine.sweep import RESAMPLE_EVERY, Sweeper
from controller.operator import memory

log = logging.getLogger(__name__)


class Why(enum.IntEnum):
    """Why an object is checked; the lower, the sooner."""

    EVENT = 0  # something outside told us the entity changed (a CloudTrail event)
    DRIFT = 1  # the snapshot differs from the spec while the object was in sync
    RETRY = 2  # the object is not in sync yet (an error being retried, a dependency)
    REFRESH = 3  # in sync; status fields that move with time (last use) are refreshed


Check = Callable[[str, Why], Awaitable[None]]
# (account key, uid) -> why it needs a check now, None when it does not (in memory, no call).
Judge = Callable[[str, str, Sweeper], Why | None]
# Objects that belong to no sweeper yet (their account was unavailable): retried each interval.
Unplaced = Callable[[], set[str]]


class Drift:
    """The sweep loops (one per account) and the workers that run the queued checks."""

    def __init__(
        self,
        interval: float,
        workers: int,
        check: Check,
        judge: Judge,
        unplaced: Unplaced,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self._interval = interval
        self._workers = workers
        self._check = check
        self._judge = judge
        self._unplaced = unplaced
        # False while Kopf's peering has paused this replica: no sweep, no check (its peer works).
        self._active = active
        self._queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self._queued: dict[str, Why] = {}
        self._order = itertools.count()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sweeps: Counter[str] = Counter()  # sweeps that read their account, by account

    def watch(self, key: str, sweeper: Sweeper) -> None:
        """Start account `key`'s sweep loop (once), and the workers with the first account.
        Called from a handler, so the tasks inherit Kopf's context (its Event poster)."""
        if not self._tasks:
            for n in range(self._workers):
                self._tasks[f"worker-{n}"] = asyncio.create_task(self._work(), name="drift-worker")
        if f"sweep-{key}" not in self._tasks:
            task = asyncio.create_task(self._sweep(key, sweeper), name=f"drift-sweep-{key}")
            self._tasks[f"sweep-{key}"] = task

    def request(self, uid: str, why: Why) -> bool:
        """Queue a check of `uid` (False: it is queued already, now with the sooner reason)."""
        queued = self._queued.get(uid)
        if queued is not None and queued <= why:
            return False
        self._queued[uid] = why
        self._queue.put_nowait((int(why), next(self._order), uid))
        return queued is None

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _sweep(self, key: str, sweeper: Sweeper) -> None:
        # The first sweep comes half to one interval after start: resuming objects have just
        # been checked against a fresh snapshot, and replicas or accounts do not tick together.
        due = time.monotonic() + self._interval * random.uniform(0.5, 1.0)
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            # The next tick is one interval after this one started, however long this one takes
            # (never a burst of catching up after a slow snapshot).
            due = max(due + self._interval, time.monotonic())
            if not self._active():
                continue
            try:
                await self._sweep_once(key, sweeper)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed snapshot: the next interval tries again
                log.exception("drift sweep of account %r failed; next in %.0fs", key or "own",
                              self._interval)  # fmt: skip

    async def _sweep_once(self, key: str, sweeper: Sweeper) -> None:
        counts = {why: 0 for why in Why}
        if sweeper.managed:  # an account with nothing (left) to manage is not read at all
            await sweeper.refresh()
            self._sweeps[key] += 1
        # Counted per account: one count for all would skip some accounts' turns for good.
        refresh = self._sweeps[key] % RESAMPLE_EVERY == 0
        for uid in list(sweeper.managed):
            try:
                why = self._judge(key, uid, sweeper)
            except Exception:  # one object the judge cannot read must not stop the sweep
                log.exception("drift sweep could not judge %s; checking it", uid)
                why = Why.RETRY
            if why is None and refresh:
                why = Why.REFRESH
            if why is not None:
                counts[why] += int(self.request(uid, why))
        if not key:  # the operator's own account's loop also retries the unplaced objects
            for uid in self._unplaced():
                counts[Why.RETRY] += int(self.request(uid, Why.RETRY))
        log.debug("sweep of account %r: %s", key or "own",
                  ", ".join(f"{n} {why.name.lower()}" for why, n in counts.items()))  # fmt: skip
        memory.trim()  # the snapshot's pages, and those of any burst since the last sweep

    async def _work(self) -> None:
        while True:
            rank, _, uid = await self._queue.get()
            if self._queued.get(uid) != rank:
                continue  # a stale entry: the object was queued again sooner, or checked
            del self._queued[uid]
            if not self._active():
                continue  # paused meanwhile: the active replica checks it
            try:
                await self._check(uid, Why(rank))
            except asyncio.CancelledError:
                raise
            except Exception:  # one object's failure must not stop the queue
                log.exception("drift check of %s failed", uid)
