"""Drift sweeps: one shared account snapshot per interval instead of N per-object reads.

The operator's sweep of an account calls `refresh` once per interval and compares every managed
object against the snapshot in memory (`operator.drift`). Objects whose snapshot entry matches
the spec cost no call at all; only those that differ are re-read and fixed. Objects resuming
after a restart `lookup` the same snapshot (the first asker takes it, under a lock). When the
operator manages few entities in a large account, reading each entity is cheaper than paging
through the account, and the sweeper says so (`None`), letting the caller read its own entity.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from controller.kinds.base import Desired, Entity
from controller.kinds.snapshot import AccountSnapshot

log = logging.getLogger(__name__)

# Role: GetRole, ListAttached, ListRolePolicies, 1 GetRolePolicy, ListInstanceProfilesForRole;
# user: GetUser, ListAttached, ListUserPolicies, 1 GetUserPolicy, ListGroupsForUser.
READS_PER_ENTITY = 5
RESAMPLE_EVERY = 10  # intervals between snapshots in per-entity mode, to re-measure the account


class Sweeper:
    """Shares one account snapshot among all drift timers of an operator (one AWS account)."""

    def __init__(
        self,
        take_snapshot: Callable[[], Awaitable[AccountSnapshot]],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._take = take_snapshot
        self._interval = interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._snapshot: AccountSnapshot | None = None
        self._taken_at = -math.inf
        self._skipped = 0
        self.managed: dict[str, Desired] = {}  # uid -> desired object, kept by the handlers
        self._reconciled: dict[str, float] = {}  # uid -> when its own reconcile last finished
        self.snapshots_taken = 0

    @property
    def snapshot_age(self) -> float:
        return self._clock() - self._taken_at

    def forget(self, uid: str) -> None:
        self.managed.pop(uid, None)
        self._reconciled.pop(uid, None)

    def reconciled(self, uid: str) -> None:
        """Record that `uid`'s own reconcile (which reads AWS itself) has just finished."""
        self._reconciled[uid] = self._clock()

    def predates_reconcile(self, uid: str) -> bool:
        """Whether the current snapshot finished before `uid`'s last own reconcile did: it may
        miss what that reconcile created, and a change it could show is at most one interval
        from the next snapshot."""
        return self._taken_at <= self._reconciled.get(uid, -math.inf)

    async def lookup(self, uid: str, desired: Desired) -> tuple[bool, Entity | None]:
        """(True, observed-or-None) from this interval's snapshot, or (False, None) when the
        caller should read the entity itself (per-entity mode is cheaper)."""
        self.managed[uid] = desired
        await self._current()
        return self.find(desired)

    async def refresh(self) -> AccountSnapshot | None:
        """This interval's snapshot, taken now (the sweep's tick), or None in per-entity mode."""
        return await self._current(force=True)

    def find(self, desired: Desired) -> tuple[bool, Entity | None]:
        """What the current snapshot holds for `desired` (as `lookup`, without taking one)."""
        if self._snapshot is None or not self._use_snapshot:
            return False, None
        return True, self._snapshot.find(desired)

    def estimated_calls(self, snapshot: AccountSnapshot) -> tuple[int, int]:
        """(snapshot calls, per-entity calls) for one sweep, using real AWS's page size."""
        return snapshot.real_aws_pages(), READS_PER_ENTITY * len(self.managed)

    async def _current(self, force: bool = False) -> AccountSnapshot | None:
        # A little younger than the interval counts as current: the sweep's own tick refreshes.
        if not force and self.snapshot_age < self._interval * 0.9:
            return self._snapshot if self._use_snapshot else None
        async with self._lock:
            if not force and self.snapshot_age < self._interval * 0.9:  # refreshed meanwhile
                return self._snapshot if self._use_snapshot else None
            if self._snapshot is not None and not self._use_snapshot:
                self._skipped += 1
                if self._skipped < RESAMPLE_EVERY:
                    self._taken_at = self._clock()
                    return None
            self._skipped = 0
            self._snapshot = await self._take()
            self._taken_at = self._clock()
            self.snapshots_taken += 1
            snapshot_calls, per_entity = self.estimated_calls(self._snapshot)
            self._use_snapshot = snapshot_calls <= per_entity
            log.info(
                "account snapshot: %s; sweep by %s (%d vs %d calls)",
                ", ".join(f"{len(e)} {k}" for k, e in self._snapshot.entities.items()),
                "snapshot" if self._use_snapshot else "per-entity reads",
                snapshot_calls,
                per_entity,
            )
            return self._snapshot if self._use_snapshot else None

    _use_snapshot: bool = True
