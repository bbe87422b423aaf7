"""The benchmark workload: IAMRole manifests and the bare boto3 calls they stand for.

Every operator-managed role and every baseline role has the same shape (trust policy, two AWS
managed policies, one inline policy, three tags plus the two ownership tags the operator adds), so
the baseline sends the same payloads the operator does. The baseline and the ACK-style poll run
through their own counting proxy, never the operator's, so the two tallies cannot mix.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from controller.core.actions import OWNER_TAG, UID_TAG
from tests.helpers import DYNAMO_READ, EC2_TRUST, S3_READ, iam_role
from tests.helpers import manifest as manifest_of

MANAGED = (S3_READ, DYNAMO_READ)
INLINE_NAME = "write-logs"
INLINE: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "arn:aws:logs:*:*:log-group:/bench/*",
        }
    ],
}
TAGS = {"team": "bench", "app": "rolekeeper-bench", "env": "test"}
MINIMAL_CALLS_PER_ROLE = 4  # CreateRole (tags included), 2 x AttachRolePolicy, PutRolePolicy
# ACK-style per-entity poll of one role with one inline policy.
ACK_CALLS_PER_ROLE = 5  # GetRole, ListAttachedRolePolicies, ListRolePolicies, GetRolePolicy, ListRoleTags


def role_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(count)]


def manifest(names: Sequence[str], namespace: str) -> dict[str, Any]:
    """One `kind: List` of IAMRoles, applied with a single `kubectl apply -f -`."""
    items = [
        iam_role(f"role-{i:04d}", name, namespace, description="benchmark role",
                 managedPolicies=list(MANAGED), inlinePolicies={INLINE_NAME: INLINE}, tags=TAGS)
        for i, name in enumerate(names)
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def client(endpoint: str, pool: int) -> Any:
    """An IAM client like a user's script: standard retries, enough connections for `pool`."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    config = Config(retries={"mode": "standard"}, max_pool_connections=max(10, pool))
    return session.client("iam", endpoint_url=endpoint, config=config)


def create_minimal(iam: Any, name: str) -> None:
    """Exactly the calls a new role of the workload needs; nothing is read."""
    tags = {**TAGS, OWNER_TAG: f"bench/{name}", UID_TAG: str(uuid.uuid4())}
    iam.create_role(
        RoleName=name,
        Path="/",
        Description="benchmark role",
        AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
        MaxSessionDuration=3600,
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    for arn in MANAGED:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    iam.put_role_policy(RoleName=name, PolicyName=INLINE_NAME, PolicyDocument=json.dumps(INLINE))


def ack_poll(iam: Any, name: str) -> None:
    """What an ACK-style controller reads per role on every resync."""
    iam.get_role(RoleName=name)
    iam.list_attached_role_policies(RoleName=name)
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.get_role_policy(RoleName=name, PolicyName=policy_name)
    iam.list_role_tags(RoleName=name)


def timed(fn: Callable[[Any, str], None], iam: Any, names: Iterable[str], workers: int) -> float:
    """Wall seconds to run `fn` for every name, sequentially (workers=1) or on a thread pool."""
    names = list(names)
    started = time.monotonic()
    if workers <= 1:
        for name in names:
            fn(iam, name)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            # list() re-raises the first failure instead of dropping it.
            list(pool.map(lambda n: fn(iam, n), names))
    return time.monotonic() - started


def get_role_rate(iam: Any, name: str, calls: int, workers: int) -> float:
    """GetRole calls per second the endpoint sustains (moto's ceiling for every other figure)."""
    elapsed = timed(lambda c, _: c.get_role(RoleName=name), iam, [name] * calls, workers)
    return calls / elapsed


def policies_manifest(count: int, namespace: str, prefix: str) -> dict[str, Any]:
    """`count` IAMPolicy objects in one `kind: List` (the sweep must not pay per policy)."""
    items = [
        manifest_of("IAMPolicy", f"policy-{i:04d}",
                    {"policyName": f"{prefix}-{i:04d}", "document": INLINE, "tags": TAGS}, namespace)
        for i in range(count)
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}
