"""spec.accessKey against the moto server: the operator's key steps (`operator.secrets.converge`)
with the Secret replaced by a dict, so every crash point can be hit exactly and quickly.

Covers: create (one key; the Secret's key works: sts:GetCallerIdentity with it answers the
user's ARN); a second converge is reads only; on-demand rotation (two keys, the Secret holds the
new one, the old one stays active until the grace period ends, then is deactivated and deleted);
scheduled rotation; two hand-made keys (Conflict, nothing written, nothing deleted); a crash
(an exception that stops the step where it is) after each step — announcement, CreateAccessKey,
Secret write, deactivation, deletion — in both the first creation and a rotation: the next
converge, alone, leaves exactly the expected keys and a working Secret key, and never the
orphan; the secret never reaches a log record at any level (botocore quieted as `rolekeeper
run` does), the applied Actions or the status; finalize deletes the user with its keys.
The e2e tier proves the same with kill -9 and a real Secret (tests/e2e/test_access_keys.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from controller.aws import clients as aws
from controller.engine import apply
from controller.engine.reconcile import finalize, reconcile
from controller.kinds import accesskeys, registry
from controller.kinds.accesskeys import AccessKeySpec, NewKey, Record
from controller.operator import secrets
from tests.harness import moto
from tests.helpers import user

pytestmark = pytest.mark.aws


class Crash(Exception):
    """Stands for kill -9: the step stops where it is; AWS and the store keep what they got."""


class MemoryStore:
    """The Secret as a dict: what `KubeSecret` reads back (the key id comes from the data)."""

    def __init__(self) -> None:
        self.record = Record()
        self.data: dict[str, str] = {}
        self.saves = 0

    async def read(self) -> Record:
        return replace(self.record, current=self.data.get("AWS_ACCESS_KEY_ID", ""))

    async def save(self, record: Record, key: NewKey | None) -> None:
        if key is not None:
            self.data = accesskeys.secret_data(key)
        self.record = replace(record, exists=True)
        self.saves += 1

    async def delete(self) -> None:
        self.record, self.data = Record(), {}


class World:
    """One managed user in moto, its store, and a clock the test moves."""

    def __init__(self, clients: aws.Clients, name: str, spec: AccessKeySpec) -> None:
        self.clients = clients
        self.name = name
        self.spec = spec
        self.store = MemoryStore()
        self.now = datetime.now(UTC)
        self.known: frozenset[str] = frozenset()
        desired = user(name, accessKey={})
        assert reconcile(clients, secrets.entity_only(desired)).ready
        self.kind = registry.of(desired)

    def converge(self, hook: Callable[[str], None] | None = None,
                 run: Any = None) -> secrets.KeyResult:
        async def go() -> secrets.KeyResult:
            return await secrets.converge(
                self.store, run or asyncio.to_thread, self.clients.iam, self.kind, self.spec,
                self.name, self.known, hook=hook, now=lambda: self.now)
        result = asyncio.run(go())
        self.known = secrets.known({"accessKey": result.status})
        return result

    def aws_keys(self) -> dict[str, str]:
        found = self.clients.iam.list_access_keys(UserName=self.name)["AccessKeyMetadata"]
        return {k["AccessKeyId"]: k["Status"] for k in found}

    def secret_works(self) -> bool:
        sts = boto3.client(
            "sts", region_name="us-east-1",
            aws_access_key_id=self.store.data["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.store.data["AWS_SECRET_ACCESS_KEY"])
        arn = sts.get_caller_identity()["Arn"]
        return bool(arn == f"arn:aws:iam::123456789012:user/{self.name}")


@pytest.fixture
def world(clients: aws.Clients, unique: Callable[[str], str]) -> Iterator[World]:
    w = World(clients, unique("keys"), AccessKeySpec("s", rotate_after=86400, grace_period=600))
    yield w
    finalize(clients, user(w.name))


def crash_at(step: str) -> Callable[[str], None]:
    def hook(seen: str) -> None:
        if seen == step:
            raise Crash(step)
    return hook


def test_create_makes_one_working_key_then_reads_only(world: World) -> None:
    result = world.converge()
    assert result.verdict is None
    assert [a.api for a in result.applied] == ["CreateAccessKey"]
    assert list(world.aws_keys()) == [world.store.data["AWS_ACCESS_KEY_ID"]]
    assert world.secret_works()
    assert result.status["accessKeyId"] == world.store.data["AWS_ACCESS_KEY_ID"]
    assert set(result.status) >= {"secretName", "accessKeyId", "created", "nextRotation"}
    before = world.clients.counter.snapshot()
    again = world.converge()
    after = world.clients.counter.snapshot()
    assert again.applied == () and again.verdict is None
    made = {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)}
    assert set(made) <= {"ListAccessKeys", "GetAccessKeyLastUsed"}, made


def test_on_demand_rotation_keeps_the_old_key_until_grace_ends(world: World) -> None:
    world.converge()
    old = world.store.data["AWS_ACCESS_KEY_ID"]
    world.spec = replace(world.spec, rotate_request="please")
    result = world.converge()
    new = world.store.data["AWS_ACCESS_KEY_ID"]
    assert new != old and world.aws_keys() == {old: "Active", new: "Active"}
    assert [a.api for a in result.applied] == ["CreateAccessKey"]
    assert result.status["previousAccessKeyId"] == old and "lastRotation" in result.status
    assert world.secret_works()
    world.now += timedelta(seconds=599)
    assert world.converge().applied == ()
    world.now += timedelta(seconds=2)
    retired = world.converge()
    assert [(a.api, a.params["AccessKeyId"]) for a in retired.applied] == [
        ("UpdateAccessKey", old), ("DeleteAccessKey", old)]
    assert world.aws_keys() == {new: "Active"} and "previousAccessKeyId" not in retired.status
    assert world.converge().applied == ()  # the annotation value is honoured once


def test_scheduled_rotation(world: World) -> None:
    world.converge()
    old = world.store.data["AWS_ACCESS_KEY_ID"]
    world.now += timedelta(days=1, seconds=1)
    result = world.converge()
    assert "scheduled rotation" in result.applied[0].summary
    assert old in world.aws_keys() and len(world.aws_keys()) == 2 and world.secret_works()


def test_two_hand_made_keys_are_refused_and_kept(world: World) -> None:
    iam = world.clients.iam
    hand = {iam.create_access_key(UserName=world.name)["AccessKey"]["AccessKeyId"] for _ in "ab"}
    result = world.converge()
    assert result.verdict is not None and str(result.verdict.reason) == "Conflict"
    assert all(k in result.verdict.message for k in hand)
    assert result.applied == () and set(world.aws_keys()) == hand and world.store.saves == 0
    assert result.status["unmanagedAccessKeyIds"] == sorted(hand)


# Where a crash lands, and what one converge after it must leave: (keys, secret) checks.
CREATE_CRASHES = ["announced", "created", "written"]


@pytest.mark.parametrize("step", CREATE_CRASHES)
def test_crash_in_the_first_creation(world: World, step: str) -> None:
    with pytest.raises(Crash):
        world.converge(hook=crash_at(step))
    orphans = set(world.aws_keys()) - {world.store.data.get("AWS_ACCESS_KEY_ID")}
    assert bool(orphans) == (step == "created")  # the crash the issue is about
    result = world.converge()
    keys = world.aws_keys()
    assert list(keys) == [world.store.data["AWS_ACCESS_KEY_ID"]]
    assert not orphans & set(keys)
    assert world.secret_works()
    assert [a.api for a in result.applied] == (
        ["DeleteAccessKey", "CreateAccessKey"] if step == "created"
        else ["CreateAccessKey"] if step == "announced" else [])


@pytest.mark.parametrize("step", [*CREATE_CRASHES, "UpdateAccessKey", "DeleteAccessKey"])
def test_crash_in_a_rotation(world: World, step: str) -> None:
    world.converge()
    first = world.store.data["AWS_ACCESS_KEY_ID"]
    world.spec = replace(world.spec, rotate_request="r1")
    if step in CREATE_CRASHES:
        with pytest.raises(Crash):
            world.converge(hook=crash_at(step))
    else:
        world.converge()
        world.now += timedelta(seconds=601)
        with pytest.raises(Crash):
            world.converge(run=stop_after(step))
    world.converge()
    keys = world.aws_keys()
    held = world.store.data["AWS_ACCESS_KEY_ID"]
    assert world.secret_works()
    if step in CREATE_CRASHES:
        # The rotation completes: the first key (in grace) and exactly one new one.
        assert held != first and set(keys) == {first, held}
        assert all(status == "Active" for status in keys.values())
    else:
        assert set(keys) == {held} and held != first


def stop_after(api: str) -> Callable[..., Any]:
    """A `run` that crashes right after the call `api` succeeded (inside one executed batch)."""
    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        if fn is apply.execute and any(a.api == api for a in args[2]):
            client, kind, actions = args[:3]
            upto = next(i for i, a in enumerate(actions) if a.api == api) + 1
            await asyncio.to_thread(apply.execute, client, kind, actions[:upto])
            raise Crash(api)
        return await asyncio.to_thread(fn, *args)
    return run


def test_the_secret_never_reaches_logs_actions_or_status(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    for noisy in ("botocore", "boto3", "urllib3"):  # what `rolekeeper run` does
        logging.getLogger(noisy).setLevel(logging.WARNING)
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        results = [world.converge()]
        seen.append(world.store.data["AWS_SECRET_ACCESS_KEY"])
        world.spec = replace(world.spec, rotate_request="again")
        results.append(world.converge())
        seen.append(world.store.data["AWS_SECRET_ACCESS_KEY"])
        world.now += timedelta(hours=1)
        results.append(world.converge())
    assert any("written to Secret" in r.getMessage() for r in caplog.records)
    printed = caplog.text + repr(results) + "".join(a.summary + repr(a.params) for r in results
                                                    for a in r.applied)
    for secret in seen:
        assert secret and secret not in printed


def test_finalize_deletes_the_user_and_its_keys(clients: aws.Clients, unique: Callable[[str], str]) -> None:
    w = World(clients, unique("gone"), AccessKeySpec("s"))
    w.converge()
    w.spec = replace(w.spec, rotate_request="x")
    w.converge()
    assert len(w.aws_keys()) == 2
    outcome = finalize(clients, user(w.name, accessKey={}))
    assert [a.api for a in outcome.applied].count("DeleteAccessKey") == 2
    assert clients.iam.list_users()["Users"] == [] or w.name not in {
        u["UserName"] for u in clients.iam.list_users()["Users"]}


def test_plan_of_the_ci_user_example_shows_create_access_key_without_a_secret(
    moto_server: Any,
) -> None:
    """`rolekeeper plan examples/ci-user.yaml` on a fresh account (the group exists): the last
    call is CreateAccessKey with UserName only; the engine, given the same object, makes
    exactly the planned calls."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    with moto.running() as server, pytest.MonkeyPatch.context() as patch:
        for key, value in server.env.items():
            patch.setenv(key, value)
        boto3.client("iam", region_name="us-east-1").create_group(GroupName="deployers")
        done = subprocess.run(
            [str(Path(sys.executable).parent / "rolekeeper"), "plan", "examples/ci-user.yaml",
             "--format", "json", "--cluster-id", "c-test"],
            cwd=root, env=os.environ.copy(), capture_output=True, text=True, timeout=120,
            check=False)
        assert done.returncode in (0, 2), done.stderr
        [change] = json.loads(done.stdout)["changes"]
        assert change["action"] == "create"
        assert change["calls"][-1]["api"] == "CreateAccessKey"
        assert change["calls"][-1]["params"] == {"UserName": "team-a-ci-deployer"}
        assert "Secret" not in json.dumps(change["calls"][-1])
        text = subprocess.run(
            [str(Path(sys.executable).parent / "rolekeeper"), "plan", "examples/ci-user.yaml",
             "--cluster-id", "c-test"],
            cwd=root, env=os.environ.copy(), capture_output=True, text=True, timeout=120,
            check=False).stdout
        assert "CreateAccessKey" in text
        obj = yaml.safe_load((root / "examples" / "ci-user.yaml").read_text())
        desired = registry.parse({**obj, "metadata": {**obj["metadata"], "uid": "u1"}})
        clients = aws.connect(boto3.session.Session())
        outcome = reconcile(clients, desired.in_cluster("c-test"))
        assert outcome.ready
        assert [a.api for a in outcome.applied] == [c["api"] for c in change["calls"]]
