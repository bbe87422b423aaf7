"""IAMPolicy through the engine (reconcile / finalize) against a moto server, with exact call counts.

Covers: create (one CreatePolicy; without likely_absent one ListPolicies first); the read cost of
an in-sync policy; a document change is one CreatePolicyVersion; at IAM's 5 versions the oldest
non-default version is deleted first (also when someone made the oldest version the default);
drift: another version set as default is put back with one SetDefaultPolicyVersion, edited tags
with one TagPolicy + one UntagPolicy; the account snapshot carries policies (with tags from
ListPolicyTags) and an in-sync snapshot entry costs no call; delete detaches from roles/users
Rolekeeper owns, deletes old versions, then the policy; a foreign holder (hand-made role, a
group) stops the delete before any write, naming it, and the delete completes once it is gone;
a policy and the role using it deleted together converge in either order.

moto is lenient where AWS is not (TEST-NOTES.md): `delete_policy` succeeds while attached, so
that the delete order is right is proven by tests/unit/test_policy_kind.py, and here by the
calls made; moto's ListPolicyVersions carries documents (AWS's does not), which the kind does not
use — the counts below are those real AWS would see.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import boto3
import pytest

from controller.aws.clients import Clients
from controller.aws.snapshot import read_raw
from controller.core.actions import OWNER_TAG, UID_TAG
from controller.core.errors import TerminalError
from controller.core.status import Reason
from controller.engine.reconcile import finalize, reconcile
from controller.kinds import registry
from controller.kinds.base import Desired
from controller.kinds.policy import KIND, Policy
from tests.aws.conftest import Account
from tests.helpers import ACCOUNT, LOGS_POLICY, manifest, role, user

pytestmark = pytest.mark.aws
PATH = "/apps/"


@pytest.fixture(autouse=True, scope="module")
def _clean_up(moto_server: Any) -> Iterator[None]:
    """Delete this module's policies afterwards: every customer-managed policy costs each later
    account snapshot in the session one ListPolicyTags."""
    yield
    iam = boto3.session.Session().client("iam", region_name="us-east-1")
    for listed in iam.list_policies(Scope="Local", PathPrefix=PATH)["Policies"]:
        arn = listed["Arn"]
        held = iam.list_entities_for_policy(PolicyArn=arn)
        for r in held["PolicyRoles"]:
            iam.detach_role_policy(RoleName=r["RoleName"], PolicyArn=arn)
        for u in held["PolicyUsers"]:
            iam.detach_user_policy(UserName=u["UserName"], PolicyArn=arn)
        for g in held["PolicyGroups"]:
            iam.detach_group_policy(GroupName=g["GroupName"], PolicyArn=arn)
        for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not v["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=arn, VersionId=v["VersionId"])
        iam.delete_policy(PolicyArn=arn)


def document(n: int) -> dict[str, Any]:
    """A distinct identity policy per n."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::bucket-{n}/*"}],
    }


def policy(name: str, doc: dict[str, Any] | None = None, **spec: Any) -> Desired:
    body = {"policyName": name, "path": PATH, "document": doc or LOGS_POLICY, **spec}
    return registry.parse(manifest("IAMPolicy", name.lower(), body, uid="uid-p", generation=1))


def arn_of(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:policy/apps/{name}"


def delta(clients: Clients, before: dict[str, int]) -> dict[str, int]:
    after = clients.counter.snapshot()
    return {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)}


def measured(clients: Clients, run: Callable[[], Any]) -> tuple[Any, dict[str, int]]:
    before = clients.counter.snapshot()
    result = run()
    return result, delta(clients, before)


def versions(iam: Any, arn: str) -> dict[str, bool]:
    return {v["VersionId"]: v["IsDefaultVersion"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]}


def read(iam: Any, name: str) -> Policy | None:
    found = KIND.read(iam, name)
    assert found is None or isinstance(found, Policy)
    return found


# --------------------------------------------------------------------------- create / read


