"""observe: per-entity reads and the whole-account snapshot, against a moto server.

Covers: a snapshot holds the same Role/User a per-entity read returns (including what GAAD
lacks, filled from ListRoles); a snapshot of 1,000 roles takes at most 15 calls (counted by an
independent botocore hook, not the operator's own counter); the JSON round trip used by
`rolekeeper plan --snapshot`; absent entities read as None.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from controller.aws.clients import Clients
from controller.engine.reconcile import reconcile
from controller.kinds import snapshot as account
from tests.helpers import EC2_TRUST, LOGS_POLICY, S3_READ, read_role, read_user, role, user

pytestmark = pytest.mark.aws


def test_snapshot_matches_per_entity_reads(clients: Clients, iam: Any, unique: Any) -> None:
    group = unique("g")
    iam.create_group(GroupName=group)
    desired_role = role(unique("snap"), description="d", maxSessionDuration=7200,
                        managedPolicies=[S3_READ], inlinePolicies={"logs": LOGS_POLICY},
                        instanceProfile=True, tags={"k": "v"})
    desired_user = user(unique("snapu"), groups=[group], managedPolicies=[S3_READ],
                        inlinePolicies={"logs": LOGS_POLICY}, tags={"k": "v"})
    reconcile(clients, desired_role)
    reconcile(clients, desired_user)
    snap = account.take(clients.iam)
    assert snap.of_kind("IAMRole")[desired_role.aws_name] == read_role(iam, desired_role.aws_name)
    assert snap.of_kind("IAMUser")[desired_user.aws_name] == read_user(iam, desired_user.aws_name)


def test_snapshot_json_round_trip(clients: Clients, unique: Any) -> None:
    reconcile(clients, role(unique("json"), managedPolicies=[S3_READ], instanceProfile=True))
    snap = account.take(clients.iam)
    again = account.from_json(json.loads(json.dumps(snap.to_json())))
    assert again.of_kind("IAMRole") == snap.of_kind("IAMRole") and again.of_kind("IAMUser") == snap.of_kind("IAMUser")


def test_absent_entities_read_as_none(clients: Clients, unique: Any) -> None:
    assert read_role(clients.iam, unique("nope")) is None
    assert read_user(clients.iam, unique("nope"), credentials=True) is None


def test_snapshot_of_1000_roles_within_15_calls(moto_server: Any, unique: Any) -> None:
    session = boto3.session.Session()
    setup = session.client("iam", region_name="us-east-1")
    prefix = unique("bulk")
    trust = json.dumps(EC2_TRUST)
    for i in range(1000):
        setup.create_role(RoleName=f"{prefix}-{i}", AssumeRolePolicyDocument=trust,
                          Tags=[{"Key": "n", "Value": str(i)}])
    reader = session.client("iam", region_name="us-east-1")
    calls: list[str] = []
    reader.meta.events.register("before-call.iam", lambda model, **_: calls.append(model.name))
    snap = account.take(reader)
    ours = [name for name in snap.of_kind("IAMRole") if name.startswith(prefix + "-")]
    assert len(ours) == 1000
    assert len(calls) <= 15, calls
    assert snap.pages == len(calls)
