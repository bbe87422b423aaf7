"""operator.drift.Drift: one sweep per account, one queue of checks, the sooner reason first.

Covers: a sweep takes one snapshot and queues only the objects its judge names; differences go
before retries and retries before refreshes; an object is queued once however often it is
asked for (and moves up when asked for sooner); an account with nothing to manage is not read;
the operator's own account's sweep retries the objects no account could take; every tenth
sweep refreshes the objects in sync; a failing check does not stop the queue; stop() ends all.
"""

from __future__ import annotations

import asyncio

from controller.engine.sweep import RESAMPLE_EVERY, Sweeper
from controller.kinds.base import Desired, ObjectRef
from controller.kinds.role import Role
from controller.kinds.snapshot import AccountSnapshot
from controller.operator.drift import Drift, Why


def role(name: str) -> Desired:
    return Desired(ObjectRef("IAMRole", "team-a", name, name), Role(name=name, assume_role_policy={}))


class Rig:
    """A Drift whose checks are recorded, with a judge answering from a table."""

    def __init__(self, verdicts: dict[str, Why | None], unplaced: set[str] | None = None) -> None:
        self.verdicts = verdicts
        self.checked: list[tuple[str, Why]] = []
        self.snapshots = 0
        self.gate = asyncio.Event()  # checks wait on it, so the queue can be filled first
        self.gate.set()
        self.drift = Drift(3600.0, 1, self.check, self.judge, lambda: set(unplaced or ()))

    async def take(self) -> AccountSnapshot:
        self.snapshots += 1
        return AccountSnapshot(entities={}, listed=0)

    def sweeper(self, names: list[str]) -> Sweeper:
        sweeper = Sweeper(self.take, 3600.0)
        for name in names:
            sweeper.managed[name] = role(name)
        return sweeper

    def judge(self, key: str, uid: str, sweeper: Sweeper) -> Why | None:
        if uid == "unreadable":
            raise ValueError("a judge that fails on one object")
        return self.verdicts.get(uid)

    async def check(self, uid: str, why: Why) -> None:
        await self.gate.wait()
        if uid == "boom":
            raise RuntimeError("a check that fails")
        self.checked.append((uid, why))

    async def drain(self) -> None:
        for _ in range(100):
            await asyncio.sleep(0)
            if not self.drift._queued:
                break
        await asyncio.sleep(0)


def test_a_sweep_reads_once_and_queues_only_what_differs_sooner_first() -> None:
    rig = Rig({"fine": None, "failing": Why.RETRY, "drifted": Why.DRIFT})

    async def main() -> None:
        rig.gate.clear()
        sweeper = rig.sweeper(["fine", "failing", "drifted"])
        rig.drift.watch("", sweeper)
        await rig.drift._sweep_once("", sweeper)
        rig.gate.set()
        await rig.drain()
        await rig.drift.stop()

    asyncio.run(main())
    assert rig.snapshots == 1
    assert rig.checked == [("drifted", Why.DRIFT), ("failing", Why.RETRY)]


def test_an_object_is_queued_once_and_moves_up_when_asked_sooner() -> None:
    rig = Rig({})

    async def main() -> list[bool]:
        rig.gate.clear()
        rig.drift.watch("", rig.sweeper([]))
        answers = [
            rig.drift.request("a", Why.REFRESH),
            rig.drift.request("a", Why.REFRESH),  # already queued
            rig.drift.request("b", Why.RETRY),
            rig.drift.request("a", Why.EVENT),  # sooner: moves ahead of b
        ]
        rig.gate.set()
        await rig.drain()
        await rig.drift.stop()
        return answers

    assert asyncio.run(main()) == [True, False, True, False]
    assert rig.checked == [("a", Why.EVENT), ("b", Why.RETRY)]


def test_an_account_with_nothing_to_manage_is_not_read() -> None:
    rig = Rig({})

    async def main() -> None:
        await rig.drift._sweep_once("acct-b", rig.sweeper([]))

    asyncio.run(main())
    assert rig.snapshots == 0


