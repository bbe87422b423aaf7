"""The two primitives every tier and the benchmark share, written once: a free TCP port and a
poll loop. Nothing here imports the controller, so the harness can use it too."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    """`until` ran out of time. An AssertionError, so pytest reports it as a failed check."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(
    probe: Callable[[], T | None],
    timeout: float,
    what: str | Callable[[], str] = "the condition",
    every: float = 0.5,
) -> T:
    """Call `probe` every `every` seconds until it returns something truthy, and return that.

    The probe runs at least once, and never after `timeout` seconds have passed (the last sleep
    is cut short so one probe runs right at the deadline). On timeout raises `Timeout` naming
    `what` (a callable is called only then, for costly diagnostics) and the probe's last answer.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        left = deadline - time.monotonic()
        if left <= 0:
            described = what() if callable(what) else what
            raise Timeout(f"timed out after {timeout:g}s waiting for {described} (last: {last!r})")
        time.sleep(min(every, left))


def most_in_window(times: Iterable[float], window: float) -> int:
    """The most of `times` (seconds) that fall in any `window`-second sliding window."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while ordered[start] < moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best
