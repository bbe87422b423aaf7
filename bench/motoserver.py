"""A moto server whose backend handles one request at a time, for concurrent benchmark load.

moto's IAM backend is not thread-safe: under 16 concurrent clients `create_role` iterates the
roles dict while another thread inserts into it, and the server answers an HTML 500 that
botocore can neither parse nor retry (seen about once per 4,000 calls here). Real IAM never does
that, so a figure that includes it measures moto. Serialising the WSGI app costs little: moto
is CPU-bound under one GIL either way. Everything else is `moto.server`'s own setup.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.harness import moto as harness_moto
from tests.harness.moto import MotoServer


def serialised(app: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    """The WSGI app behind a lock; the body is produced inside it, so no state leaks out."""
    lock = threading.Lock()

    def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            result = app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    return handle


def serve(host: str, port: int) -> None:
    # Imported in the server process only: the parent never loads moto.
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialised(app), threaded=True, request_handler=MotoRequestHandler)


def start() -> MotoServer:
    """Start this server as a subprocess (managed policies loaded) and wait until it answers."""
    return harness_moto.start(
        command=lambda port: [sys.executable, "-m", "bench.motoserver", "--port", str(port)]
    )


@contextmanager
def running() -> Iterator[MotoServer]:
    server = start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.motoserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
