"""CloudTrail IAM events (EventBridge's envelope) -> the entities a call touched.

Covers: every fixture in tests/data/cloudtrail (shaped like AWS's published samples) gives the
expected entities, by the request parameters the kinds declare: a role's inline policy put, its
trust updated, a policy attached (the role, not the policy), tags, a boundary, a user added to
a group, a policy version created (the policy, by its ARN's name), an instance profile (role and
profile), a deletion; a failed call (errorCode) and a read touch nothing; who made a call (an
assumed-role session is its role, any session of it; a user by name whatever the path; another
account is someone else); malformed, oversized, too deep, wrong-source and wrong-shape
documents give EventError and nothing else, even under random mutation; no policy document is
ever kept in an Event or quoted in an error.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from controller.core import cloudtrail
from controller.core.cloudtrail import MAX_BYTES, EventError, made_by, parse, principal
from controller.kinds import registry
from tests.harness.cloudtrail import NAMES, body, event, load

KEYS = registry.CLOUDTRAIL_KEYS
ACCOUNT = "123456789012"
OPERATOR = f"arn:aws:sts::{ACCOUNT}:assumed-role/rolekeeper/botocore-session-1"
SSO = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_0123456789abcdef"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/Alice"
POLICY_TEXT = "s3:GetObject"  # appears only inside the fixtures' policy documents


def touched(name: str) -> set[tuple[str, str]]:
    return {(t.resource_type, t.name) for t in parse(body(load(name)), KEYS).touched}


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("put-role-policy", {("roleName", "team-a-web")}),
        ("update-assume-role-policy", {("roleName", "team-a-web")}),
        # The policy is attached, not changed: only the role is touched.
        ("attach-role-policy", {("roleName", "team-a-web")}),
        ("detach-role-policy", {("roleName", "team-a-web")}),
        ("tag-role", {("roleName", "team-a-web")}),
        ("put-role-permissions-boundary", {("roleName", "team-a-web")}),
        ("add-user-to-group", {("userName", "team-a-ci")}),
        ("detach-user-policy", {("userName", "team-a-ci")}),
        # The policy by its name, its path (/platform/) dropped.
        ("create-policy-version", {("policyArn", "tenant-boundary")}),
        (
            "add-role-to-instance-profile",
            {("instanceProfileName", "team-a-web"), ("roleName", "team-b-batch")},
        ),
        ("delete-role", {("roleName", "team-a-web")}),
        ("put-role-policy-by-operator", {("roleName", "team-a-web")}),
    ],
)
def test_each_fixture_touches_what_the_call_changed(
    fixture: str, expected: set[tuple[str, str]]
) -> None:
    assert touched(fixture) == expected


def test_every_fixture_is_covered_and_parses() -> None:
    assert len(NAMES) >= 14
    for name in NAMES:
        found = parse(body(load(name)), KEYS)
        assert found.account_id == ACCOUNT and found.event_name == load(name)["detail"]["eventName"]
        assert found.event_id == load(name)["detail"]["eventID"]


def test_a_failed_call_changed_nothing() -> None:
    found = parse(body(load("put-role-policy-denied")), KEYS)
    assert found.failed and not found.read_only
    assert found.touched == ()


def test_a_read_touches_nothing() -> None:
    found = parse(body(load("get-role")), KEYS)
    assert found.read_only and not found.failed
    assert found.touched == ()


def test_a_console_user_is_the_actor_and_the_issuer() -> None:
    found = parse(body(load("put-role-policy")), KEYS)
    assert found.actor_arn == found.issuer_arn == ALICE
    assert {(t.actor_arn, t.issuer_arn, t.event_name, t.account_id) for t in found.touched} == {
        (ALICE, ALICE, "PutRolePolicy", ACCOUNT)
    }


def test_an_assumed_role_session_is_issued_by_its_role() -> None:
    found = parse(body(load("update-assume-role-policy")), KEYS)
    assert found.actor_arn.startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_")
    assert found.issuer_arn == SSO


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (OPERATOR, ("role", ACCOUNT, "rolekeeper")),
        (f"arn:aws:iam::{ACCOUNT}:role/ops/rolekeeper", ("role", ACCOUNT, "rolekeeper")),
        (f"arn:aws-cn:iam::{ACCOUNT}:role/rolekeeper", ("role", ACCOUNT, "rolekeeper")),
        (f"arn:aws:iam::{ACCOUNT}:user/ci/Alice", ("user", ACCOUNT, "Alice")),
        (f"arn:aws:sts::{ACCOUNT}:user/moto", ("user", ACCOUNT, "moto")),  # moto's own caller
        (f"arn:aws:iam::{ACCOUNT}:root", ("root", ACCOUNT, "")),
        (f"arn:aws:sts::{ACCOUNT}:federated-user/Bob", ("federated-user", ACCOUNT, "Bob")),
        ("arn:aws:iam::aws:policy/AdministratorAccess", None),
        (f"arn:aws:s3:::{ACCOUNT}", None),
        ("not an arn", None),
        ("", None),
    ],
)
def test_principal(arn: str, expected: tuple[str, str, str] | None) -> None:
    assert principal(arn) == expected


def test_the_operator_is_recognised_in_any_session_of_its_role() -> None:
    own = parse(body(load("put-role-policy-by-operator")), KEYS)
    # Another replica, another session name: the same role.
    assert made_by(own, [f"arn:aws:sts::{ACCOUNT}:assumed-role/rolekeeper/another-replica"])
    assert made_by(own, [f"arn:aws:iam::{ACCOUNT}:role/rolekeeper"])
    assert not made_by(own, ["arn:aws:sts::210987654321:assumed-role/rolekeeper/s"])
    assert not made_by(own, [f"arn:aws:sts::{ACCOUNT}:assumed-role/rolekeeper-dev/s"])
    assert not made_by(own, [])


def test_a_human_is_not_the_operator() -> None:
    for name in ("put-role-policy", "update-assume-role-policy"):
        assert not made_by(parse(body(load(name)), KEYS), [OPERATOR])


def test_an_operator_running_as_an_iam_user() -> None:
    doc = event("put-role-policy", user_arn=f"arn:aws:iam::{ACCOUNT}:user/moto")
    assert made_by(parse(body(doc), KEYS), [f"arn:aws:sts::{ACCOUNT}:user/moto"])
    assert not made_by(
        parse(body(load("put-role-policy")), KEYS), [f"arn:aws:sts::{ACCOUNT}:user/moto"]
    )


def test_an_aws_service_call_has_no_actor() -> None:
    doc = load("delete-role")
    doc["detail"]["userIdentity"] = {"type": "AWSService", "invokedBy": "iam.amazonaws.com"}
    found = parse(body(doc), KEYS)
    assert found.actor_arn == found.issuer_arn == ""
    assert not made_by(found, [OPERATOR])
    assert {(t.resource_type, t.name) for t in found.touched} == {("roleName", "team-a-web")}


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::aws:policy/AdministratorAccess",  # AWS managed: nobody's to reconcile
        "arn:aws:iam::210987654321:policy/tenant-boundary",  # another account
        f"arn:aws:iam::{ACCOUNT}:role/tenant-boundary",  # not a policy ARN
        f"arn:aws:iam::{ACCOUNT}:policy/",
        "tenant-boundary",
    ],
)
def test_a_policy_arn_of_no_policy_in_the_account_touches_nothing(arn: str) -> None:
    doc = event("create-policy-version", policyArn=arn)
    assert parse(body(doc), KEYS).touched == ()


def test_only_the_declared_keys_identify_entities() -> None:
    assert parse(body(load("put-role-policy")), ()).touched == ()
    # policyName of an inline policy is not a managed policy's name.
    assert "policyName" not in KEYS
    found = parse(body(load("put-role-policy")), {"roleName", "policyName"})
    assert {t.resource_type for t in found.touched} == {"roleName", "policyName"}


def test_names_iam_cannot_hold_are_skipped() -> None:
    doc = event("put-role-policy", roleName="has space")
    assert parse(body(doc), KEYS).touched == ()
    doc = event("put-role-policy", roleName=["team-a-web"])
    assert parse(body(doc), KEYS).touched == ()


def test_recipient_account_wins_over_the_envelope() -> None:
    doc = load("put-role-policy")
    doc["account"] = "210987654321"
    assert parse(body(doc), KEYS).account_id == ACCOUNT
    del doc["detail"]["recipientAccountId"]
    assert parse(body(doc), KEYS).account_id == "210987654321"


def test_bytes_are_read_like_text() -> None:
    assert touched("tag-role") == {
        (t.resource_type, t.name) for t in parse(body(load("tag-role")).encode(), KEYS).touched
    }


def test_no_policy_document_is_kept() -> None:
    for name in NAMES:
        raw = body(load(name))
        found = parse(raw, KEYS)
        assert POLICY_TEXT not in repr(found)
        assert "policyDocument" not in repr(found)


def _mutate(doc: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (["source"], "aws.s3", "source: expected 'aws.iam'"),
        (["source"], _DELETE, "source"),
        (["detail-type"], "AWS Console Sign In via CloudTrail", "detail-type"),
        (["detail"], _DELETE, "detail:"),
        (["detail"], "{}", "detail:"),
        (["detail", "eventSource"], "s3.amazonaws.com", "eventSource"),
        (["detail", "eventName"], _DELETE, "eventName"),
        (["detail", "eventName"], "Put Role Policy", "eventName"),
        (["detail", "eventName"], 7, "eventName"),
        (["detail", "recipientAccountId"], "12345", None),  # falls back on the envelope's
        (["detail", "requestParameters"], "roleName=x", "requestParameters"),
        (["detail", "userIdentity"], "Alice", "userIdentity"),
        (["detail", "userIdentity", "arn"], "Alice", "userIdentity.arn"),
        (["detail", "userIdentity", "arn"], "arn:" + "a" * 3000, "userIdentity.arn"),
    ],
)
def test_wrong_shapes_are_refused(path: list[str], value: Any, fragment: str | None) -> None:
    doc = _mutate(load("put-role-policy"), path, value)
    if fragment is None:
        assert parse(body(doc), KEYS).account_id == ACCOUNT
        doc["account"] = "x"
        fragment = "account"
    with pytest.raises(EventError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        parse(body(doc), KEYS)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "not JSON at line 1 column 1"),
        ('{"source": "aws.iam", "detail": {', "not JSON"),
        ("[]", "not a JSON object"),
        ("null", "not a JSON object"),
        ('"aws.iam"', "not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested deeper than 16"),
        ('{"n": ' + "9" * 5000 + "}", "not JSON"),
        ('{"n": NaN}', "not a JSON"),
        (b"\xff\xfe{}", "not JSON"),
    ],
)
def test_malformed_documents_are_refused(raw: str | bytes, fragment: str) -> None:
    with pytest.raises(EventError, match=fragment):
        parse(raw, KEYS)


def test_oversized_documents_are_refused_before_parsing() -> None:
    doc = load("put-role-policy")
    doc["detail"]["requestParameters"]["policyDocument"] = "x" * MAX_BYTES
    with pytest.raises(EventError, match="exceed the limit 262,144"):
        parse(body(doc), KEYS)
    # Counted in bytes, not characters: 100,000 three-byte characters are too many.
    doc["detail"]["requestParameters"]["policyDocument"] = "\u20ac" * 100_000
    with pytest.raises(EventError, match="bytes exceed"):
        parse(json.dumps(doc, ensure_ascii=False), KEYS)


def test_errors_never_quote_the_document() -> None:
    secret = "AKIAIOSFODNN7SECRETX"
    for path, value in [
        (["source"], secret),
        (["detail", "eventName"], secret + " x"),
        (["detail", "userIdentity", "arn"], secret),
        (["detail", "requestParameters"], secret),
    ]:
        doc = _mutate(load("put-role-policy"), path, value)
        with pytest.raises(EventError) as caught:
            parse(body(doc), KEYS)
        assert secret not in str(caught.value)
    with pytest.raises(EventError) as caught:
        parse('{"source": "' + secret + '", oops}', KEYS)
    assert secret not in str(caught.value)


_VALUES: list[Any] = [
    None,
    "",
    "x",
    0,
    -1,
    2**60,
    1.5,
    True,
    [],
    {},
    ["a"],
    {"a": "b"},
    "arn:aws:iam::123456789012:role/x",
]


def _random_mutation(rng: random.Random, doc: Any) -> None:
    """Replace or delete one value somewhere in `doc`."""
    node = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return
        key = rng.choice(keys)
        child = node[key]
        if isinstance(child, dict | list) and child and rng.random() < 0.7:
            node = child
            continue
        if isinstance(node, dict) and rng.random() < 0.3:
            del node[key]
        else:
            node[key] = copy.deepcopy(rng.choice(_VALUES))
        return


def test_random_mutations_give_an_event_or_event_error_only() -> None:
    rng = random.Random(19)
    outcomes = {"event": 0, "error": 0}
    for i in range(3000):
        doc = load(NAMES[i % len(NAMES)])
        for _ in range(rng.randint(1, 4)):
            _random_mutation(rng, doc)
        try:
            found = parse(body(doc), KEYS)
        except EventError:
            outcomes["error"] += 1
        else:
            outcomes["event"] += 1
            assert all(isinstance(t.name, str) and t.name for t in found.touched)
    # Both paths were exercised, so the property was tested on each.
    assert outcomes["event"] > 100 and outcomes["error"] > 100, outcomes


def test_the_module_exports_one_error_type() -> None:
    assert issubclass(cloudtrail.EventError, ValueError)
    assert set(cloudtrail.__all__) >= {"parse", "EventError", "Touched", "Event", "made_by"}


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("https://sqs.us-east-1.amazonaws.com/123456789012/rk", ("us-east-1", ACCOUNT, "rk")),
        ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/rk", ("cn-north-1", ACCOUNT, "rk")),
        ("https://eu-west-1.queue.amazonaws.com/123456789012/rk", ("eu-west-1", ACCOUNT, "rk")),
        (
            "https://sqs.us-east-1.amazonaws.com/123456789012/rk.fifo",
            ("us-east-1", ACCOUNT, "rk.fifo"),
        ),
        ("http://127.0.0.1:5000/123456789012/rk", ("", ACCOUNT, "rk")),
        ("https://sqs.us-east-1.amazonaws.com/rk", None),
        ("https://sqs.us-east-1.amazonaws.com/1234/rk", None),
        ("sqs.us-east-1.amazonaws.com/123456789012/rk", None),
        ("https://sqs.us-east-1.amazonaws.com/123456789012/has space", None),
        ("", None),
    ],
)
def test_queue_parts(url: str, parts: tuple[str, str, str] | None) -> None:
    assert cloudtrail.queue_parts(url) == parts
