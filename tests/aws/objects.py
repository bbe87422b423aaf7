"""Builders for desired IAMRole/IAMUser objects used by the aws-tier tests."""

from __future__ import annotations

from typing import Any

from controller.model import Desired, parse_role, parse_user

EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
LOGS_POLICY = {
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


def role_object(
    name: str, namespace: str = "team-a", uid: str = "uid-1", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"roleName": name, "assumeRolePolicy": EC2_TRUST, **spec}
    return {
        "apiVersion": "iam.rolekeeper.dev/v1alpha1",
        "kind": "IAMRole",
        "metadata": {
            "name": name.lower()[:50],
            "namespace": namespace,
            "uid": uid,
            "generation": 1,
        },
        "spec": body,
    }


def role(name: str, **spec: Any) -> Desired:
    return parse_role(role_object(name, **spec))


def user(name: str, namespace: str = "team-a", uid: str = "uid-u", **spec: Any) -> Desired:
    return parse_user(
        {
            "apiVersion": "iam.rolekeeper.dev/v1alpha1",
            "kind": "IAMUser",
            "metadata": {
                "name": name.lower()[:50],
                "namespace": namespace,
                "uid": uid,
                "generation": 1,
            },
            "spec": {"userName": name, **spec},
        }
    )