def test_create_then_only_reads(clients: Clients, iam: Any, unique: Any) -> None:
    desired = policy(unique("logs"), description="Write logs", tags={"team": "a"})
    name = desired.aws_name
    outcome, calls = measured(clients, lambda: reconcile(clients, desired))
    assert outcome.ready and outcome.verdict.reason is Reason.SYNCED
    assert calls == {"ListPolicies": 1, "CreatePolicy": 1}  # the read finds nothing, then one create
    got = iam.get_policy(PolicyArn=arn_of(name))["Policy"]
    assert (outcome.verdict.arn, outcome.verdict.entity_id) == (arn_of(name), got["PolicyId"])
    assert got["Description"] == "Write logs"
    assert {t["Key"]: t["Value"] for t in got["Tags"]} == {
        "team": "a", OWNER_TAG: f"team-a/{name.lower()}", UID_TAG: "uid-p"
    }
    again, calls = measured(clients, lambda: reconcile(clients, desired))
    assert again.ready and not again.applied
    # The read cost of an in-sync policy with one version: find it, get it (description and
    # tags), list its versions, read each version's document.
    assert calls == {"ListPolicies": 1, "GetPolicy": 1, "ListPolicyVersions": 1, "GetPolicyVersion": 1}


def test_a_known_arn_saves_the_listing(clients: Clients, unique: Any) -> None:
    desired = policy(unique("arn"))
    reconcile(clients, desired)
    name = desired.aws_name
    found, calls = measured(clients, lambda: KIND.read(clients.iam, name, arn=arn_of(name)))
    assert isinstance(found, Policy) and found.arn == arn_of(name)
    assert calls == {"GetPolicy": 1, "ListPolicyVersions": 1, "GetPolicyVersion": 1}
    # A stale or foreign ARN costs its GetPolicy, then the policy is found by name.
    stale = f"arn:aws:iam::{ACCOUNT}:policy/moved/{name}"
    found, calls = measured(clients, lambda: KIND.read(clients.iam, name, arn=stale))
    assert isinstance(found, Policy) and found.arn == arn_of(name)
    assert calls == {"GetPolicy": 2, "ListPolicies": 1, "ListPolicyVersions": 1, "GetPolicyVersion": 1}


def test_likely_absent_create_is_one_call(clients: Clients, unique: Any) -> None:
    outcome, calls = measured(clients, lambda: reconcile(clients, policy(unique("new")), likely_absent=True))
    assert outcome.ready and calls == {"CreatePolicy": 1}


def test_equivalent_document_written_differently_is_no_update(clients: Clients, unique: Any) -> None:
    desired = policy(unique("same"))
    reconcile(clients, desired)
    rewritten = {"Statement": {"Effect": "Allow", "Resource": ["*"], "Action": list(reversed(LOGS_POLICY["Statement"][0]["Action"]))}}
    outcome = reconcile(clients, policy(desired.aws_name, rewritten))
    assert outcome.ready and not outcome.applied


# --------------------------------------------------------------------------- update / versions


