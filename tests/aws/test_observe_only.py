"""managementPolicy: Observe against a moto server: the one decision path, with writes cut off.

Covers: a hand-made role that differs from the spec is reported (Ready=True reason Observed, the
differences in words) with read calls only, no ownership tag and no `adopt` needed; an observed
role that matches is in sync; a missing role is NotFound, not created; finalize of an observed
object makes no call at all; flipping to Manage (with adopt) makes exactly the calls Observe
listed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.aws.clients import Clients
from controller.core.status import Reason
from controller.engine.reconcile import finalize, reconcile
from tests.helpers import EC2_TRUST, S3_READ, read_role, role

pytestmark = pytest.mark.aws


def writes(clients: Clients) -> int:
    return clients.counter.total(writes_only=True)


def hand_made(iam: Any, name: str) -> None:
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.attach_role_policy(RoleName=name, PolicyArn=S3_READ)


def test_differences_are_reported_with_reads_only(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("observed")
    hand_made(iam, name)
    outcome = reconcile(clients, role(name, managementPolicy="Observe"))
    assert outcome.ready and outcome.verdict.reason is Reason.OBSERVED
    assert outcome.observe_only and not outcome.up_to_date
    assert any(f"Detached {S3_READ}" in d for d in outcome.drift)
    assert any("Set tags" in d for d in outcome.drift)  # the ownership tags Manage would add
    assert outcome.applied == () and writes(clients) == 0
    assert read_role(iam, name).managed_policies == {S3_READ}  # type: ignore[union-attr]


def test_a_matching_role_is_in_sync(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("observed")
    hand_made(iam, name)
    desired = role(name, managementPolicy="Observe", managedPolicies=[S3_READ])
    reconcile(clients, role(name, managedPolicies=[S3_READ], adopt=True))  # tag it as ours
    before = writes(clients)
    outcome = reconcile(clients, desired)
    assert outcome.up_to_date and outcome.drift == () and writes(clients) == before


def test_a_missing_role_is_not_found_and_not_created(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("absent")
    outcome = reconcile(clients, role(name, managementPolicy="Observe"), likely_absent=True)
    assert not outcome.ready and outcome.verdict.reason is Reason.NOT_FOUND
    assert writes(clients) == 0 and read_role(iam, name) is None


def test_finalize_of_an_observed_object_calls_nothing(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("observed")
    hand_made(iam, name)
    finalize(clients, role(name, managementPolicy="Observe"))
    assert clients.counter.total() == 0
    assert read_role(iam, name) is not None


def test_flipping_to_manage_makes_exactly_the_observed_calls(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("flip")
    hand_made(iam, name)
    observed = reconcile(clients, role(name, managementPolicy="Observe", adopt=True))
    managed = reconcile(clients, role(name, adopt=True))
    assert managed.ready
    assert [a.summary for a in managed.applied] == list(observed.drift)
