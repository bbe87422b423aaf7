"""A moto server process on 127.0.0.1 as the local AWS endpoint for tests, the demo and benchmarks.

boto3 reaches it over HTTP through its standard endpoint settings (`AWS_ENDPOINT_URL_IAM`,
`AWS_ENDPOINT_URL_STS`), exactly as the operator would reach real AWS; nothing is patched.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness.util import Timeout, free_port, until

ACCOUNT_ID = "123456789012"  # moto's default account


@dataclass
class MotoServer:
    """A running moto server; `env` points any boto3 process at it."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_IAM": self.url,
            "AWS_ENDPOINT_URL_STS": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def reset(self) -> None:
        """Forget every entity (AWS managed policies are loaded again)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=30).read()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start(
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    command: Callable[[int], list[str]] | None = None,
) -> MotoServer:
    """Start a moto server (by default `python -m moto.server`; `command(port)` gives another
    launcher's argv) and wait until it answers; the caller must `stop()` it."""
    port = port or free_port()
    log_path = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", **(extra_env or {})}
    argv = (
        command(port)
        if command
        else [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )
    server = MotoServer(port, process, log_path)
    atexit.register(server.stop)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log_path.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{server.url}/moto-api/", timeout=2).read()
            return True
        except OSError:
            return False

    try:
        until(answers, 60, "moto", every=0.2)
    except Timeout:
        server.stop()
        raise RuntimeError(f"moto server did not answer on {server.url} within 60 s") from None
    return server


@contextmanager
def running(extra_env: dict[str, str] | None = None) -> Iterator[MotoServer]:
    server = start(extra_env=extra_env)
    try:
        yield server
    finally:
        server.stop()
