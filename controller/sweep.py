"""Drift sweeps: one shared account snapshot per interval instead of N per-object reads.

Every managed object's drift timer asks the `Sweeper` what AWS holds for its entity. The first
asker of an interval takes the snapshot (under a lock); everyone else compares against it in
memory. Objects whose snapshot entry matches the spec cost no call at all; only those that differ
are re-read and fixed. When the operator manages few entities in a large account, reading each
entity is cheaper than paging through the account, and the sweeper says so (`None`), letting the
caller read its own entity.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from controller.model import Entity, Role
from controller.observe import AccountSnapshot

log = logging.getLogger(__name__)

READS_PER_ROLE = 5  # GetRole, ListAttached, ListRolePolicies, 1 GetRolePolicy, ListProfiles
READS_PER_USER = 5  # GetUser, ListAttached, ListUserPolicies, 1 GetUserPolicy, ListGroups
AWS_PAGE = 100  # GetAccountAuthorizationDetails items per page on real AWS (moto: all in one)
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
        self.managed: dict[str, Entity] = {}  # uid -> desired entity, kept by the handlers
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

    async def lookup(self, uid: str, entity: Entity) -> tuple[bool, Entity | None]:
        """(True, observed-or-None) from this interval's snapshot, or (False, None) when the
        caller should read the entity itself (per-entity mode is cheaper)."""
        self.managed[uid] = entity
        snapshot = await self._current()
        if snapshot is None:
            return False, None
        return True, snapshot.find(entity)

    def estimated_calls(self, snapshot: AccountSnapshot) -> tuple[int, int]:
        """(snapshot calls, per-entity calls) for one sweep, using real AWS's page size."""
        entities = len(snapshot.roles) + len(snapshot.users)
        snapshot_calls = max(1, math.ceil(entities / AWS_PAGE)) + math.ceil(
            len(snapshot.roles) / 1000
        )
        per_entity = sum(
            READS_PER_ROLE if isinstance(e, Role) else READS_PER_USER for e in self.managed.values()
        )
        return snapshot_calls, per_entity

    async def _current(self) -> AccountSnapshot | None:
        # Refresh a little before the interval ends, so timers firing on schedule see a new one.
        if self.snapshot_age < self._interval * 0.9:
            return self._snapshot if self._use_snapshot else None
        async with self._lock:
            if self.snapshot_age < self._interval * 0.9:  # another timer refreshed it meanwhile
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
                "account snapshot: %d roles, %d users; sweep by %s (%d vs %d calls)",
                len(self._snapshot.roles),
                len(self._snapshot.users),
                "snapshot" if self._use_snapshot else "per-entity reads",
                snapshot_calls,
                per_entity,
            )
            return self._snapshot if self._use_snapshot else None

    _use_snapshot: bool = True
