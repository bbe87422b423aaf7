"""Log in to Kubernetes as Kopf does, with a bound on concurrent API requests.

Kopf's own session has no limit (`TCPConnector(limit=0)`): 1,000 objects created at once each
sent their finalizer and status patches at the same moment, each on a TLS connection of its
own, with its buffers and handshake, growing the operator's memory with the burst. The same
credentials Kopf would find (the pod's ServiceAccount, else a kubeconfig; the higher priority
wins, as in Kopf) go into a session where at most `KopfSettings.api_connections` requests run at
once; the rest wait their turn. Watches are not counted: each holds its connection for minutes,
and with `--namespace` patterns there is one per kind per matching namespace, so a plain
connection limit would let a growing number of namespaces starve every other request (the
first version did exactly that: measured, tests/e2e/test_operator.py).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import aiohttp
import kopf

from controller.settings import Settings


def bounded(limit: int) -> aiohttp.TraceConfig:
    """A trace that makes each request other than a watch wait for one of `limit` slots.
    The slot is taken when the request starts and given back when it ends or fails."""
    slots = asyncio.Semaphore(limit)
    trace = aiohttp.TraceConfig()

    async def start(_: aiohttp.ClientSession, context: SimpleNamespace,
                    params: aiohttp.TraceRequestStartParams) -> None:  # fmt: skip
        context.slot = params.url.query.get("watch") not in ("true", "1")
        if context.slot:
            await slots.acquire()

    async def end(_: aiohttp.ClientSession, context: SimpleNamespace, __: Any) -> None:
        if getattr(context, "slot", False):
            context.slot = False
            slots.release()

    trace.on_request_start.append(start)
    trace.on_request_end.append(end)
    trace.on_request_exception.append(end)
    return trace


async def login(
    settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any
) -> kopf.AiohttpSession | None:
    """Kopf's ServiceAccount/kubeconfig login, as a session with bounded concurrent requests."""
    found = [
        info
        for info in (
            kopf.login_with_service_account(settings=settings, **kwargs),
            kopf.login_with_kubeconfig(settings=settings, **kwargs),
        )
        if info is not None
    ]
    if not found:
        return None
    info = max(found, key=lambda candidate: candidate.priority)
    config: Settings = getattr(memo, "settings", None) or Settings()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),  # basic auth or the bearer token, as Kopf sends
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        trace_configs=[bounded(max(1, config.kopf.api_connections))],
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        priority=info.priority,
        aiohttp_session=session,
    )


def register() -> None:
    kopf.on.login()(login)
