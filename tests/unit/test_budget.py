"""The account-wide IAM call budget, without AWS: the pure token bucket with an injected clock,
the blocking wrapper with a fake clock and sleep, the registry, the metrics and the CLI flags.

Covers: a full bucket lets `burst` calls go at once and then one per `1 / rate`; over any
window no more than burst + rate x T calls go; slots are FIFO (arrival order = send order);
fairness between simulated objects (one flooding, one occasional: the occasional one waits at
most its own slot plus one per ticket ahead of it; N always-busy objects each get 1/N of the rate; the
contrast: a caller holding k tickets at once gets k shares, which is why Rolekeeper's one
ticket per object matters); a clock stepping back is harmless; bad rates refused; the blocking
wrapper sleeps exactly the slot's delay and counts it; one budget per account and
configuration, none for 0; the collector's series; the CLI's validation of the flags.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from controller.aws.budget import Budget, Budgets
from controller.cli import main
from controller.core.budget import TokenBucket
from controller.operator.metrics import BudgetCollector
from controller.settings import AWSSettings


def test_a_full_bucket_sends_the_burst_at_once_then_one_call_per_slot() -> None:
    bucket = TokenBucket.full(rate=4.0, burst=3.0, now=100.0)
    assert [bucket.reserve(100.0) for _ in range(3)] == [100.0, 100.0, 100.0]
    assert [bucket.reserve(100.0) for _ in range(3)] == [100.25, 100.5, 100.75]
    assert bucket.available(100.0) == -3.0  # three slots promised
    assert bucket.available(101.5) == 3.0  # refilled, capped at the burst


def test_tokens_refill_at_the_rate_up_to_the_burst() -> None:
    bucket = TokenBucket.full(rate=2.0, burst=4.0, now=0.0)
    for _ in range(4):
        bucket.reserve(0.0)
    assert bucket.available(0.5) == 1.0
    assert bucket.reserve(0.5) == 0.5  # the token that came back: no wait
    assert bucket.reserve(0.5) == 1.0  # the next one: half a second later
    assert bucket.available(100.0) == 4.0


def _sent_in_window(rate: float, burst: float, start: float, seconds: float, asks: int) -> int:
    """How many of `asks` calls, all asking at `start` on a bucket full at 0, are sent within
    `seconds` of it."""
    bucket = TokenBucket.full(rate, burst, now=0.0)
    slots = [bucket.reserve(start) for _ in range(asks)]
    return sum(1 for slot in slots if slot <= start + seconds)


@pytest.mark.parametrize(("rate", "burst", "seconds"), [(10, 20, 3.0), (2, 1, 5.0), (0.5, 5, 8.0)])
def test_no_window_sends_more_than_burst_plus_rate_times_its_length(
    rate: float, burst: float, seconds: float
) -> None:
    sent = _sent_in_window(rate, burst, start=50.0, seconds=seconds, asks=10_000)
    assert sent == int(burst + rate * seconds)  # saturated: exactly the bound, never more
    # Asking in a trickle instead changes nothing: each window holds at most the same bound.
    bucket = TokenBucket.full(rate, burst, now=0.0)
    slots = [bucket.reserve(t / 100) for t in range(5_000)]  # 100 asks a second for 50 s
    for begin in (0.0, 7.3, 20.0, 41.9):
        inside = [s for s in slots if begin <= s <= begin + seconds]
        assert len(inside) <= burst + rate * seconds + 1e-9


def test_slots_follow_arrival_order() -> None:
    bucket = TokenBucket.full(rate=3.0, burst=2.0, now=0.0)
    arrivals = [0.0, 0.0, 0.0, 0.1, 0.1, 0.2, 1.5, 1.5, 1.6, 4.0]
    slots = [bucket.reserve(t) for t in arrivals]
    assert slots == sorted(slots)
    assert all(slot >= t for slot, t in zip(slots, arrivals, strict=True))
    queued = [b - a for a, b in itertools.pairwise(slots[2:6])]
    assert queued == pytest.approx([1 / 3] * 3)  # in debt: exactly one slot apart


def test_a_clock_that_steps_back_does_not_mint_tokens() -> None:
    bucket = TokenBucket.full(rate=1.0, burst=1.0, now=10.0)
    assert bucket.reserve(10.0) == 10.0
    assert bucket.reserve(5.0) == 11.0  # treated as 10.0: the next slot, not a free token


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(0, 5), (-1, 5), (float("nan"), 5), (float("inf"), 5), (1, 0.5), (1, float("nan"))],
)
def test_a_bucket_refuses_rates_and_bursts_it_cannot_keep(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match=r"(rate|burst) must be"):
        TokenBucket.full(rate, burst, now=0.0)


# --- fairness between objects, simulated on the bucket's own clock ----------------------------


def simulate(
    bucket: TokenBucket,
    callers: dict[str, tuple[int, float]],
    until: float,
    latency: float = 0.05,
) -> tuple[Counter[str], dict[str, list[float]]]:
    """Callers named by key, each (tickets held at once, pause before asking again). A caller
    asks, waits for its slot, spends `latency` in the call, pauses, asks again. Returns calls
    sent per caller before `until` and each caller's waits."""
    sent: Counter[str] = Counter()
    waits: dict[str, list[float]] = {name: [] for name in callers}
    order = itertools.count()
    asks: list[tuple[float, int, str]] = []
    for name, (tickets, _) in sorted(callers.items()):
        for _ in range(tickets):
            heapq.heappush(asks, (0.0, next(order), name))
    while asks:
        now, _, name = heapq.heappop(asks)
        if now >= until:
            break
        slot = bucket.reserve(now)
        if slot < until:
            sent[name] += 1
            waits[name].append(slot - now)
        heapq.heappush(asks, (slot + latency + callers[name][1], next(order), name))
    return sent, waits


