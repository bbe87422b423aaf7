"""Execute planned Actions with boto3 and classify what AWS says back.

Error tree (what the caller does with each)::

    AWSError                     any failed IAM call; carries operation, code and AWS's message
    ├── RetryableError           try again later with backoff: throttling, 5xx, concurrent edits,
    │   │                        network failures, a race with someone creating the same name
    │   └── PrincipalNotReady    "Invalid principal in policy" right after the principal was
    │                            created (IAM is eventually consistent): retry for a bounded window
    └── TerminalError            the spec or the account must change first (malformed policy,
                                 quota, missing referenced policy/group, access denied): report,
                                 do not retry until the spec changes or the next drift check

Idempotence rules applied per call: NoSuchEntity while deleting, EntityAlreadyExists when
creating an instance profile that carries our owner tag, and LimitExceeded when adding a role to
a profile that already holds that very role, are success — a crash between two calls, or an
answer lost after AWS applied the call (the client's retry then meets its own result), must
never wedge the next attempt. A same-named profile someone else made is not ours to fill.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from controller.model import OWNER_TAG
from controller.plan import Action

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

log = logging.getLogger(__name__)

RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceFailure",
        "ServiceFailureException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "ConcurrentModification",
        "EntityTemporarilyUnmodifiable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
DELETE_PREFIXES = ("Delete", "Detach", "Remove", "Untag", "Deactivate")


class AWSError(Exception):
    """An IAM call failed; `applied` lists what succeeded before it in the same batch."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}" if code else f"{operation}: {message}")
        self.operation = operation
        self.code = code
        self.aws_message = message
        self.applied: tuple[Action, ...] = ()


class RetryableError(AWSError):
    """Transient: the same call can succeed later."""


class PrincipalNotReady(RetryableError):
    """A trust policy names a principal IAM does not see yet (or that does not exist)."""


class TerminalError(AWSError):
    """Will fail again until the spec or the account changes."""


class DeleteConflict(RetryableError):
    """Something still hangs on the entity; the caller re-observes and re-plans the delete."""


@dataclass(frozen=True)
class Applied:
    """One successful call and the response AWS returned (ARNs and ids of created entities)."""

    action: Action
    response: dict[str, Any]


def execute(
    iam: IAMClient,
    actions: Iterable[Action],
    on_applied: Callable[[Action], None] | None = None,
) -> list[Applied]:
    """Run actions in order; stop at the first error, which carries what was applied before it."""
    done: list[Applied] = []
    for action in actions:
        try:
            response = call(iam, action)
        except AWSError as exc:
            exc.applied = tuple(a.action for a in done)
            raise
        done.append(Applied(action, response))
        log.debug("%s %s", action.api, _name_of(action))
        if on_applied is not None:
            on_applied(action)
    return done


def call(iam: IAMClient, action: Action) -> dict[str, Any]:
    """One IAM call with the idempotence rules applied; raises a classified AWSError."""
    method = getattr(iam, xform_name(action.api))
    try:
        response: dict[str, Any] = method(**action.params)
        return response
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchEntity" and action.api.startswith(DELETE_PREFIXES):
            return {}  # already gone: the goal of a delete step is met
        if code == "EntityAlreadyExists" and action.api == "CreateInstanceProfile":
            if _same_owner(iam, action):
                return {}  # an interrupted earlier attempt made it; AddRoleToInstanceProfile next
            name = action.params["InstanceProfileName"]
            raise TerminalError(
                action.api,
                code,
                f"instance profile {name} already exists and was not created by Rolekeeper for "
                "this object; Rolekeeper will not put its role into it: delete or rename that "
                "profile, or set spec.instanceProfile: false",
            ) from exc
        if (
            code == "LimitExceeded"
            and action.api == "AddRoleToInstanceProfile"
            and _profile_holds_role(iam, action)
        ):
            return {}  # the one role a profile holds is ours: an earlier answer was lost
        raise _from_client_error(action.api, exc) from exc
    except (BotoCoreError, ResponseParserError) as exc:
        # No usable answer at all (connection reset, timeout, a body that is not IAM's XML).
        raise RetryableError(action.api, type(exc).__name__, str(exc)) from exc


@contextlib.contextmanager
def classified(operation: str) -> Iterator[None]:
    """Re-raise boto3 errors of the block (reads outside `call`) as classified AWSErrors, so
    a throttled or failing read backs off like a failing write instead of escaping unnamed."""
    try:
        yield
    except ClientError as exc:
        raise _from_client_error(exc.operation_name or operation, exc) from exc
    except (BotoCoreError, ResponseParserError) as exc:
        raise RetryableError(operation, type(exc).__name__, str(exc)) from exc


def _from_client_error(operation: str, exc: ClientError) -> AWSError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or str(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return classify(operation, code, message, status)


def _same_owner(iam: IAMClient, action: Action) -> bool:
    """Whether the existing profile carries the owner tag this CreateInstanceProfile would set
    (ownership, like plan.ownership, follows namespace/name, not the uid)."""
    wanted = {t["Key"]: t["Value"] for t in action.params.get("Tags", [])}.get(OWNER_TAG)
    with classified("GetInstanceProfile"):
        profile = iam.get_instance_profile(InstanceProfileName=action.params["InstanceProfileName"])
    tags = {t["Key"]: t["Value"] for t in profile["InstanceProfile"].get("Tags", [])}
    return wanted is not None and tags.get(OWNER_TAG) == wanted


def _profile_holds_role(iam: IAMClient, action: Action) -> bool:
    try:
        profile = iam.get_instance_profile(InstanceProfileName=action.params["InstanceProfileName"])
    except (ClientError, BotoCoreError, ResponseParserError):
        return False  # cannot tell: report AWS's LimitExceeded as it is
    roles = profile["InstanceProfile"]["Roles"]
    return any(r["RoleName"] == action.params["RoleName"] for r in roles)


def classify(operation: str, code: str, message: str, status: int = 0) -> AWSError:
    """Map an IAM error code (and HTTP status) to the error tree above."""
    if code == "MalformedPolicyDocument" and "invalid principal" in message.lower():
        return PrincipalNotReady(operation, code, message)
    if code == "DeleteConflict":
        return DeleteConflict(operation, code, message)
    if code in RETRYABLE_CODES or status >= 500:
        return RetryableError(operation, code, message)
    if code == "EntityAlreadyExists" and operation in ("CreateRole", "CreateUser"):
        # Someone created the name between our read and our create: re-observe and decide again.
        return RetryableError(operation, code, message)
    return TerminalError(operation, code, message)


def _name_of(action: Action) -> str:
    for key in ("RoleName", "UserName", "InstanceProfileName"):
        if key in action.params:
            return str(action.params[key])
    return ""
