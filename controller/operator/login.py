"""Log in to Kubernetes as Kopf does, over a bounded pool of API connections.

Kopf's own session has no connection limit (`TCPConnector(limit=0)`): 1,000 objects created
at once each got their own TLS connection for their finalizer and status patches, each with its
buffers and handshake, growing the operator's memory with the burst. The same credentials Kopf
would find (the pod's ServiceAccount, else a kubeconfig; the higher priority wins, as in Kopf)
go into a session of at most `KopfSettings.api_connections` connections; requests beyond that
wait for a free one, within Kopf's request timeout. Watches hold one connection each, so the
limit must stay well above the number of watched resources (about ten).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import kopf

from controller.settings import Settings

# Long-lived watch streams (each kind, guardrails, accounts, namespaces, peering): never starve
# them, whatever the setting says.
MIN_CONNECTIONS = 16


async def login(
    settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any
) -> kopf.AiohttpSession | None:
    """Kopf's ServiceAccount/kubeconfig login, as a session with a connection limit."""
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
        connector=aiohttp.TCPConnector(
            limit=max(MIN_CONNECTIONS, config.kopf.api_connections),
            ssl=info.as_ssl_context(),
        ),
        headers=info.as_http_headers(),  # basic auth or the bearer token, as Kopf sends
        proxy=info.proxy_url,
        trust_env=info.trust_env,
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