def test_an_object_retrying_without_pause_does_not_starve_an_occasional_one() -> None:
    rate = 5.0
    bucket = TokenBucket.full(rate, burst=10.0, now=0.0)
    # "storm" retries the instant each call returns; "healthy" reconciles once a second.
    sent, waits = simulate(bucket, {"storm": (1, 0.0), "healthy": (1, 1.0)}, until=60.0)
    # The healthy object waits at most two slots: the storm's one ticket ahead of it, then its
    # own (the storm's ticket was taken after the previous slot, so it may be just ahead).
    assert max(waits["healthy"]) <= 2 / rate + 1e-9
    # So its cycle is at most pause + latency + two slots, however hard the storm pushes.
    assert sent["healthy"] >= int(60 / (1.0 + 0.05 + 2 / rate))
    assert sent["storm"] + sent["healthy"] <= 10 + rate * 60  # the account's bound holds


@pytest.mark.parametrize("objects", [2, 5, 16])
def test_busy_objects_each_get_an_equal_share_of_the_rate(objects: int) -> None:
    rate = 10.0
    bucket = TokenBucket.full(rate, burst=20.0, now=0.0)
    callers = {f"object-{i}": (1, 0.0) for i in range(objects)}
    sent, _ = simulate(bucket, callers, until=120.0)
    share = (20 + rate * 120) / objects
    for name in callers:
        assert sent[name] == pytest.approx(share, abs=2), (name, sent)


def test_a_caller_holding_several_tickets_gets_several_shares() -> None:
    """The limit of FIFO: fairness is per ticket. A storm with 4 calls in flight gets 4/5 of the
    rate. Rolekeeper's objects hold one ticket each (one handler per object, one call at a
    time), so per-object round-robin would change nothing there; this is the case it would."""
    rate = 10.0
    bucket = TokenBucket.full(rate, burst=1.0, now=0.0)
    sent, waits = simulate(bucket, {"storm": (4, 0.0), "healthy": (1, 0.0)}, until=100.0)
    assert sent["storm"] == pytest.approx(4 * sent["healthy"], rel=0.02)
    assert max(waits["healthy"]) <= (4 + 1) / rate + 1e-9  # the storm's 4 tickets, then its own


