"""IAMAccount (controller.aws.accounts): parsing, which namespace uses which account, and the
assumed-role credential cache with an injected clock (no network: STS is a plain function).

Covers:
- parse_account: a full object, the defaults, and each invalid field named (roleArn in another
  account than accountId, both or neither of namespaceSelector/namespaces, ...);
- choose: by list, by label selector (the guardrails' own selector), the default (None) for
  namespaces nobody serves, refusal when two IAMAccounts serve one namespace or one cannot
  be read;
- Accounts: one AssumeRole per account however often asked; the credentials the boto3
  session signs with are the assumed ones and are refreshed inside botocore's advisory
  window (15 min before expiry), not before; a failed AssumeRole is remembered for
  retry_after (no STS call) and retried after it; a changed spec is assumed afresh; a role
  acting in another account than spec.accountId is refused; accounts do not share clients.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest

from controller.aws.accounts import (
    Account,
    AccountError,
    Accounts,
    AccountUnavailable,
    Metadata,
    choose,
    parse_account,
)
from controller.aws.clients import CallCounter, Clients
from controller.core.errors import RetryableError, TerminalError

A_ID, B_ID = "111111111111", "222222222222"
ROLE_A = f"arn:aws:iam::{A_ID}:role/rolekeeper"
ROLE_B = f"arn:aws:iam::{B_ID}:role/ops/rolekeeper"


def account_obj(name: str = "a", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "iam.rolekeeper.dev/v1alpha1",
        "kind": "IAMAccount",
        "metadata": {"name": name},
        "spec": spec,
    }


A = parse_account(account_obj("a", accountId=A_ID, roleArn=ROLE_A, namespaces=["team-a"]))
B = parse_account(
    account_obj(
        "b", accountId=B_ID, roleArn=ROLE_B, externalId="rk-ext-b", sessionName="rk-b",
        durationSeconds=1800, namespaceSelector={"matchLabels": {"aws-account": "b"}},
    )
)


# --- parsing -----------------------------------------------------------------------------


def test_parse_a_full_account() -> None:
    assert Account(
        name="b", account_id=B_ID, role_arn=ROLE_B, external_id="rk-ext-b", session_name="rk-b",
        duration_seconds=1800, selector=B.selector, namespaces=None,
    ) == B
    assert B.selector is not None and B.selector.match_labels == (("aws-account", "b"),)
    assert B.partition == "aws"


def test_parse_defaults() -> None:
    assert (A.external_id, A.session_name, A.duration_seconds) == ("", "rolekeeper", 3600)
    assert A.namespaces == frozenset({"team-a"}) and A.selector is None


@pytest.mark.parametrize(
    ("spec", "field_path"),
    [
        ({"accountId": "1234", "roleArn": ROLE_A, "namespaces": []}, "spec.accountId"),
        ({"accountId": B_ID, "roleArn": ROLE_A, "namespaces": []}, "spec.roleArn"),
        ({"accountId": A_ID, "roleArn": "rolekeeper", "namespaces": []}, "spec.roleArn"),
        ({"accountId": A_ID, "roleArn": ROLE_A}, "spec"),
        ({"accountId": A_ID, "roleArn": ROLE_A, "namespaces": [], "namespaceSelector": {}}, "spec"),
        ({"accountId": A_ID, "roleArn": ROLE_A, "namespaces": ["Bad_NS"]}, "spec.namespaces"),
        ({"accountId": A_ID, "roleArn": ROLE_A, "namespaces": [], "externalId": "x"},
         "spec.externalId"),
        ({"accountId": A_ID, "roleArn": ROLE_A, "namespaces": [], "sessionName": "a b"},
         "spec.sessionName"),
        ({"accountId": A_ID, "roleArn": ROLE_A, "namespaces": [], "durationSeconds": 60},
         "spec.durationSeconds"),
        ({"accountId": A_ID, "roleArn": ROLE_A, "namespaceSelector": {"matchLabels": {"a": 1}}},
         "spec.namespaceSelector.matchLabels"),
        ({"accountId": A_ID, "roleArn": ROLE_A, "namespaces": [], "region": "x"}, "spec.region"),
    ],
)
def test_parse_errors_name_the_field(spec: dict[str, Any], field_path: str) -> None:
    with pytest.raises(AccountError) as caught:
        parse_account(account_obj("bad", **spec))
    assert any(e.startswith(f"{field_path}:") for e in caught.value.errors), caught.value.errors


# --- which account a namespace uses -----------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        ("team-a", {}, "a"),  # listed by name
        ("team-a", {"aws-account": "x"}, "a"),
        ("team-b", {"aws-account": "b"}, "b"),  # selected by label
        ("team-c", {"aws-account": "c"}, ""),  # nobody serves it: the operator's own account
        ("team-c", {}, ""),
    ],
)
def test_choose(namespace: str, labels: dict[str, str], expected: str) -> None:
    choice = choose([A, B], namespace, labels)
    assert (choice.key, choice.problem) == (expected, "")
    assert (choice.account.account_id if choice.account else "") == {
        "a": A_ID, "b": B_ID, "": ""
    }[expected]


def test_a_namespace_served_twice_gets_no_account() -> None:
    choice = choose([A, B], "team-a", {"aws-account": "b"})
    assert choice.account is None and choice.problem
    assert "served by 2 IAMAccounts: a (111111111111), b (222222222222)" in choice.problem


def test_an_unreadable_account_leaves_every_namespace_without_one() -> None:
    # Its namespaces are unknown: the default account could be the wrong one for any of them.
    choice = choose([A], "team-c", {}, broken=["x: IAMAccount 'x' is invalid"])
    assert choice.account is None and "cannot be read" in choice.problem


def test_the_selector_is_the_guardrails_selector() -> None:
    every = parse_account(
        account_obj("all", accountId=A_ID, roleArn=ROLE_A, namespaceSelector={
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["prod"]}],
        })
    )
    assert every.serves("x", {}) and every.serves("x", {"tier": "dev"})
    assert not every.serves("x", {"tier": "prod"})


# --- the credential cache ---------------------------------------------------------------


@dataclass
class Clock:
    now: datetime.datetime = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


@dataclass
class FakeSTS:
    """AssumeRole as a function: numbered keys, expiring `duration_seconds` after `clock()`."""

    clock: Clock
    calls: list[str] = field(default_factory=list)
    fail: Exception | None = None
    lands_in: dict[str, str] = field(default_factory=dict)  # role ARN -> account it acts in

    def __call__(self, account: Account) -> Metadata:
        self.calls.append(account.role_arn)
        if self.fail is not None:
            raise self.fail
        expiry = self.clock() + datetime.timedelta(seconds=account.duration_seconds)
        return {
            "access_key": f"ASIA{len(self.calls):04d}",
            "secret_key": "secret",
            "token": "token",
            "expiry_time": expiry.isoformat(),
        }

    def connect(self, session: boto3.session.Session) -> Clients:
        """What clients.connect would learn from GetCallerIdentity with these credentials."""
        credentials = session.get_credentials()
        assert credentials is not None
        key = credentials.get_frozen_credentials().access_key
        arn = self.calls[-1]
        account_id = self.lands_in.get(arn, arn.split(":")[4])
        return Clients(iam=session, account_id=account_id, partition="aws",  # type: ignore[arg-type]
                       counter=CallCounter(), caller_arn=f"{arn}#{key}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sts(clock: Clock) -> FakeSTS:
    return FakeSTS(clock)


@pytest.fixture
def accounts(sts: FakeSTS, clock: Clock) -> Accounts:
    return Accounts(sts, connect_with=sts.connect, clock=clock, retry_after=30)


def signing_key(clients: Clients) -> str:
    session: Any = clients.iam  # FakeSTS.connect keeps the session there
    return str(session.get_credentials().get_frozen_credentials().access_key)


def test_one_assume_role_per_account_however_often_asked(accounts: Accounts, sts: FakeSTS) -> None:
    first = accounts.clients(A)
    assert all(accounts.clients(A) is first for _ in range(100))
    assert sts.calls == [ROLE_A] and accounts.assumed == {"a": 1}


def test_each_account_has_its_own_clients_and_credentials(accounts: Accounts, sts: FakeSTS) -> None:
    a, b = accounts.clients(A), accounts.clients(B)
    assert (a.account_id, b.account_id) == (A_ID, B_ID)
    assert signing_key(a) != signing_key(b)
    assert sts.calls == [ROLE_A, ROLE_B]


def test_credentials_are_refreshed_before_they_expire(
    accounts: Accounts, sts: FakeSTS, clock: Clock
) -> None:
    clients = accounts.clients(A)  # 3600 s credentials
    assert signing_key(clients) == "ASIA0001"
    clock.advance(3600 - 15 * 60 - 1)  # just outside botocore's advisory window: still valid
    assert signing_key(clients) == "ASIA0001" and len(sts.calls) == 1
    clock.advance(2)  # inside it: refreshed on the next use, by the same session
    assert signing_key(clients) == "ASIA0002" and len(sts.calls) == 2
    assert accounts.clients(A) is clients  # the cache keeps the clients; only keys rotate
    clock.advance(3600 - 15 * 60 + 1)  # and again for the second set
    assert signing_key(clients) == "ASIA0003" and accounts.assumed == {"a": 3}


def test_a_failed_refresh_keeps_the_valid_credentials_until_the_mandatory_window(
    accounts: Accounts, sts: FakeSTS, clock: Clock
) -> None:
    clients = accounts.clients(A)
    sts.fail = TerminalError("AssumeRole", "AccessDenied", "trust revoked")
    clock.advance(3600 - 14 * 60)  # advisory window: the refresh fails, the old key still works
    assert signing_key(clients) == "ASIA0001"
    clock.advance(5 * 60)  # mandatory window (10 min left): the failure reaches the caller
    with pytest.raises(TerminalError, match="trust revoked"):
        signing_key(clients)


def test_a_failed_assume_role_is_remembered_then_retried(
    accounts: Accounts, sts: FakeSTS, clock: Clock
) -> None:
    sts.fail = TerminalError(
        "AssumeRole", "AccessDenied",
        f"User: arn:aws:sts::123456789012:assumed-role/op/x is not authorized to perform: "
        f"sts:AssumeRole on resource: {ROLE_A}",
    )
    for _ in range(50):  # fifty objects of the account: one STS call
        with pytest.raises(AccountUnavailable) as caught:
            accounts.clients(A)
    assert len(sts.calls) == 1
    message = caught.value.aws_message
    assert message.startswith(f"cannot assume {ROLE_A} for IAMAccount 'a' (account {A_ID}): ")
    assert "AccessDenied: User: arn:aws:sts::123456789012:assumed-role/op/x is not authorized" in (
        message
    )
    clock.advance(29)
    with pytest.raises(AccountUnavailable):
        accounts.clients(A)
    assert len(sts.calls) == 1
    sts.fail = None  # trust fixed
    clock.advance(2)
    assert accounts.clients(A).account_id == A_ID and len(sts.calls) == 2


def test_a_failing_account_does_not_affect_another(accounts: Accounts, sts: FakeSTS) -> None:
    sts.fail = TerminalError("AssumeRole", "AccessDenied", "no")
    with pytest.raises(AccountUnavailable):
        accounts.clients(A)
    sts.fail = None
    assert accounts.clients(B).account_id == B_ID


def test_a_transient_sts_failure_stays_retryable(accounts: Accounts, sts: FakeSTS) -> None:
    sts.fail = RetryableError("AssumeRole", "Throttling", "Rate exceeded")
    with pytest.raises(RetryableError) as caught:
        accounts.clients(A)
    assert not isinstance(caught.value, TerminalError)
    assert "Throttling: Rate exceeded" in caught.value.aws_message


def test_a_changed_spec_is_assumed_afresh(accounts: Accounts, sts: FakeSTS) -> None:
    before = accounts.clients(A)
    changed = replace(A, external_id="new-ext")
    after = accounts.clients(changed)
    assert after is not before and len(sts.calls) == 2
    assert accounts.clients(changed) is after


def test_a_failure_is_forgotten_when_the_spec_changes(accounts: Accounts, sts: FakeSTS) -> None:
    sts.fail = TerminalError("AssumeRole", "AccessDenied", "no")
    with pytest.raises(AccountUnavailable):
        accounts.clients(A)
    sts.fail = None
    fixed = replace(A, role_arn=f"arn:aws:iam::{A_ID}:role/other")
    assert accounts.clients(fixed).account_id == A_ID  # no wait for retry_after


def test_a_role_acting_in_another_account_is_refused(accounts: Accounts, sts: FakeSTS) -> None:
    sts.lands_in[ROLE_A] = B_ID
    with pytest.raises(AccountUnavailable, match=f"acts in account {B_ID}, not {A_ID}"):
        accounts.clients(A)


def test_forget_drops_the_clients(accounts: Accounts, sts: FakeSTS) -> None:
    accounts.clients(A)
    accounts.forget("a")
    assert accounts.credentials("a") is None
    accounts.clients(A)
    assert len(sts.calls) == 2


@pytest.fixture(autouse=True)
def _no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The boto3 session built for an account must never fall back to ambient credentials.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    yield


# --- plan: the same mapping, offline ------------------------------------------------------

ROLE_SPEC = {"assumeRolePolicy": {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}


def _plan_input(tmp_path: Any, account_id: str = A_ID) -> Any:
    import yaml

    docs = [
        account_obj("a", accountId=account_id, roleArn=f"arn:aws:iam::{account_id}:role/rk",
                    namespaceSelector={"matchLabels": {"aws": "a"}}),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"aws": "a"}}},
        {"apiVersion": "iam.rolekeeper.dev/v1alpha1", "kind": "IAMRole",
         "metadata": {"name": "web", "namespace": "shop"}, "spec": ROLE_SPEC},
    ]
    path = tmp_path / "in.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def _snapshot_file(tmp_path: Any, account_id: str) -> Any:
    import json

    from controller.kinds.snapshot import AccountSnapshot, file_json

    path = tmp_path / f"{account_id}.json"
    path.write_text(json.dumps(file_json(AccountSnapshot(), account_id, "aws", "now")))
    return path


def test_the_input_collects_iamaccount_objects(tmp_path: Any) -> None:
    from controller.review import manifests

    found = manifests.load([str(_plan_input(tmp_path))])
    assert [m.obj["metadata"]["name"] for m in found.accounts] == ["a"]
    assert [m.kind for m in found.manifests] == ["IAMRole"] and found.ignored == []
    assert parse_account(found.accounts[0].obj).serves("shop", found.namespaces["shop"])


def test_plan_reads_an_iamaccount_namespace_in_that_account(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller import cli

    code = cli.main(["plan", str(_plan_input(tmp_path)), "--snapshot",
                     str(_snapshot_file(tmp_path, A_ID)), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"1 object(s) planned in account {A_ID} (IAMAccount a)" in err
    assert '"create"' in out


def test_plan_refuses_a_snapshot_of_another_account(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller import cli

    code = cli.main(["plan", str(_plan_input(tmp_path)), "--snapshot",
                     str(_snapshot_file(tmp_path, B_ID))])
    assert code == 1
    assert f"is of account {B_ID}; IAMAccount a is account {A_ID}" in capsys.readouterr().err


def test_plan_judges_the_accounts_guardrail_with_the_namespace_account(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from controller import cli

    rails = tmp_path / "guardrails.yaml"
    rails.write_text(yaml.safe_dump({
        "apiVersion": "iam.rolekeeper.dev/v1alpha1", "kind": "IAMGuardrail",
        "metadata": {"name": "pinned"},
        "spec": {"namespaceSelector": {"matchLabels": {"aws": "a"}}, "accounts": [B_ID]},
    }))
    code = cli.main(["plan", str(_plan_input(tmp_path)), "--guardrails", str(rails),
                     "--snapshot", str(_snapshot_file(tmp_path, A_ID))])
    out = capsys.readouterr().out
    assert code == 1
    assert f"rule accounts (deny): metadata.namespace 'shop' uses AWS account {A_ID}" in out


def test_the_operator_policy_may_assume_exactly_the_iamaccount_roles() -> None:
    from controller.core.awspolicy import operator_policy

    def assumes(document: dict[str, Any]) -> list[Any]:
        return [s for s in document["Statement"] if "sts:AssumeRole" in str(s.get("Action"))]

    assert assumes(operator_policy([])) == []  # no IAMAccount: nothing to assume
    (statement,) = assumes(operator_policy([], assume_roles=[ROLE_B, ROLE_A]))
    assert statement["Effect"] == "Allow" and statement["Resource"] == [ROLE_A, ROLE_B]