def test_update_creates_versions_and_prunes_the_oldest_at_five(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("versions")
    arn = arn_of(name)
    reconcile(clients, policy(name, document(1)))
    for n in range(2, 6):
        outcome, calls = measured(clients, partial(reconcile, clients, policy(name, document(n))))
        assert [a.api for a in outcome.applied] == ["CreatePolicyVersion"]
        assert calls["CreatePolicyVersion"] == 1 and "DeletePolicyVersion" not in calls
    assert versions(iam, arn) == {"v1": False, "v2": False, "v3": False, "v4": False, "v5": True}
    outcome, calls = measured(clients, lambda: reconcile(clients, policy(name, document(6))))
    assert outcome.ready
    assert [a.api for a in outcome.applied] == ["DeletePolicyVersion", "CreatePolicyVersion"]
    assert outcome.applied[0].params["VersionId"] == "v1"
    # One GetPolicy (the read's): CreatePolicyVersion names the policy itself, which the
    # reference check (engine/references.py) does not look up.
    assert calls == {
        "ListPolicies": 1, "GetPolicy": 1, "ListPolicyVersions": 1, "GetPolicyVersion": 5,
        "DeletePolicyVersion": 1, "CreatePolicyVersion": 1,
    }
    assert versions(iam, arn) == {"v2": False, "v3": False, "v4": False, "v5": False, "v6": True}
    default = iam.get_policy_version(PolicyArn=arn, VersionId="v6")["PolicyVersion"]["Document"]
    assert default == document(6)


def test_the_oldest_non_default_version_is_pruned_when_the_oldest_is_default(
    clients: Clients, iam: Any, unique: Any
) -> None:
    name = unique("oldest")
    arn = arn_of(name)
    for n in range(1, 6):
        reconcile(clients, policy(name, document(n)))
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")  # by hand: v1 in force again
    outcome = reconcile(clients, policy(name, document(7)))
    assert [(a.api, a.params.get("VersionId")) for a in outcome.applied] == [
        ("DeletePolicyVersion", "v2"),
        ("CreatePolicyVersion", None),
    ]
    assert versions(iam, arn) == {"v1": False, "v3": False, "v4": False, "v5": False, "v6": True}


# --------------------------------------------------------------------------- drift


def test_another_default_version_is_put_back_with_one_call(clients: Clients, iam: Any, unique: Any) -> None:
    name = unique("default")
    desired = policy(name, document(2))
    reconcile(clients, policy(name, document(1)))
    reconcile(clients, desired)
    iam.set_default_policy_version(PolicyArn=arn_of(name), VersionId="v1")
    outcome, calls = measured(clients, lambda: reconcile(clients, desired))
    assert outcome.ready and outcome.drift
    assert calls == {
        "ListPolicies": 1, "GetPolicy": 1, "ListPolicyVersions": 1, "GetPolicyVersion": 2,
        "SetDefaultPolicyVersion": 1,
    }
    assert versions(iam, arn_of(name)) == {"v1": False, "v2": True}
    assert not reconcile(clients, desired).applied


def test_edited_tags_are_put_back(clients: Clients, iam: Any, unique: Any) -> None:
    desired = policy(unique("tags"), tags={"team": "a"})
    reconcile(clients, desired)
    arn = arn_of(desired.aws_name)
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "team", "Value": "b"}, {"Key": "extra", "Value": "x"}])
    outcome, calls = measured(clients, lambda: reconcile(clients, desired))
    assert outcome.ready and [a.api for a in outcome.applied] == ["TagPolicy", "UntagPolicy"]
    writes = {op: n for op, n in calls.items() if not op.startswith(("Get", "List"))}
    assert writes == {"TagPolicy": 1, "UntagPolicy": 1}
    tags = {t["Key"]: t["Value"] for t in iam.list_policy_tags(PolicyArn=arn)["Tags"]}
    assert tags["team"] == "a" and "extra" not in tags


