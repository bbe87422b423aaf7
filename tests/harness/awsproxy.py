"""A counting, fault-injecting HTTP proxy in front of the moto server (127.0.0.1 only).

Counts every IAM request by its `Action` independently of the operator (the operator's own
counters could be wrong in the same way as its code), and can answer a chosen share of requests
with real AWS-shaped failures: `Throttling` (400), `ServiceFailure` (500), 503, a connection
reset, or a slow response. Used by the e2e tests, the reliability suite and the benchmarks.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from tests.harness.util import free_port

FAULT_KINDS = ("throttle", "server-error", "unavailable", "reset", "slow")

THROTTLE_BODY = (
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
    "<Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    "<RequestId>fault-injected</RequestId></ErrorResponse>"
)
SERVICE_FAILURE_BODY = (
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Receiver</Type>'
    "<Code>ServiceFailure</Code><Message>Injected service failure</Message></Error>"
    "<RequestId>fault-injected</RequestId></ErrorResponse>"
)


@dataclass
class Faults:
    """What to inject: `rate` of matching requests fail with one of `kinds` (seeded)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("throttle",)
    until: float = float("inf")  # time.monotonic() after which no fault is injected
    slow_seconds: float = 2.0
    only_writes: bool = False
    seed: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng.seed(self.seed)


class AwsProxy:
    """Forward to `upstream`, count by Action, inject faults as configured."""

    def __init__(self, upstream_port: int, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.timeline: list[tuple[float, str]] = []  # (monotonic time, action) of every request
        self.faults = Faults()
        # Called with the Action after AWS answered it and before the client gets the answer;
        # returning True drops the answer (the client never sees it). Crash tests kill the
        # operator here: AWS has made the change, the operator never learns it.
        self.after_upstream: Callable[[str], bool] | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AwsProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, rate: float, kinds: tuple[str, ...] = ("throttle",), seconds: float | None = None,
               only_writes: bool = False, seed: int = 0) -> None:
        until = time.monotonic() + seconds if seconds else float("inf")
        self.faults = Faults(rate=rate, kinds=kinds, until=until, only_writes=only_writes, seed=seed)

    def clear_faults(self) -> None:
        self.faults = Faults()

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.injected.clear()
            self.timeline.clear()

    def count(self, writes_only: bool = False) -> int:
        with self._lock:
            return sum(n for action, n in self.calls.items()
                       if not writes_only or not action.startswith(("Get", "List")))

    def writes(self) -> dict[str, int]:
        with self._lock:
            return {a: n for a, n in self.calls.items() if not a.startswith(("Get", "List"))}

    def _record(self, action: str) -> None:
        with self._lock:
            self.calls[action] += 1
            self.timeline.append((time.monotonic(), action))

    def _choose_fault(self, action: str) -> str | None:
        faults = self.faults
        if faults.rate <= 0 or time.monotonic() > faults.until:
            return None
        if faults.only_writes and action.startswith(("Get", "List")):
            return None
        with self._lock:
            if faults.rng.random() >= faults.rate:
                return None
            kind = faults.rng.choice(faults.kinds)
            self.injected[kind] += 1
            return kind

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Without TCP_NODELAY a keep-alive client waits on delayed ACKs: ~18 calls/s.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._forward(self.rfile.read(length))

            def _forward(self, body: bytes) -> None:
                action = parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
                if self.command == "POST":
                    proxy._record(action)
                fault = proxy._choose_fault(action) if self.command == "POST" else None
                if fault == "reset":
                    # RST instead of FIN: the client sees "connection reset by peer".
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if fault == "throttle":
                    return self._reply(400, THROTTLE_BODY.encode())
                if fault == "server-error":
                    return self._reply(500, SERVICE_FAILURE_BODY.encode())
                if fault == "unavailable":
                    return self._reply(503, b"Service Unavailable")
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    # Host stays as the client sent it: it is part of the SigV4 signature, which
                    # moto checks when IAM authorization is enforced.
                    headers = dict(self.headers.items())
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    if fault == "slow":
                        # AWS applied the call at once; only its answer is slow. (Delaying the
                        # request instead let a killed operator's call land after its successor
                        # had read the account: a write from a dead process no real AWS makes.)
                        time.sleep(proxy.faults.slow_seconds)
                    hook = proxy.after_upstream
                    if self.command == "POST" and hook is not None and hook(action):
                        self.close_connection = True
                        return
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    upstream.close()

            def _reply(self, code: int, payload: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
