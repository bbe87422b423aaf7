"""Kubernetes calls made outside Kopf's handlers, with Kopf's own authenticated session.

Secrets (access keys), ServiceAccount annotations and the status written by drift sweeps go
through `request`, so no second client or credential path exists: the credentials Kopf logged
in with, re-authenticated on 401. It uses Kopf's internal `kopf._cogs.clients.api` (the only
module that does): a Kopf upgrade that moves it fails tests/e2e/test_access_keys.py at once.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors

log = logging.getLogger(__name__)

# A request answered 403/5xx is retried twice, then reported (Kopf's default waits a minute in
# total, while the caller may hold an object's lock).
BACKOFFS = (1.0, 2.0)
_KOPF_SETTINGS = kopf.OperatorSettings()
FIELD_MANAGER = "rolekeeper"

NotFound = kopf_errors.APINotFoundError


class KubeError(Exception):
    """A Kubernetes API failure; the message names the call and the API server's status
    message (a Status object never holds the data of the object it refused)."""


async def request(method: str, url: str, payload: object = None, *, what: str,
                  merge: bool = False) -> Any:  # fmt: skip
    """One Kubernetes API call with Kopf's credentials; the decoded JSON answer. Errors become
    KubeError ("cannot <what>: <status> <message>"); 404 is raised as `NotFound` for the
    caller to decide."""
    headers = {"Content-Type": "application/merge-patch+json"} if merge else None
    query = f"?fieldManager={FIELD_MANAGER}" if method in ("post", "patch") else ""
    try:
        response = await kopf_api.request(
            method, url + query, payload=payload, headers=headers, settings=_KOPF_SETTINGS,
            logger=log, backoffs=BACKOFFS,
        )  # fmt: skip
        async with response:
            return await response.json()
    except kopf_errors.APINotFoundError:
        raise
    except kopf_errors.APIError as exc:
        raise KubeError(f"cannot {what}: {exc.status} {exc.message or ''}".rstrip()) from None
