"""Give freed heap memory back to the operating system after bursts of work.

A burst (the initial list of every object after a restart, a snapshot of a large account)
allocates far more than the operator keeps. Python frees it, but glibc's malloc holds on to the
freed pages in its heap, so the process's resident memory stays at the burst's high-water mark
for good. `trim` asks glibc to return what it holds free (`malloc_trim(0)`: a few milliseconds);
it is called after every drift sweep. A no-op where libc is not glibc.
"""

from __future__ import annotations

import ctypes
import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def trim() -> bool:
    """Return free heap pages to the OS; True when glibc released any."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    return bool(libc.malloc_trim(0))
