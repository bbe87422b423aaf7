"""One AWS call at a time: invoke an Action, read with paginators, and classify what AWS says.

Everything boto3 raises leaves this module as an `AWSError` of the shared tree
(`core.errors`), so no layer above it ever catches a botocore exception.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from controller.core.actions import Action
from controller.core.errors import AWSError, RetryableError, classify

# Largest page IAM serves; fewer round trips for the same data.
PAGE = 1000
T = TypeVar("T")


def invoke(client: Any, action: Action) -> dict[str, Any]:
    """Run one Action; raises a classified AWSError."""
    method = getattr(client, xform_name(action.api))
    with classified(action.api):
        response: dict[str, Any] = method(**action.params)
    return response


@contextlib.contextmanager
def classified(operation: str) -> Iterator[None]:
    """Re-raise boto3 errors of the block as classified AWSErrors, so a throttled or failing
    read backs off like a failing write instead of escaping unnamed."""
    try:
        yield
    except ClientError as exc:
        raise _from_client_error(exc.operation_name or operation, exc) from exc
    except (BotoCoreError, ResponseParserError) as exc:
        # No usable answer at all (connection reset, timeout, a body that is not AWS's XML).
        raise RetryableError(operation, type(exc).__name__, str(exc)) from exc


def get_or_none(operation: str, call: Callable[[], T]) -> T | None:
    """`call()`, or None when AWS answers NoSuchEntity; other errors are classified."""
    try:
        with classified(operation):
            return call()
    except AWSError as exc:
        if exc.code == "NoSuchEntity":
            return None
        raise


def pages(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    """Every item of a paginated list call (dicts, or strings for name lists): truncation is
    silent in IAM, so nothing reads a list without a paginator."""
    items: list[Any] = []
    with classified(operation):
        paginator = client.get_paginator(operation)
        for page in paginator.paginate(**params, PaginationConfig={"PageSize": PAGE}):
            items.extend(page.get(key, []))
    return items


def document(doc: Mapping[str, Any] | str) -> Mapping[str, Any]:
    """A policy document as AWS returns it: botocore parses most to dicts; some sources give
    URL-encoded JSON strings."""
    if isinstance(doc, str):
        text = doc if doc.lstrip().startswith("{") else unquote(doc)
        parsed: Mapping[str, Any] = json.loads(text)
        return parsed
    return doc


def tags(raw: Any) -> dict[str, str]:
    """AWS's [{Key, Value}] list as a dict."""
    return {t["Key"]: t["Value"] for t in raw or ()}


def boundary(raw: Mapping[str, Any]) -> str | None:
    """The permissions boundary ARN of a GetRole/GetUser/GAAD entry, if any."""
    found = raw.get("PermissionsBoundary") or {}
    arn = found.get("PermissionsBoundaryArn")
    return str(arn) if arn else None


def _from_client_error(operation: str, exc: ClientError) -> AWSError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or str(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return classify(operation, code, message, status)
