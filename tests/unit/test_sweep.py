"""sweep.Sweeper: one shared account snapshot per interval, and the snapshot/per-entity choice.

Covers: many concurrent lookups in one interval take one snapshot; a new interval takes a new
one; lookups find the entity or report it absent; with few managed entities in a large account
the sweeper answers "read it yourself" and re-measures after RESAMPLE_EVERY intervals; the cost
estimate uses real AWS's 100-item pages.
"""

from __future__ import annotations

import asyncio

from controller.engine.sweep import RESAMPLE_EVERY, Sweeper
from controller.kinds.base import Desired, ObjectRef
from controller.kinds.role import Role
from controller.kinds.snapshot import AccountSnapshot
from controller.kinds.user import User

TRUST = {"Statement": []}


def account(roles: int, users: int = 0) -> AccountSnapshot:
    return AccountSnapshot(
        entities={
            "IAMRole": {f"r{i}": desired_role(f"r{i}") for i in range(roles)},
            "IAMUser": {f"u{i}": User(name=f"u{i}") for i in range(users)},
        },
        listed=roles,  # ListRoles lists every role
    )


def desired_role(name: str) -> Desired:
    return Desired(ObjectRef("IAMRole", "team-a", name, "uid"), Role(name=name, assume_role_policy=TRUST))


def desired_user(name: str) -> Desired:
    return Desired(ObjectRef("IAMUser", "team-a", name, "uid"), User(name=name))


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
        return await asyncio.gather(*(sweeper.lookup(f"uid{i}", desired_role(f"r{i}")) for i in range(50)))

    results = asyncio.run(main())
    assert len(taken) == 1
    assert all(found and entity is not None for found, entity in results)


def test_absent_entity_is_reported_absent() -> None:
    sweeper, _, _ = make(account(3))
    assert asyncio.run(sweeper.lookup("x", desired_role("missing"))) == (True, None)


def test_next_interval_takes_a_new_snapshot() -> None:
    sweeper, clock, taken = make(account(5), interval=60)
    role = desired_role("r1")
    asyncio.run(sweeper.lookup("a", role))
    clock.now += 30
    asyncio.run(sweeper.lookup("a", role))
    assert len(taken) == 1
    clock.now += 30
    asyncio.run(sweeper.lookup("a", role))
    assert len(taken) == 2


def test_few_entities_in_a_large_account_read_themselves() -> None:
    sweeper, clock, taken = make(account(roles=20_000, users=5_000), interval=60)
    role = desired_role("r1")
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
        sweeper.managed[f"uid{i}"] = desired_role(f"r{i}")
    sweeper.managed["user"] = desired_user("u")
    assert sweeper.estimated_calls(account(roles=1000, users=0)) == (10 + 1, 4 * 5)
