"""Resident memory and CPU time of one process, read from /proc (Linux only)."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
KIB_PER_MIB = 1024


@dataclass(frozen=True)
class Usage:
    """A sample: current RSS, lifetime peak RSS (VmHWM) and CPU seconds (user + system)."""

    rss_kib: int
    peak_kib: int
    cpu_seconds: float

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / KIB_PER_MIB

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / KIB_PER_MIB


def usage(pid: int) -> Usage:
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    # The command name may hold spaces or parentheses: the numeric fields start after the last ')'.
    after_comm = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(after_comm[11]), int(after_comm[12])  # fields 14 and 15 of proc(5)
    return Usage(
        rss_kib=int(fields["VmRSS"].split()[0]),
        peak_kib=int(fields["VmHWM"].split()[0]),
        cpu_seconds=(utime + stime) / TICKS_PER_SECOND,
    )


def machine() -> dict[str, str | int]:
    """What the figures were measured on, for the report."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count() or 0,
        "ram_mib": mem_kib // KIB_PER_MIB,
        "cpu_model": cpu,
        "kernel": os.uname().release,
    }


def open_sockets(pid: int) -> int:
    """Sockets the process holds (Kubernetes and AWS connections, listeners)."""
    count = 0
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):  # closed between listing and reading
            count += os.readlink(fd).startswith("socket:")
    return count


class SocketPeak:
    """Samples `open_sockets` on a thread while in a `with` block; `peak` is the largest seen."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SocketPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, open_sockets(self.pid))
            self._stop.wait(self.every)
