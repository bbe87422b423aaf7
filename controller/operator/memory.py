"""glibc's allocator, tuned for a long-running threaded process: few arenas, freed pages returned.

`limit_malloc_arenas` runs once, before any thread starts. `trim` runs after every drift sweep:
a burst (the initial list of every object after a restart, a snapshot of a large account)
allocates far more than the operator keeps; Python frees it, but glibc's malloc holds on to the
freed pages in its heap, so resident memory would stay at the burst's high-water mark for good.
`malloc_trim(0)` gives back what it holds free (a few milliseconds). Both are no-ops where libc
is not glibc.
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


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas before any thread starts.

    glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core);
    the boto3 worker threads then keep freed memory spread over many arenas. Two arenas cut the
    operator's resident memory at 1,000 objects by about 20 MiB (docs/performance.md) at no
    measurable cost. Same as MALLOC_ARENA_MAX=2.
    """
    libc = _libc()
    if libc is None:
        return False
    m_arena_max = -8  # from glibc's malloc.h
    return bool(libc.mallopt(m_arena_max, arenas))


def trim() -> bool:
    """Return free heap pages to the OS; True when glibc released any."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    return bool(libc.malloc_trim(0))
