"""The error tree every layer shares, `classify()`, and the one table of retryable AWS codes.

    RolekeeperError
    ├── SpecError                 the object asks for something invalid: InvalidSpec, no AWS call
    └── AWSError                  any failed AWS call; carries operation, code and AWS's message
        ├── RetryableError        try again later with backoff: throttling, 5xx, concurrent
        │   │                     edits, network failures, a race creating the same name
        │   ├── PrincipalNotReady "Invalid principal in policy" right after the principal was
        │   │                     created (IAM is eventually consistent): retry for a bounded window
        │   └── DeleteConflict    something still hangs on the entity: re-observe, re-plan the
        │                         delete once, else retry later
        └── TerminalError         the spec or the account must change first (malformed policy,
                                  quota, missing referenced policy/group, access denied): report,
                                  do not retry until the spec changes or the next drift check

`RETRYABLE_CODES` is the only list of transient codes: the botocore retry hook
(`aws.clients`) retries exactly these inside the client, and `classify` calls exactly these
retryable once the client gave up, so the two can never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.core.actions import Action

# Throttling answers: the client backs off (adaptive mode) and status says "Throttled".
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
    }
)
# Every transient answer (a 5xx status is transient whatever its code).
RETRYABLE_CODES = THROTTLING_CODES | frozenset(
    {
        "ServiceFailure",
        "ServiceFailureException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "ConcurrentModification",
        "EntityTemporarilyUnmodifiable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)


class RolekeeperError(Exception):
    """The root of every error Rolekeeper raises on purpose."""


class SpecError(RolekeeperError, ValueError):
    """A spec that IAM would reject; `errors` lists every broken rule, each naming its field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class AWSError(RolekeeperError):
    """An AWS call failed; `applied` lists what succeeded before it in the same batch."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}" if code else f"{operation}: {message}")
        self.operation = operation
        self.code = code
        self.aws_message = message
        self.applied: tuple[Action, ...] = ()
        self.created: tuple[tuple[str, str], ...] = ()  # (arn, id) of entities made before it

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLING_CODES

    def explain(self) -> str:
        """The sentence a user reads in status."""
        return f"AWS rejected {self.operation}: {self.code}: {self.aws_message}"


class RetryableError(AWSError):
    """Transient: the same call can succeed later."""


class PrincipalNotReady(RetryableError):
    """A trust policy names a principal IAM does not see yet (or that does not exist)."""


class DeleteConflict(RetryableError):
    """Something still hangs on the entity; the caller re-observes and re-plans the delete."""


class TerminalError(AWSError):
    """Will fail again until the spec or the account changes."""


def is_transient(code: str, status: int = 0) -> bool:
    """Whether an answer is worth retrying as is (the botocore hook's and classify's rule)."""
    return code in RETRYABLE_CODES or status >= 500


def classify(operation: str, code: str, message: str, status: int = 0) -> AWSError:
    """Map an AWS error code (and HTTP status) to the error tree above."""
    if code == "MalformedPolicyDocument" and "invalid principal" in message.lower():
        return PrincipalNotReady(operation, code, message)
    if code == "DeleteConflict":
        return DeleteConflict(operation, code, message)
    if is_transient(code, status):
        return RetryableError(operation, code, message)
    if code == "EntityAlreadyExists" and operation.startswith("Create"):
        # Someone created the name between our read and our create: re-observe and decide again.
        return RetryableError(operation, code, message)
    return TerminalError(operation, code, message)
