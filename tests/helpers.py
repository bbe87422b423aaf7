"""Test helpers shared by every tier (unit, aws, e2e, bench): manifests, policies, and the kind API.

One place for the literals tests keep needing (an EC2 trust policy, a logs policy, managed
policy ARNs) and for building IAMRole/IAMUser objects, so a change of the API is one edit here.
Helpers over kubectl live in `tests.harness.kube`; `until` and `free_port` in
`tests.harness.util` (the harness does not import the controller, this module does).
"""

from __future__ import annotations

import secrets
from typing import Any

import yaml

from controller.core.actions import RESERVED_TAG_PREFIX
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
SQS_READ = "arn:aws:iam::aws:policy/AmazonSQSReadOnlyAccess"
BOUNDARY = "arn:aws:iam::aws:policy/PowerUserAccess"


def aws_name(kind: str) -> str:
    """A fresh AWS name for one test's entity ("rk-<random>-<kind>"), so tests never collide."""
    return f"rk-{secrets.token_hex(4)}-{kind}"


def manifest(
    kind: str, name: str, spec: dict[str, Any], namespace: str | None = "team-a", **meta: Any
) -> dict[str, Any]:
    """A Rolekeeper object as a user writes it (namespace None: none given)."""
    metadata: dict[str, Any] = {"name": name, **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def iam_role(
    name: str, role_name: str | None = None, namespace: str | None = None, **spec: Any
) -> dict[str, Any]:
    """An IAMRole with an EC2 trust as applied with kubectl (`tests.harness.kube.apply` sets the
    namespace): metadata.name `name`, spec.roleName `role_name` (left out when None)."""
    body: dict[str, Any] = {} if role_name is None else {"roleName": role_name}
    body.update({"assumeRolePolicy": EC2_TRUST, **spec})
    return manifest("IAMRole", name, body, namespace)


def iam_user(
    name: str, user_name: str | None = None, namespace: str | None = None, **spec: Any
) -> dict[str, Any]:
    """An IAMUser as applied with kubectl: metadata.name `name`, spec.userName `user_name`."""
    body: dict[str, Any] = {} if user_name is None else {"userName": user_name}
    return manifest("IAMUser", name, {**body, **spec}, namespace)


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


# --- rolekeeper import: the round trip ---------------------------------------------------------


def as_managed(imported_yaml: str) -> str:
    """`rolekeeper import`'s output flipped to Manage: what a team commits once the observed
    objects show no difference (spec.managementPolicy dropped, so the default Manage applies)."""
    docs = list(yaml.safe_load_all(imported_yaml))
    for doc in docs:
        doc["spec"].pop("managementPolicy", None)
    return yaml.safe_dump_all(docs, sort_keys=False)


def only_claims(calls: Any) -> bool:
    """True when a plan's calls (Actions or their JSON) only claim the entity: one Tag* call
    setting rolekeeper.dev/ ownership tags, what `adopt: true` does before anything else."""
    found = [(c.api, c.params) if hasattr(c, "api") else (c["api"], c["params"]) for c in calls]
    return len(found) == 1 and found[0][0] in ("TagRole", "TagUser", "TagPolicy") and all(
        tag["Key"].startswith(RESERVED_TAG_PREFIX) for tag in found[0][1]["Tags"]
    )


def adoption_guardrail(imported_yaml: str, name: str = "onboarding") -> dict[str, Any]:
    """The IAMGuardrail a platform team writes before imported objects may adopt: every
    namespace, exactly the imported AWS names (docs/onboarding.md)."""
    names: dict[str, list[str]] = {}
    for doc in yaml.safe_load_all(imported_yaml):
        kind = registry.get(doc["kind"])
        section = kind.plural.removeprefix("iam")  # iamroles -> roles, the guardrail's section
        names.setdefault(section, []).append(doc["spec"][kind.name_field])
    return {
        "apiVersion": API_VERSION,
        "kind": "IAMGuardrail",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {},
            "adoption": {section: {"names": sorted(found)} for section, found in names.items()},
        },
    }