def test_snapshot_carries_policies_and_an_in_sync_entry_costs_nothing(
    clients: Clients, iam: Any, unique: Any
) -> None:
    desired = policy(unique("snap"), tags={"team": "a"})
    reconcile(clients, desired)
    iam.create_role(RoleName=unique("any"), AssumeRolePolicyDocument="{}")  # ListRoles: 1 page
    raw, calls = measured(clients, lambda: read_raw(clients.iam, policy_tags=[desired.aws_name]))
    # Only the policies asked for cost a ListPolicyTags: one here. ListRoles pages at 1,000 (the
    # shared server holds every earlier test's roles).
    roles = len(raw.details["RoleDetailList"])
    assert calls == {"GetAccountAuthorizationDetails": 1, "ListRoles": -(-roles // 1000), "ListPolicyTags": 1}
    entry = KIND.from_snapshot(raw)[desired.aws_name]
    assert isinstance(entry, Policy) and entry.tags[OWNER_TAG] == desired.ref.owner
    outcome, calls = measured(clients, lambda: reconcile(clients, desired, observed=entry))
    assert outcome.ready and calls == {}
    # Drift seen in a snapshot is re-read before it is fixed.
    iam.create_policy_version(PolicyArn=arn_of(desired.aws_name), PolicyDocument=json.dumps(document(9)), SetAsDefault=True)
    stale = KIND.from_snapshot(read_raw(clients.iam, policy_tags=[desired.aws_name]))[desired.aws_name]
    outcome = reconcile(clients, desired, observed=stale)
    assert [a.api for a in outcome.applied] == ["SetDefaultPolicyVersion"]


# --------------------------------------------------------------------------- delete


def test_delete_detaches_owned_holders_then_versions_then_the_policy(
    own_account: Account, unique: Any
) -> None:
    clients, iam = own_account.clients, own_account.iam  # holders are listed right (conftest)
    name = unique("shared")
    arn = arn_of(name)
    reconcile(clients, policy(name, document(1)))
    desired = policy(name, document(2))
    reconcile(clients, desired)  # v1 stays as an old version
    owned_role = role(unique("web"), managedPolicies=[arn])
    owned_user = user(unique("ci"), managedPolicies=[arn])
    assert reconcile(clients, owned_role).ready and reconcile(clients, owned_user).ready
    outcome, calls = measured(clients, lambda: finalize(clients, desired))
    assert not outcome.exists
    assert [a.api for a in outcome.applied] == [
        "DetachRolePolicy", "DetachUserPolicy", "DeletePolicyVersion", "DeletePolicy",
    ]
    assert calls == {
        "ListPolicies": 1, "GetPolicy": 1, "ListPolicyVersions": 1, "GetPolicyVersion": 2,
        "ListEntitiesForPolicy": 1, "GetRole": 1, "GetUser": 1,
        "DetachRolePolicy": 1, "DetachUserPolicy": 1, "DeletePolicyVersion": 1, "DeletePolicy": 1,
    }
    assert read(iam, name) is None
    assert iam.list_attached_role_policies(RoleName=owned_role.aws_name)["AttachedPolicies"] == []


def test_an_unattached_policy_is_deleted_without_listing_holders(clients: Clients, iam: Any, unique: Any) -> None:
    desired = policy(unique("alone"))
    reconcile(clients, desired)
    outcome, calls = measured(clients, lambda: finalize(clients, desired))
    assert [a.api for a in outcome.applied] == ["DeletePolicy"]
    assert calls == {"ListPolicies": 1, "GetPolicy": 1, "ListPolicyVersions": 1, "GetPolicyVersion": 1, "DeletePolicy": 1}


def test_a_foreign_holder_stops_the_delete_and_names_it(own_account: Account, unique: Any) -> None:
    clients, iam = own_account.clients, own_account.iam  # holders are listed right (conftest)
    name = unique("held")
    arn = arn_of(name)
    desired = policy(name)
    reconcile(clients, desired)
    owned_role = role(unique("web"), managedPolicies=[arn])
    reconcile(clients, owned_role)
    hand_made = unique("console")
    iam.create_role(RoleName=hand_made, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iam.attach_role_policy(RoleName=hand_made, PolicyArn=arn)
    group = unique("admins")
    iam.create_group(GroupName=group)
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    before = clients.counter.snapshot()
    with pytest.raises(TerminalError) as caught:
        finalize(clients, desired)
    calls = delta(clients, before)
    message = str(caught.value)
    assert f"role {hand_made} (untagged)" in message and f"group {group} (groups are not managed)" in message
    assert owned_role.aws_name not in message and "nothing was detached" in message
    assert calls == {
        "ListPolicies": 1, "GetPolicy": 1, "ListPolicyVersions": 1, "GetPolicyVersion": 1,
        "ListEntitiesForPolicy": 1, "GetRole": 2,
    }
    assert read(iam, name) is not None  # nothing written: the finalizer stays
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=owned_role.aws_name)["AttachedPolicies"]] == [arn]
    # A human detaches the foreign holders: the next retry completes the delete.
    iam.detach_role_policy(RoleName=hand_made, PolicyArn=arn)
    iam.detach_group_policy(GroupName=group, PolicyArn=arn)
    outcome = finalize(clients, desired)
    assert [a.api for a in outcome.applied] == ["DetachRolePolicy", "DeletePolicy"]
    assert read(iam, name) is None


@pytest.mark.parametrize("first", ["policy", "role"])
def test_a_policy_and_its_role_deleted_together_converge(own_account: Account, unique: Any, first: str) -> None:
    clients, iam = own_account.clients, own_account.iam  # holders are listed right (conftest)
    name = unique("pr")
    desired = policy(name)
    reconcile(clients, desired)
    owned_role = role(unique("pr-web"), managedPolicies=[arn_of(name)])
    reconcile(clients, owned_role)
    order = [desired, owned_role] if first == "policy" else [owned_role, desired]
    for gone in order:
        assert not finalize(clients, gone).exists
    assert read(iam, name) is None
    assert owned_role.aws_name not in {r["RoleName"] for r in iam.list_roles()["Roles"]}
