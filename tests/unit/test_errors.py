"""apply.classify: which IAM error codes are retried, which are terminal, which are special.

Covers: throttling / 5xx / concurrent-modification codes are retryable; the eventual-consistency
"Invalid principal" message is its own retryable kind; DeleteConflict is re-planned; a race on
CreateRole/CreateUser is retryable; spec and quota errors are terminal; the error keeps AWS's
operation, code and message.
"""

from __future__ import annotations

import pytest

from controller.core.errors import (
    DeleteConflict,
    PrincipalNotReady,
    RetryableError,
    TerminalError,
    classify,
)

CASES = [
    ("PutRolePolicy", "Throttling", "Rate exceeded", 400, RetryableError),
    ("CreateRole", "ThrottlingException", "Rate exceeded", 400, RetryableError),
    ("GetRole", "ServiceFailure", "oops", 500, RetryableError),
    ("GetRole", "", "Service Unavailable", 503, RetryableError),
    ("TagRole", "ConcurrentModification", "busy", 409, RetryableError),
    ("AttachRolePolicy", "EntityTemporarilyUnmodifiable", "busy", 409, RetryableError),
    ("CreateRole", "MalformedPolicyDocument", "Invalid principal in policy: \"AWS\":\"arn:aws:iam::1:role/x\"", 400, PrincipalNotReady),
    ("UpdateAssumeRolePolicy", "MalformedPolicyDocument", "Invalid Principal in policy", 400, PrincipalNotReady),
    ("DeleteRole", "DeleteConflict", "Cannot delete entity, must detach all policies first.", 409, DeleteConflict),
    ("CreateRole", "EntityAlreadyExists", "Role with name x already exists.", 409, RetryableError),
    ("CreateUser", "EntityAlreadyExists", "User with name x already exists.", 409, RetryableError),
    ("PutRolePolicy", "MalformedPolicyDocument", "Syntax errors in policy.", 400, TerminalError),
    ("CreateRole", "InvalidInput", "bad", 400, TerminalError),
    ("AttachRolePolicy", "LimitExceeded", "Cannot exceed quota for PoliciesPerRole: 10", 409, TerminalError),
    ("AttachRolePolicy", "NoSuchEntity", "Policy arn:aws:iam::aws:policy/X does not exist", 404, TerminalError),
    ("AddUserToGroup", "NoSuchEntity", "The group with name deployers cannot be found.", 404, TerminalError),
    ("UpdateRole", "UnmodifiableEntity", "Cannot perform the operation on the protected role", 400, TerminalError),
    ("CreateRole", "AccessDenied", "User is not authorized to perform: iam:CreateRole", 403, TerminalError),
]


@pytest.mark.parametrize(("operation", "code", "message", "status", "expected"), CASES,
                         ids=[f"{c[0]}-{c[1] or c[3]}" for c in CASES])
def test_classify(operation: str, code: str, message: str, status: int, expected: type) -> None:
    error = classify(operation, code, message, status)
    assert type(error) is expected
    assert (error.operation, error.code, error.aws_message) == (operation, code, message)


def test_message_names_operation_code_and_aws_words() -> None:
    error = classify("PutRolePolicy", "MalformedPolicyDocument", "Syntax errors in policy.")
    assert str(error) == "PutRolePolicy: MalformedPolicyDocument: Syntax errors in policy."
