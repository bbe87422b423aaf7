"""The account-wide IAM call budget's arithmetic: a token bucket that hands out FIFO slots.

Pure and deterministic: the caller passes the time (`now`, seconds on any monotonic clock), so
tests drive it with a fake clock; `controller.aws.budget` adds the lock, the clock and the sleep.

A bucket holds at most `burst` tokens and gains `rate` tokens a second. Each call takes one.
Instead of making callers poll until a token appears, `reserve` hands every caller a *slot*:
the time it may send. Tokens may go negative — a debt that the slots already promised — so
the n-th caller in a queue goes `n / rate` seconds after the bucket ran dry.

**Fairness, precisely:** slots are given in the order `reserve` is called (a ticket queue),
and every slot is `1 / rate` after the previous one while there is a queue. A caller therefore
waits for at most the calls that asked before it, never for calls that ask later; with N
callers each asking again only after their previous call was sent, each gets 1/N of the rate,
however fast any of them asks. That is fairness *across objects* for Rolekeeper because an
object's calls are sequential: Kopf runs one handler per object at a time and a handler makes
one call at a time, so an object in a retry storm holds one ticket, not many (its drift check,
when it runs beside a change handler, makes two). Per-object round-robin would only matter if
one object could queue many calls at once; it cannot, and the worker pool
(`KopfSettings.workers`) bounds the queue to about one ticket per worker, so the longest wait
is about `workers / rate` seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TokenBucket"]


@dataclass
class TokenBucket:
    """Tokens at `updated` (negative: slots already promised), refilled at `rate` per second
    up to `burst`."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        """A bucket that starts with `burst` tokens: a quiet operator may send a burst at once."""
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of calls per second, got {rate!r}")
        if not (math.isfinite(burst) and burst >= 1):
            raise ValueError(f"burst must be at least 1 call, got {burst!r}")
        return cls(rate=rate, burst=burst, tokens=burst, updated=now)

    def available(self, now: float) -> float:
        """Tokens at `now` without taking one (negative: calls queued for slots)."""
        now = max(now, self.updated)
        return min(self.burst, self.tokens + (now - self.updated) * self.rate)

    def reserve(self, now: float) -> float:
        """Take one token for a call asking at `now`; return the time it may be sent (>= now).

        Successive reservations get non-decreasing times (FIFO), `1 / rate` apart once the
        bucket is in debt. A clock that steps back is treated as standing still.
        """
        now = max(now, self.updated)
        self.tokens = self.available(now) - 1
        self.updated = now
        if self.tokens >= 0:
            return now
        return now + -self.tokens / self.rate