def test_the_own_accounts_sweep_retries_objects_no_account_took() -> None:
    rig = Rig({}, unplaced={"homeless"})

    async def main() -> None:
        rig.drift.watch("", rig.sweeper([]))
        await rig.drift._sweep_once("acct-b", rig.sweeper(["x"]))  # another account: no
        await rig.drain()
        assert rig.checked == []
        await rig.drift._sweep_once("", rig.sweeper([]))
        await rig.drain()
        await rig.drift.stop()

    asyncio.run(main())
    assert rig.checked == [("homeless", Why.RETRY)]


def test_every_tenth_sweep_refreshes_objects_in_sync() -> None:
    rig = Rig({"fine": None})

    async def main() -> None:
        sweeper = rig.sweeper(["fine"])
        rig.drift.watch("", sweeper)
        for _ in range(RESAMPLE_EVERY):
            await rig.drift._sweep_once("", sweeper)
            await rig.drain()
        await rig.drift.stop()

    asyncio.run(main())
    assert rig.snapshots == RESAMPLE_EVERY
    assert rig.checked == [("fine", Why.REFRESH)]


def test_an_object_the_judge_cannot_read_is_checked_and_the_sweep_goes_on() -> None:
    rig = Rig({"drifted": Why.DRIFT})

    async def main() -> None:
        sweeper = rig.sweeper(["unreadable", "drifted"])
        rig.drift.watch("", sweeper)
        await rig.drift._sweep_once("", sweeper)
        await rig.drain()
        await rig.drift.stop()

    asyncio.run(main())
    assert rig.checked == [("drifted", Why.DRIFT), ("unreadable", Why.RETRY)]


def test_every_account_gets_its_tenth_sweep_refresh_however_sweeps_interleave() -> None:
    rig = Rig({})

    async def main() -> None:
        mine, theirs = rig.sweeper(["mine"]), rig.sweeper(["theirs"])
        rig.drift.watch("", mine)
        for _ in range(RESAMPLE_EVERY):  # the two accounts' sweeps alternate
            await rig.drift._sweep_once("", mine)
            await rig.drift._sweep_once("acct-b", theirs)
            await rig.drain()
        await rig.drift.stop()

    asyncio.run(main())
    assert sorted(rig.checked) == [("mine", Why.REFRESH), ("theirs", Why.REFRESH)]


def test_a_failing_check_does_not_stop_the_queue() -> None:
    rig = Rig({})

    async def main() -> None:
        rig.drift.watch("", rig.sweeper([]))
        rig.drift.request("boom", Why.DRIFT)
        rig.drift.request("next", Why.DRIFT)
        await rig.drain()
        await rig.drift.stop()

    asyncio.run(main())
    assert rig.checked == [("next", Why.DRIFT)]


def test_sweeps_tick_each_interval_and_stop_ends_them() -> None:
    rig = Rig({"drifted": Why.DRIFT})
    rig.drift = Drift(0.05, 1, rig.check, rig.judge, set)

    async def main() -> None:
        rig.drift.watch("", rig.sweeper(["drifted"]))
        await asyncio.sleep(0.4)
        await rig.drift.stop()
        count = rig.snapshots
        await asyncio.sleep(0.15)
        assert rig.snapshots == count  # stopped: no more sweeps

    asyncio.run(main())
    assert 3 <= rig.snapshots <= 9
    assert rig.checked and all(c == ("drifted", Why.DRIFT) for c in rig.checked)


def test_a_paused_replica_neither_sweeps_nor_checks() -> None:
    rig = Rig({"drifted": Why.DRIFT})
    active = {"now": False}
    rig.drift = Drift(0.05, 1, rig.check, rig.judge, set, active=lambda: active["now"])

    async def main() -> None:
        rig.drift.watch("", rig.sweeper(["drifted"]))
        rig.drift.request("queued-before-the-pause", Why.EVENT)
        await asyncio.sleep(0.3)
        assert rig.snapshots == 0 and rig.checked == []
        active["now"] = True  # resumed: the next tick sweeps again
        await asyncio.sleep(0.2)
        await rig.drift.stop()

    asyncio.run(main())
    assert rig.snapshots >= 1
    assert ("drifted", Why.DRIFT) in rig.checked
