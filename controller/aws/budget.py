"""The account-wide IAM call budget: one thread-safe token bucket per AWS account, spent by
every attempt (retries included) of every IAM client of that account.

IAM's rate limits are per account, global (every region) and shared with everyone else who
calls IAM there — people in the console, CI, other controllers, AWS services acting for the
account — and AWS does not publish them. `AWSSettings.max_calls_per_second` keeps Rolekeeper's
share bounded however many objects are created at once or fail and retry
(`controller.core.budget` explains the arithmetic and in which sense it is fair).

The wait hooks botocore's `before-sign` event, which fires once per HTTP attempt (botocore
re-creates and re-signs the request for each retry; `before-call` fires once per API call and
would let retries through unbudgeted; `tests/aws/test_budget.py` counts both). Waiting before
the signature keeps it (and refreshed credentials) fresh however long the queue. The wait is
`time.sleep` on the calling thread: the operator's calls run on its worker pool
(`Runtime.run`), so the asyncio loop never waits, and a sleeping thread does not hold the GIL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.core.budget import TokenBucket
from controller.settings import AWSSettings

__all__ = ["BUDGETS", "Budget", "BudgetStats", "Budgets"]


@dataclass(frozen=True)
class BudgetStats:
    """What a budget has done so far (for metrics and tests)."""

    account_id: str
    rate: float
    burst: float
    calls: int  # attempts that took a token
    waits: int  # of them, attempts that had to wait for their slot
    waited_seconds: float  # seconds those attempts slept, summed
    waiting: int  # attempts asleep right now
    tokens: float  # tokens now; negative: slots promised to waiting attempts


class Budget:
    """The budget of one AWS account: blocks each IAM attempt until its FIFO slot."""

    def __init__(
        self,
        account_id: str,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.account_id = account_id
        self._clock = clock
        self._sleep = sleep
        self._bucket = TokenBucket.full(rate, burst, clock())
        self._lock = threading.Lock()
        self._calls = 0
        self._waits = 0
        self._waited = 0.0
        self._waiting = 0

    def acquire(self) -> float:
        """Wait for this attempt's slot; return the seconds waited."""
        with self._lock:  # the ticket is taken under the lock: arrival order is slot order
            now = self._clock()
            delay = self._bucket.reserve(now) - now
            self._calls += 1
            if delay <= 0:
                return 0.0
            self._waits += 1
            self._waiting += 1
        try:
            self._sleep(delay)
        finally:
            with self._lock:
                self._waiting -= 1
                self._waited += delay
        return delay

    def attach(self, client: Any) -> None:
        """Make every attempt of an IAM `client` spend this budget (once, however often
        attached)."""
        client.meta.events.register(
            "before-sign.iam", self._before_sign, unique_id=f"rolekeeper-budget-{id(client)}"
        )

    def _before_sign(self, **_: Any) -> None:
        self.acquire()  # returns None: botocore goes on to sign and send

    def stats(self) -> BudgetStats:
        with self._lock:
            return BudgetStats(
                account_id=self.account_id,
                rate=self._bucket.rate,
                burst=self._bucket.burst,
                calls=self._calls,
                waits=self._waits,
                waited_seconds=self._waited,
                waiting=self._waiting,
                tokens=self._bucket.available(self._clock()),
            )


class Budgets:
    """One `Budget` per AWS account id (and configuration), shared by every client of that
    account in the process: the operator's own and each IAMAccount's assumed-role clients."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._budgets: dict[tuple[str, float, float], Budget] = {}

    def get(self, account_id: str, settings: AWSSettings) -> Budget | None:
        """The account's budget under `settings`; None when they set no limit (0)."""
        rate = settings.max_calls_per_second
        if rate <= 0:
            return None
        # The operator has one configuration; keying on it too keeps a caller that asks for
        # another (a test, a one-off command in the same process) from resizing a live budget.
        key = (account_id, float(rate), float(settings.call_burst))
        with self._lock:
            found = self._budgets.get(key)
            if found is None:
                found = self._budgets[key] = Budget(
                    account_id, rate, settings.call_burst, self._clock, self._sleep
                )
            return found

    def stats(self) -> list[BudgetStats]:
        with self._lock:
            budgets = list(self._budgets.values())
        return sorted((b.stats() for b in budgets), key=lambda s: (s.account_id, s.rate))


BUDGETS = Budgets()
"""The process's budgets: `clients.connect` draws from these unless given others."""
