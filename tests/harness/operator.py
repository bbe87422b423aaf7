"""Run the operator as users do: a separate `rolekeeper run` process, stopped by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.harness.util import Timeout, free_port, until

ROLEKEEPER = [sys.executable, "-m", "controller.cli"]


class Operator:
    """One `rolekeeper run` process; `restart()` keeps its arguments and environment."""

    def __init__(
        self,
        kubeconfig: Path,
        aws_env: Mapping[str, str],
        namespaces: Sequence[str] = (),
        drift_interval: float = 5.0,
        extra_args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.liveness_port = free_port()
        self.metrics_port = free_port()
        scope = [arg for ns in namespaces for arg in ("--namespace", ns)] or ["--all-namespaces"]
        self.argv = [
            *ROLEKEEPER, "run", *scope, "--standalone",
            "--drift-interval", str(drift_interval),
            "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz",
            "--metrics-port", str(self.metrics_port),
            *extra_args,
        ]
        self.env = {
            **os.environ, **aws_env, "KUBECONFIG": str(kubeconfig), **(extra_env or {}),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = Path(tempfile.mkstemp(prefix="rolekeeper-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> Operator:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2], start_new_session=True,
            )
        self.starts += 1
        if wait:
            self.wait_live()
        return self

    def wait_live(self, timeout: float = 60.0) -> None:
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"

        def live() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"operator exited early:\n{self.log_tail()}")
            try:
                urllib.request.urlopen(url, timeout=2).read()
                return True
            except OSError:
                return False

        try:
            until(live, timeout, "the operator's /healthz", every=0.2)
        except Timeout:
            raise RuntimeError(f"operator not live after {timeout}s:\n{self.log_tail()}") from None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Send `sig` to the process group and wait; SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        return urllib.request.urlopen(url, timeout=5).read().decode()

    def rss_kib(self) -> int:
        """Resident memory of the operator process (VmRSS), for benchmarks."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def __enter__(self) -> Operator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
