"""Tags others own, against a moto server; and status.roleLastUsed from what AWS already returns.

Covers:
- a role whose tags another principal adds (`spec.ignoreTags` key and prefix, or the operator's
  patterns) stays in sync with zero TagRole/UntagRole calls, on a fresh read and from the
  account snapshot; a foreign tag not ignored is removed as before;
- the failure of aws-controllers-k8s/community#2367, reproduced on a moto server that enforces
  IAM (the operator's identity may not call UntagRole, as a service control policy forbidding
  the removal of organisation tags would say): without ignoreTags every reconcile is an
  AWSError naming AccessDenied; with it, Ready and no call refused;
- status.roleLastUsed: moto 5.2.5 fills RoleLastUsed.LastUsedDate (never Region) once the
  role's own credentials make a call; a reconcile reports it at no call beyond the in-sync reads,
  and the snapshot gives the same value (the status written from either does not flap).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from controller.aws import clients as aws
from controller.aws.clients import Clients
from controller.core.status import Reason
from controller.engine.reconcile import reconcile
from controller.kinds import registry
from controller.kinds import snapshot as account
from controller.kinds.base import Desired
from controller.settings import Limits
from tests.harness import moto
from tests.helpers import ACCOUNT, read_role, role, role_object

pytestmark = pytest.mark.aws

ORG_TAGS = [{"Key": "org:team", "Value": "payments"}, {"Key": "org:cost-center", "Value": "1234"},
            {"Key": "CostCenter", "Value": "42"}]


def calls(clients: Clients, before: dict[str, int]) -> dict[str, int]:
    after = clients.counter.snapshot()
    return {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)}


def tag_calls(delta: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in delta.items() if op in ("TagRole", "UntagRole")}


def test_foreign_tags_another_principal_adds_cost_no_call(clients: Clients, iam: Any, unique: Any) -> None:
    desired = role(unique("org"), tags={"team": "a"}, ignoreTags=["org:*", "CostCenter"])
    assert reconcile(clients, desired).ready
    iam.tag_role(RoleName=desired.aws_name, Tags=ORG_TAGS)  # the organisation's automation

    before = clients.counter.snapshot()
    outcome = reconcile(clients, desired)  # a fresh read, as on a spec change or a restart
    assert outcome.ready and outcome.verdict.reason is Reason.SYNCED and not outcome.applied
    assert tag_calls(calls(clients, before)) == {}

    snapshot = account.take(clients.iam)  # the drift sweep's path: one snapshot, no read
    before = clients.counter.snapshot()
    outcome = reconcile(clients, desired, snapshot.find(desired))
    assert outcome.ready and not outcome.applied
    assert calls(clients, before) == {}

    seen = read_role(clients.iam, desired.aws_name)
    assert seen is not None and {t["Key"] for t in ORG_TAGS} <= set(seen.tags)


def test_the_operator_patterns_work_alone(clients: Clients, iam: Any, unique: Any) -> None:
    limits = Limits(ignore_tags=("org:*", "costcenter"))  # case does not matter, as in IAM
    desired = registry.parse(role_object(unique("wide"), tags={"team": "a"}), limits)
    assert reconcile(clients, desired).ready
    iam.tag_role(RoleName=desired.aws_name, Tags=ORG_TAGS)
    before = clients.counter.snapshot()
    assert reconcile(clients, desired).ready
    assert tag_calls(calls(clients, before)) == {}


def test_a_foreign_tag_not_ignored_is_removed_as_before(clients: Clients, iam: Any, unique: Any) -> None:
    desired = role(unique("stray"), tags={"team": "a"}, ignoreTags=["org:*"])
    assert reconcile(clients, desired).ready
    iam.tag_role(RoleName=desired.aws_name, Tags=ORG_TAGS)
    before = clients.counter.snapshot()
    outcome = reconcile(clients, desired)
    assert outcome.ready
    assert [a.params["TagKeys"] for a in outcome.applied] == [["CostCenter"]]
    assert tag_calls(calls(clients, before)) == {"UntagRole": 1}
    seen = read_role(clients.iam, desired.aws_name)
    assert seen is not None
    assert {k for k in seen.tags if not k.startswith("rolekeeper.dev/")} == {
        "team", "org:team", "org:cost-center"}


# --- an account where the operator may not remove tags ----------------------------------------

BOOTSTRAP_CALLS = 6  # the unauthenticated calls that make the two users below
ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}
NO_UNTAG = {"Effect": "Deny", "Action": "iam:UntagRole", "Resource": "*"}


@pytest.fixture(scope="module")
def enforcing() -> Iterator[tuple[moto.MotoServer, dict[str, str], Any]]:
    """A moto server enforcing IAM: (server, the operator's credentials, an admin's client).
    The operator's user may do anything but UntagRole."""
    server = moto.start(extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": str(BOOTSTRAP_CALLS)})
    try:
        boot = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                     region_name="us-east-1").client("iam", endpoint_url=server.url)
        keys = {}
        for user, statements in (("admin", [ALLOW_ALL]), ("rolekeeper", [ALLOW_ALL, NO_UNTAG])):
            boot.create_user(UserName=user)
            boot.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": statements}))
            keys[user] = boot.create_access_key(UserName=user)["AccessKey"]
        admin = boto3.session.Session(
            aws_access_key_id=keys["admin"]["AccessKeyId"],
            aws_secret_access_key=keys["admin"]["SecretAccessKey"], region_name="us-east-1",
        ).client("iam", endpoint_url=server.url)
        env = {**server.env, "AWS_ACCESS_KEY_ID": keys["rolekeeper"]["AccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": keys["rolekeeper"]["SecretAccessKey"]}
        yield server, env, admin
    finally:
        server.stop()


def test_tags_an_scp_protects_make_every_reconcile_fail_unless_ignored(
    enforcing: tuple[moto.MotoServer, dict[str, str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, env, admin = enforcing
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    clients = aws.connect(boto3.session.Session())

    def managed(name: str, **spec: Any) -> Desired:
        desired = role(name, tags={"team": "a"}, **spec)
        assert reconcile(clients, desired).ready
        admin.tag_role(RoleName=name, Tags=ORG_TAGS)
        return desired

    plain = managed("org-plain")
    for _ in range(2):  # every interval, as the issue says
        outcome = reconcile(clients, plain)
        assert not outcome.ready and outcome.verdict.reason is Reason.AWS_ERROR
        assert "UntagRole" in outcome.verdict.message and "AccessDenied" in outcome.verdict.message

    ignoring = managed("org-ignoring", ignoreTags=["org:*", "CostCenter"])
    before = clients.counter.snapshot()
    for _ in range(2):
        outcome = reconcile(clients, ignoring)
        assert outcome.ready and outcome.verdict.reason is Reason.SYNCED and not outcome.applied
    assert tag_calls(calls(clients, before)) == {}


# --- status.roleLastUsed ----------------------------------------------------------------------

def use_role(arn: str) -> None:
    """Make one call with the role's own credentials (moto then records RoleLastUsed)."""
    sts = boto3.session.Session().client("sts", region_name="eu-west-1")
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="last-used")["Credentials"]
    boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"], region_name="eu-west-1",
    ).client("sts").get_caller_identity()


def test_role_last_used_at_no_extra_call(clients: Clients, unique: Any) -> None:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    desired = role(unique("used"), assumeRolePolicy=trust)
    created = reconcile(clients, desired)
    assert created.ready and "roleLastUsed" not in created.verdict.fields  # never used yet
    use_role(created.verdict.arn)

    before = clients.counter.snapshot()
    outcome = reconcile(clients, desired)
    # Exactly the in-sync reads (docs/design.md): GetRole brings RoleLastUsed along.
    assert calls(clients, before) == {"GetRole": 1, "ListAttachedRolePolicies": 1,
                                      "ListRolePolicies": 1, "ListInstanceProfilesForRole": 1}
    used = outcome.verdict.fields["roleLastUsed"]
    assert set(used) == {"lastUsedDate"}  # moto 5.2.5 never reports the Region
    assert used["lastUsedDate"].endswith("Z") and len(used["lastUsedDate"]) == 20
    assert outcome.usage is not None and outcome.usage.last_used == used["lastUsedDate"]

    swept = reconcile(clients, desired, account.take(clients.iam).find(desired))
    assert swept.verdict.fields == outcome.verdict.fields  # snapshot and GetRole agree: no flap