# --- the blocking wrapper, with a fake clock and sleep ---------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_wrapper_sleeps_until_the_slot_and_counts_the_wait() -> None:
    fake = FakeTime()
    budget = Budget("123456789012", rate=2.0, burst=2.0, clock=fake.clock, sleep=fake.sleep)
    waited = [budget.acquire() for _ in range(5)]
    assert waited == [0.0, 0.0, 0.5, 0.5, 0.5]  # each sleeper wakes at its slot, then the next
    assert fake.slept == [0.5, 0.5, 0.5]
    stats = budget.stats()
    assert (stats.calls, stats.waits, stats.waiting) == (5, 3, 0)
    assert stats.waited_seconds == pytest.approx(1.5)
    assert stats.tokens == 0.0
    assert (stats.rate, stats.burst, stats.account_id) == (2.0, 2.0, "123456789012")


def test_a_waiting_call_is_counted_while_it_sleeps() -> None:
    fake = FakeTime()
    seen: list[int] = []
    budget: Budget

    def sleep(seconds: float) -> None:
        seen.append(budget.stats().waiting)
        fake.sleep(seconds)

    budget = Budget("123456789012", rate=1.0, burst=1.0, clock=fake.clock, sleep=sleep)
    budget.acquire()
    budget.acquire()
    assert seen == [1]
    assert budget.stats().waiting == 0


def _settings(rate: float, burst: int = 5) -> AWSSettings:
    return AWSSettings(max_calls_per_second=rate, call_burst=burst)


def test_one_budget_per_account_and_none_when_unlimited() -> None:
    budgets = Budgets()
    own = budgets.get("123456789012", _settings(3))
    assert own is not None and budgets.get("123456789012", _settings(3)) is own
    other = budgets.get("111111111111", _settings(3))
    assert other is not None and other is not own
    assert budgets.get("123456789012", _settings(0)) is None  # 0 = unlimited: no hook at all
    assert [s.account_id for s in budgets.stats()] == ["111111111111", "123456789012"]


def test_the_collector_reports_each_account_by_id_only() -> None:
    fake = FakeTime()
    budgets = Budgets(clock=fake.clock, sleep=fake.sleep)
    own = budgets.get("123456789012", _settings(2, burst=1))
    assert own is not None
    for _ in range(3):
        own.acquire()
    registry = CollectorRegistry()
    registry.register(BudgetCollector(budgets.stats))
    text = generate_latest(registry).decode()
    assert 'rolekeeper_aws_budget_wait_seconds_total{account="123456789012"} 1.0' in text
    assert 'rolekeeper_aws_budget_waits_total{account="123456789012"} 2.0' in text
    assert 'rolekeeper_aws_budget_waiting_calls{account="123456789012"} 0.0' in text
    assert 'rolekeeper_aws_budget_tokens{account="123456789012"} 0.0' in text
    assert 'rolekeeper_aws_budget_calls_per_second{account="123456789012"} 2.0' in text


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--aws-max-calls-per-second", "-1", "0 (unlimited) or a number"),
        ("--aws-max-calls-per-second", "nan", "0 (unlimited) or a number"),
        ("--aws-max-calls-per-second", "inf", "0 (unlimited) or a number"),
        ("--aws-max-calls-per-second", "0.001", "from 0.01"),
        ("--aws-max-calls-per-second", "ten", "0 (unlimited) or a number"),
        ("--aws-call-burst", "0", "1 or more"),
        ("--aws-call-burst", "2.5", "1 or more"),
    ],
)
def test_the_run_flags_refuse_what_the_budget_cannot_keep(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_run_documents_the_budget_flags_with_the_settings_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    defaults = AWSSettings()
    assert f"default {defaults.max_calls_per_second:g}; 0 = unlimited" in out
    assert f"(default {defaults.call_burst})" in out
