"""The account-wide IAM call budget against the moto server, through `connect(...)` as the
operator builds its clients.

Covers: 8 threads hammering IAM through one account's clients with a budget of R calls/s make
at most R x T + burst calls in T seconds of wall time (and a budget of 0 does not hold them
back: the bound is one the threads would break); every HTTP attempt spends the budget,
retries included — measured against the fault proxy: `before-sign` and `before-send` fire once
per attempt, `before-call` once per API call; a throttled wait does not stall an asyncio loop
whose calls run on a thread pool, as the operator's do; two AWS accounts (the operator's own
and an IAMAccount's assumed role, moto acting in each) have separate budgets, so draining one
does not slow the other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import Counter
from typing import Any

import boto3
import pytest

from controller.aws import accounts
from controller.aws import clients as aws
from controller.aws.budget import Budgets
from controller.settings import AWSSettings
from tests.harness import moto
from tests.harness.awsproxy import AwsProxy

pytestmark = pytest.mark.aws

THREADS = 8


def budgeted(rate: float, burst: int) -> AWSSettings:
    return AWSSettings(max_calls_per_second=rate, call_burst=burst)


def hammer(clients: aws.Clients, seconds: float) -> tuple[list[float], float]:
    """THREADS threads calling IAM back to back for `seconds`; returns when each call came back
    (seconds since the start) and the start's monotonic time."""
    start = time.monotonic()
    done: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        while time.monotonic() - start < seconds:
            clients.iam.list_account_aliases()
            with lock:
                done.append(time.monotonic() - start)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return done, start


def test_threads_make_at_most_rate_times_seconds_plus_burst_calls(
    moto_server: moto.MotoServer,
) -> None:
    rate, burst, seconds = 5.0, 5, 4.0
    clients = aws.connect(boto3.session.Session(), budgeted(rate, burst), Budgets())
    assert clients.budget is not None
    done, _ = hammer(clients, seconds)
    within = [t for t in done if t <= seconds]
    # Every call that came back within T took a token in [connect, T]: at most burst + R x T.
    assert len(within) <= burst + rate * seconds, len(within)
    assert len(within) >= rate * seconds / 2  # the budget lets calls through, not a stall
    stats = clients.budget.stats()
    assert stats.waits > 0 and stats.waited_seconds > 1.0
    assert stats.calls == clients.counter.total() + stats.waiting  # a token per attempt sent


def test_without_a_budget_the_same_threads_break_that_bound(moto_server: moto.MotoServer) -> None:
    """The control: the bound above is not one the threads keep by themselves."""
    rate, burst, seconds = 5.0, 5, 2.0
    clients = aws.connect(boto3.session.Session(), budgeted(0, burst), Budgets())
    assert clients.budget is None
    done, _ = hammer(clients, seconds)
    assert len([t for t in done if t <= seconds]) > burst + rate * seconds


@pytest.fixture
def proxy(moto_server: moto.MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    found = AwsProxy(moto_server.port).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", found.url)
    yield found
    found.stop()


def test_every_attempt_spends_the_budget_retries_included(proxy: AwsProxy) -> None:
    clients = aws.connect(boto3.session.Session(), budgeted(1000, 1000), Budgets())
    assert clients.budget is not None
    fired: Counter[str] = Counter()
    for event in ("before-call", "before-sign", "before-send"):
        clients.iam.meta.events.register(
            f"{event}.iam", lambda _event=event, **_: fired.update([_event])
        )
    proxy.inject(0.3, kinds=("server-error",), seed=19)
    calls = 30
    for _ in range(calls):
        clients.iam.list_account_aliases()
    attempts = proxy.count()
    assert attempts > calls  # faults were retried
    assert fired["before-call"] == calls  # once per API call: would let retries through
    assert fired["before-sign"] == fired["before-send"] == attempts  # once per attempt
    assert clients.budget.stats().calls == attempts


def test_a_throttled_wait_does_not_stall_the_event_loop(moto_server: moto.MotoServer) -> None:
    # One call a second: a wait that blocked the loop (or held the GIL) would stop the ticker
    # for a whole second or more.
    clients = aws.connect(boto3.session.Session(), budgeted(1, 1), Budgets())
    assert clients.budget is not None
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=THREADS)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        calls = [loop.run_in_executor(executor, clients.iam.list_account_aliases) for _ in range(6)]
        await asyncio.gather(*calls)
        await asyncio.sleep(0.05)  # the ticker's next tick records a gap spanning any block
        ticker.cancel()
        return max(gaps)

    try:
        worst_gap = asyncio.run(main())
    finally:
        executor.shutdown()
    stats = clients.budget.stats()
    assert stats.waited_seconds > 10.0  # 5 calls queued behind a 1/s budget: 1 + 2 + ... + 5 s
    assert worst_gap < 0.5, worst_gap  # the loop kept ticking every 10 ms or so meanwhile


def test_two_accounts_have_separate_budgets(moto_server: moto.MotoServer) -> None:
    settings = budgeted(2, 2)
    budgets = Budgets()
    session = boto3.session.Session()
    own = aws.connect(session, settings, budgets)
    other_account = accounts.Account(
        name="budget-test",
        account_id="111111111111",
        role_arn="arn:aws:iam::111111111111:role/rolekeeper-budget",
        namespaces=frozenset({"budget-test"}),
    )
    pool = accounts.Accounts(
        accounts.sts_assume(session, settings),
        connect_with=lambda s: aws.connect(s, settings, budgets),
    )
    other = pool.clients(other_account)
    assert other.account_id == "111111111111"
    assert own.budget is not None and other.budget is not None
    assert own.budget is not other.budget
    for _ in range(2):  # the own account's burst
        own.iam.list_account_aliases()
    # Six more own-account calls queue for about three seconds in the background...
    busy = threading.Thread(target=lambda: [own.iam.list_account_aliases() for _ in range(6)])
    busy.start()
    time.sleep(0.3)
    started = time.monotonic()
    for _ in range(2):  # ...while the other account's burst goes at once
        other.iam.list_account_aliases()
    elapsed = time.monotonic() - started
    busy.join(timeout=30)
    assert other.budget.stats().waits == 0
    assert elapsed < 1.0, elapsed
    assert own.budget.stats().waits >= 5 and own.budget.stats().waited_seconds > 2.0
    assert {s.account_id for s in budgets.stats()} == {moto.ACCOUNT_ID, "111111111111"}
