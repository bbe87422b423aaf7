"""CloudTrail's IAM events as EventBridge delivers them: which IAM entities one API call touched.

Pure: a message body in, an `Event` out, or `EventError` (the only exception this module
raises, whatever the input). The shape read is EventBridge's envelope (`source: aws.iam`,
`detail-type: AWS API Call via CloudTrail`) around a CloudTrail record (`detail`: eventName,
userIdentity, requestParameters, errorCode, ...), as AWS documents both.

Which request parameters identify an entity is not decided here: the caller passes the keys
(`roleName`, `userName`, `policyArn`, ...) each kind declares (`Kind.cloudtrail_keys`,
`kinds.registry.CLOUDTRAIL_KEYS`). This module knows only IAM's own grammar: an `...Arn`
parameter names an entity by ARN (`policyArn` -> `policy/<path>/<name>`), and a few calls name
an entity they merely use (AttachRolePolicy's policyArn is attached, not changed).

Safety: requestParameters carry policy documents. Nothing here keeps, logs or quotes them: an
`Event` holds names and ARNs only, and `EventError` messages never quote the document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.bounds import Bounds, BoundsError, check

__all__ = [
    "MAX_BYTES",
    "Event",
    "EventError",
    "Touched",
    "made_by",
    "parse",
    "principal",
    "queue_parts",
]

# EventBridge's largest event; an SQS message from a rule is never bigger. (SQS itself now takes
# up to 1 MiB, so a message over this size was not written by EventBridge.)
MAX_BYTES = 256 * 1024
SOURCE = "aws.iam"
DETAIL_TYPE = "AWS API Call via CloudTrail"
EVENT_SOURCE = "iam.amazonaws.com"
# A real record is about 6 levels deep (detail.userIdentity.sessionContext.sessionIssuer.arn).
BOUNDS = Bounds(max_depth=16, max_items=1_000, max_nodes=20_000, max_string=MAX_BYTES)
MAX_ARN = 2048  # IAM's limit on an ARN parameter

# Parameters that name what a call uses rather than what it changes. Attaching a policy changes
# the role, user or group; the policy's document, versions and tags stay as they were.
_USES: Mapping[str, frozenset[str]] = {
    "policyArn": frozenset(
        f"{verb}{holder}Policy"
        for verb in ("Attach", "Detach")
        for holder in ("Role", "User", "Group")
    ),
}
_ACCOUNT = re.compile(r"\d{12}")
_EVENT_NAME = re.compile(r"[A-Za-z0-9]{1,128}")
_EVENT_ID = re.compile(r"[\w.:-]{1,128}", re.ASCII)
_IAM_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
_ARN = re.compile(r"arn:(aws[\w-]*):(iam|sts)::(\d{12}|aws)?:(.+)", re.ASCII)
# An SQS queue URL: https://sqs.<region>.amazonaws.com[.cn]/<account>/<name> (or the legacy
# <region>.queue.amazonaws.com host; any host, e.g. a local endpoint, names no region).
_QUEUE_URL = re.compile(r"https?://([^/]+)/(\d{12})/([\w-]{1,80}(?:\.fifo)?)/?", re.ASCII)
_QUEUE_HOST = re.compile(r"(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?")


class EventError(ValueError):
    """A message that is not an IAM CloudTrail event Rolekeeper can read. The message says what
    is wrong and where, never quoting the document (it may hold policies)."""


@dataclass(frozen=True)
class Touched:
    """One IAM entity a call touched, named by the request parameter that identifies it."""

    account_id: str  # the account the call was made in (recipientAccountId)
    actor_arn: str  # userIdentity.arn: who made the call ("" for AWS services)
    issuer_arn: str  # the role behind an assumed-role session, else `actor_arn`
    event_name: str  # the IAM API: "PutRolePolicy"
    resource_type: str  # the request parameter naming it: "roleName", "policyArn"
    name: str  # the entity's IAM name (an ARN parameter gives the ARN's last path segment)


@dataclass(frozen=True)
class Event:
    """One CloudTrail record of an IAM call, reduced to who did what to which entities."""

    event_id: str
    event_name: str
    account_id: str
    actor_arn: str
    issuer_arn: str
    failed: bool  # errorCode set: the call was refused and changed nothing
    read_only: bool
    touched: tuple[Touched, ...]  # empty when failed or read-only


def parse(body: str | bytes, keys: Collection[str]) -> Event:
    """The IAM call an EventBridge message describes; `keys` are the request parameters that
    identify an entity Rolekeeper manages. Raises EventError for anything else."""
    size = len(body) if isinstance(body, bytes) else len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise EventError(f"{size:,} bytes exceed the limit {MAX_BYTES:,} (EventBridge's largest)")
    try:
        document = json.loads(body)
    except RecursionError:
        raise EventError("not JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, an integer of thousands of digits
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise EventError(f"not JSON{where}") from None
    try:
        check(document, BOUNDS)
    except BoundsError as exc:
        raise EventError(str(exc)) from None
    if not isinstance(document, Mapping):
        raise EventError("not a JSON object: expected an EventBridge event")
    if document.get("source") != SOURCE:
        raise EventError(f"source: expected {SOURCE!r} (is the EventBridge rule's pattern right?)")
    if document.get("detail-type") != DETAIL_TYPE:
        raise EventError(f"detail-type: expected {DETAIL_TYPE!r}")
    detail = document.get("detail")
    if not isinstance(detail, Mapping):
        raise EventError("detail: expected a CloudTrail record (an object)")
    if detail.get("eventSource") != EVENT_SOURCE:
        raise EventError(f"detail.eventSource: expected {EVENT_SOURCE!r}")
    event_name = detail.get("eventName")
    if not isinstance(event_name, str) or not _EVENT_NAME.fullmatch(event_name):
        raise EventError("detail.eventName: expected an IAM API name")
    account_id = _account(document, detail)
    actor, issuer = _identity(detail.get("userIdentity"))
    error_code = detail.get("errorCode")
    failed = error_code not in (None, "")
    read_only = detail.get("readOnly") is True or event_name.startswith(("Get", "List"))
    parameters = detail.get("requestParameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise EventError("detail.requestParameters: expected an object or null")
    raw_id = detail.get("eventID")
    event_id = raw_id if isinstance(raw_id, str) and _EVENT_ID.fullmatch(raw_id) else ""
    touched: tuple[Touched, ...] = ()
    if not failed and not read_only and parameters:
        touched = tuple(
            Touched(account_id, actor, issuer, event_name, key, name)
            for key, name in _names(parameters, keys, event_name, account_id)
        )
    return Event(event_id, event_name, account_id, actor, issuer, failed, read_only, touched)


def principal(arn: str) -> tuple[str, str, str] | None:
    """Who an ARN stands for, as (type, account, name): an assumed-role session and its role
    are the same principal (`assumed-role/R/session` and `role/path/R` give ("role", acct, "R"));
    a user is its name whatever its path. None for what is not an IAM/STS principal ARN."""
    found = _ARN.fullmatch(arn) if len(arn) <= MAX_ARN else None
    if found is None or not found.group(3) or found.group(3) == "aws":
        return None
    service, account, resource = found.group(2), found.group(3), found.group(4)
    if resource == "root":
        return ("root", account, "")
    head, _, rest = resource.partition("/")
    if not rest:
        return None
    if service == "sts" and head == "assumed-role":
        return ("role", account, rest.split("/", 1)[0])
    if service == "iam" and head in ("role", "user"):
        return (head, account, rest.rsplit("/", 1)[-1])
    return (head, account, rest)


def queue_parts(url: str) -> tuple[str, str, str] | None:
    """(region, account, name) of the SQS queue an EventBridge rule writes to, from its URL;
    region "" when the host names none (a local endpoint). None for anything else."""
    found = _QUEUE_URL.fullmatch(url)
    if found is None:
        return None
    host = _QUEUE_HOST.fullmatch(found.group(1))
    region = (host.group(1) or host.group(2)) if host else ""
    return region, found.group(2), found.group(3)


def made_by(event: Event, identities: Iterable[str]) -> bool:
    """Whether the call was made by one of `identities` (the operator's own caller ARNs). The
    event's issuer is compared, so any session of the operator's role counts as the operator."""
    who = principal(event.issuer_arn or event.actor_arn)
    return who is not None and any(principal(arn) == who for arn in identities)


def _account(document: Mapping[str, Any], detail: Mapping[str, Any]) -> str:
    """The account the call acted in: the record's recipientAccountId, else the envelope's."""
    for value in (detail.get("recipientAccountId"), document.get("account")):
        if isinstance(value, str) and _ACCOUNT.fullmatch(value):
            return value
    raise EventError("account: expected a 12-digit account id (detail.recipientAccountId)")


def _identity(identity: object) -> tuple[str, str]:
    """(actor ARN, issuer ARN) of userIdentity; "" where the record has none (AWS services)."""
    if identity is None:
        return "", ""
    if not isinstance(identity, Mapping):
        raise EventError("detail.userIdentity: expected an object")
    actor = _arn(identity.get("arn"), "detail.userIdentity.arn")
    context = identity.get("sessionContext")
    issuer_arn = ""
    if isinstance(context, Mapping):
        issuer = context.get("sessionIssuer")
        if isinstance(issuer, Mapping):
            issuer_arn = _arn(
                issuer.get("arn"), "detail.userIdentity.sessionContext.sessionIssuer.arn"
            )
    return actor, issuer_arn or actor


def _arn(value: object, where: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_ARN or not value.startswith("arn:"):
        raise EventError(f"{where}: expected an ARN")
    return value


def _names(
    parameters: Mapping[str, Any], keys: Collection[str], event_name: str, account_id: str
) -> Iterable[tuple[str, str]]:
    """(key, IAM name) of every parameter among `keys` that names an entity this call changed."""
    seen: set[tuple[str, str]] = set()
    for key in keys:
        value = parameters.get(key)
        if not isinstance(value, str) or event_name in _USES.get(key, ()):
            continue
        name = _name_in_arn(key, value, account_id) if key.endswith("Arn") else value
        if name and _IAM_NAME.fullmatch(name) and (key, name) not in seen:
            seen.add((key, name))
            yield key, name


def _name_in_arn(key: str, arn: str, account_id: str) -> str:
    """The name in an IAM ARN parameter (`policyArn` -> the name after `policy/<path>/`), or ""
    when the ARN is of another account (an AWS managed policy is nobody's to reconcile)."""
    found = _ARN.fullmatch(arn) if len(arn) <= MAX_ARN else None
    if found is None or found.group(2) != "iam" or found.group(3) != account_id:
        return ""
    head, _, rest = found.group(4).partition("/")
    if head != key.removesuffix("Arn") or not rest:
        return ""
    return rest.rsplit("/", 1)[-1]
