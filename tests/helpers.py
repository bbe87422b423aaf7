"""Test helpers shared by every tier (unit, aws, e2e, bench): manifests, policies, and the kind API.

One place for the literals tests keep needing (an EC2 trust policy, a logs policy, managed
policy ARNs) and for building IAMRole/IAMUser objects, so a change of the API is one edit here.
"""

from __future__ import annotations

from typing import Any

from controller.kinds import registry
from controller.kinds.base import Desired, Entity
from controller.kinds.role import Role
from controller.kinds.user import User

API_VERSION = registry.API_VERSION
ACCOUNT = "123456789012"
EC2_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
LOGS_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
}
S3_READ = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
DYNAMO_READ = "arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess"
BOUNDARY = "arn:aws:iam::aws:policy/PowerUserAccess"


def manifest(
    kind: str, name: str, spec: dict[str, Any], namespace: str | None = "team-a", **meta: Any
) -> dict[str, Any]:
    """A Rolekeeper object as a user writes it (namespace None: none given)."""
    metadata: dict[str, Any] = {"name": name, **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def role_object(
    name: str, namespace: str = "team-a", uid: str = "uid-1", **spec: Any
) -> dict[str, Any]:
    """An IAMRole with an EC2 trust; its metadata.name derived from the AWS name."""
    body: dict[str, Any] = {"roleName": name, "assumeRolePolicy": EC2_TRUST, **spec}
    return manifest("IAMRole", name.lower()[:50], body, namespace, uid=uid, generation=1)


def user_object(
    name: str, namespace: str = "team-a", uid: str = "uid-u", **spec: Any
) -> dict[str, Any]:
    """An IAMUser; its metadata.name derived from the AWS name."""
    body: dict[str, Any] = {"userName": name, **spec}
    return manifest("IAMUser", name.lower()[:50], body, namespace, uid=uid, generation=1)


def role(name: str, **spec: Any) -> Desired:
    return registry.parse(role_object(name, **spec))


def user(name: str, namespace: str = "team-a", uid: str = "uid-u", **spec: Any) -> Desired:
    return registry.parse(user_object(name, namespace, uid, **spec))


def read_role(iam: Any, name: str) -> Role | None:
    found = registry.get("IAMRole").read(iam, name)
    assert found is None or isinstance(found, Role)
    return found


def read_user(
    iam: Any, name: str, credentials: bool = False, rare_credentials: bool = False
) -> User | None:
    found = registry.get("IAMUser").read(iam, name, for_delete=credentials, rare=rare_credentials)
    assert found is None or isinstance(found, User)
    return found


def plan(desired: Desired, observed: Entity | None, partition: str = "aws") -> tuple[Any, ...]:
    """The calls the desired object's kind plans against `observed`."""
    return registry.of(desired).plan(desired, observed, partition)
