"""sweep.Sweeper: one shared account snapshot per interval, and the snapshot/per-entity choice.

Covers: many concurrent lookups in one interval take one snapshot; a new interval takes a new
one; lookups find the entity or report it absent; with few managed entities in a large account
the sweeper answers "read it yourself" and re-measures after RESAMPLE_EVERY intervals; the cost
estimate uses real AWS's 100-item pages.
"""

from __future__ import annotations

import asyncio

from controller.model import Role, User
from controller.observe import AccountSnapshot
from controller.sweep import RESAMPLE_EVERY, Sweeper

TRUST = {"Statement": []}


def account(roles: int, users: int = 0) -> AccountSnapshot:
    return AccountSnapshot(
        roles={f"r{i}": Role(name=f"r{i}", assume_role_policy=TRUST) for i in range(roles)},
        users={f"u{i}": User(name=f"u{i}") for i in range(users)},
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(snapshot: AccountSnapshot, interval: float = 60.0) -> tuple[Sweeper, Clock, list[int]]:
    clock, taken = Clock(), []

    async def take() -> AccountSnapshot:
        taken.append(1)
        await asyncio.sleep(0)  # let concurrent lookups pile up on the lock
        return snapshot

    return Sweeper(take, interval, clock), clock, taken


def test_concurrent_lookups_share_one_snapshot() -> None:
    sweeper, _, taken = make(account(50))

    async def main() -> list[tuple[bool, object]]:
        return await asyncio.gather(*(sweeper.lookup(f"uid{i}", Role(name=f"r{i}", assume_role_policy=TRUST)) for i in range(50)))

    results = asyncio.run(main())
    assert len(taken) == 1
    assert all(found and entity is not None for found, entity in results)


def test_absent_entity_is_reported_absent() -> None:
    sweeper, _, _ = make(account(3))
    assert asyncio.run(sweeper.lookup("x", Role(name="missing", assume_role_policy=TRUST))) == (True, None)


def test_next_interval_takes_a_new_snapshot() -> None:
    sweeper, clock, taken = make(account(5), interval=60)
    role = Role(name="r1", assume_role_policy=TRUST)
    asyncio.run(sweeper.lookup("a", role))
    clock.now += 30
    asyncio.run(sweeper.lookup("a", role))
    assert len(taken) == 1
    clock.now += 30
    asyncio.run(sweeper.lookup("a", role))
    assert len(taken) == 2


def test_few_entities_in_a_large_account_read_themselves() -> None:
    sweeper, clock, taken = make(account(roles=20_000, users=5_000), interval=60)
    role = Role(name="r1", assume_role_policy=TRUST)
    # 25,000 entities = 250 GAAD pages + 20 ListRoles pages; one managed role costs 5 reads.
    assert asyncio.run(sweeper.lookup("a", role)) == (False, None)
    for _ in range(RESAMPLE_EVERY - 1):
        clock.now += 60
        assert asyncio.run(sweeper.lookup("a", role)) == (False, None)
    assert len(taken) == 1
    clock.now += 60
    asyncio.run(sweeper.lookup("a", role))
    assert len(taken) == 2, "re-measured after RESAMPLE_EVERY intervals"


def test_estimate_uses_real_aws_page_sizes() -> None:
    sweeper, _, _ = make(account(roles=1000, users=0))
    for i in range(3):
        sweeper.managed[f"uid{i}"] = Role(name=f"r{i}", assume_role_policy=TRUST)
    sweeper.managed["user"] = User(name="u")
    assert sweeper.estimated_calls(account(roles=1000, users=0)) == (10 + 1, 4 * 5)
