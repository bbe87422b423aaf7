"""The events consumer against moto's SQS on the moto server, over HTTP.

moto emits no CloudTrail events: each test sends EventBridge-shaped CloudTrail documents
(tests/data/cloudtrail) to the queue itself, as the EventBridge rule would.

Covers: a long poll receives what was sent, a call on a managed entity asks for its check (with
the right account, kind and name) and is deleted; the operator's own calls, failed calls and
calls on unmanaged entities are deleted without a check; an unreadable message is forwarded to
the dead-letter queue with its reason and deleted, or, without a dead-letter URL, left for the
queue's redrive policy (moto moves it after maxReceiveCount); a failing check leaves the message
to come back; each outcome is counted in the metrics; SQS errors back off and polling recovers;
stop() does not wait for a long poll; no message body reaches the log; the queue's region.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from controller.aws import events as sqs_events
from controller.aws.events import Queue, region_of
from controller.core.errors import AWSError
from controller.operator import metrics
from controller.operator.events import Consumer
from controller.settings import EventSettings
from tests.harness import moto
from tests.harness.cloudtrail import body, event, load

pytestmark = pytest.mark.aws

ACCOUNT = "123456789012"
OPERATOR = f"arn:aws:sts::{ACCOUNT}:assumed-role/rolekeeper/botocore-session-9"
MANAGED = {("IAMRole", "team-a-web"), ("IAMUser", "team-a-ci"), ("IAMPolicy", "tenant-boundary")}
SECRET = "s3:GetObject"  # inside every fixture's policy document: must never be logged
_queues = itertools.count()


@pytest.fixture
def sqs(moto_server: moto.MotoServer) -> Any:
    return boto3.session.Session().client(
        "sqs", region_name="us-east-1", endpoint_url=moto_server.url
    )


@pytest.fixture
def queues(sqs: Any) -> Iterator[tuple[str, str]]:
    """(queue URL, dead-letter queue URL): the queue redrives to the DLQ after 2 receives."""
    n = next(_queues)
    dead = sqs.create_queue(QueueName=f"rk-events-dlq-{n}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=f"rk-events-{n}",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    yield url, dead
    for queue in (url, dead):
        sqs.delete_queue(QueueUrl=queue)


class Checks:
    """The drift queue's request_check, as the operator's Runtime offers it: records each call
    and answers how many managed objects it queued (1 for a managed name, else 0)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str, str]] = []
        self.fail = fail

    def __call__(self, account_id: str, kind: str, aws_name: str, why: str) -> int:
        self.calls.append((account_id, kind, aws_name, why))
        if self.fail:
            raise RuntimeError("the drift queue is gone")
        return int((kind, aws_name) in MANAGED)


def consumer(
    sqs: Any, url: str, dead: str = "", checks: Checks | None = None, wait: int = 1
) -> Consumer:
    queue = Queue(sqs, url, dead, wait_seconds=wait)
    return Consumer(queue, checks or Checks(), lambda: [OPERATOR], max_backoff=0.2)


def send(sqs: Any, url: str, *docs: dict[str, Any] | str) -> None:
    for doc in docs:
        sqs.send_message(QueueUrl=url, MessageBody=doc if isinstance(doc, str) else body(doc))


def poll_all(c: Consumer, expected: int, timeout: float = 15.0) -> list[str]:
    """Poll until `expected` messages were handled (moto may spread them over receives)."""
    outcomes: list[str] = []
    deadline = time.monotonic() + timeout
    while len(outcomes) < expected and time.monotonic() < deadline:
        outcomes += asyncio.run(c.poll())
    return outcomes


def remaining(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def counts() -> dict[str, float]:
    def value(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    found = {
        outcome: value("rolekeeper_drift_events_total", outcome=outcome)
        for outcome in (
            "matched",
            "ignored_own",
            "ignored_unmanaged",
            "ignored_failed",
            "unparseable",
        )
    }
    found["received"] = value("rolekeeper_drift_events_received_total")
    found["dead_lettered"] = value("rolekeeper_drift_events_dead_lettered_total")
    for stage in ("receive", "delete", "dead_letter", "check"):
        found[f"error_{stage}"] = value("rolekeeper_drift_event_errors_total", stage=stage)
    found["checks_role"] = value("rolekeeper_drift_event_checks_total", kind="IAMRole")
    found["delays"] = value("rolekeeper_drift_event_delay_seconds_count")
    return found


def delta(before: dict[str, float]) -> dict[str, float]:
    after = counts()
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def test_each_kind_of_message_is_handled_counted_and_deleted(
    sqs: Any, queues: tuple[str, str]
) -> None:
    url, dead = queues
    checks = Checks()
    c = consumer(sqs, url, dead, checks)
    before = counts()
    send(
        sqs,
        url,
        load("put-role-policy"),  # a console user edits a managed role's inline policy
        load("add-user-to-group"),  # ... adds a managed user to a group
        load("create-policy-version"),  # ... a new version of a managed policy
        event("tag-role", roleName="someone-elses-role"),  # unmanaged
        load("put-role-policy-by-operator"),  # the operator itself
        load("put-role-policy-denied"),  # refused: changed nothing
        load("get-role"),  # a read
    )
    outcomes = poll_all(c, 7)
    assert sorted(outcomes) == sorted(
        ["matched"] * 3
        + ["ignored_unmanaged", "ignored_own", "ignored_failed", "ignored_unmanaged"]
    )
    assert {(a, k, n) for a, k, n, _ in checks.calls} == {
        (ACCOUNT, "IAMRole", "team-a-web"),
        (ACCOUNT, "IAMUser", "team-a-ci"),
        (ACCOUNT, "IAMPolicy", "tenant-boundary"),
        (ACCOUNT, "IAMRole", "someone-elses-role"),
    }
    why = next(w for _, k, n, w in checks.calls if n == "team-a-web")
    assert why == f"PutRolePolicy by arn:aws:iam::{ACCOUNT}:user/Alice (CloudTrail)"
    assert remaining(sqs, url) == 0 and remaining(sqs, dead) == 0
    assert delta(before) == {
        "received": 7,
        "matched": 3,
        "ignored_unmanaged": 2,
        "ignored_own": 1,
        "ignored_failed": 1,
        "checks_role": 1,
        "delays": 3,
    }


def test_an_instance_profile_event_checks_both_roles_once(
    sqs: Any, queues: tuple[str, str]
) -> None:
    url, _ = queues
    checks = Checks()
    send(sqs, url, load("add-role-to-instance-profile"))
    assert poll_all(consumer(sqs, url, checks=checks), 1) == ["matched"]
    # The profile team-a-web is the managed role team-a-web's; team-b-batch is unmanaged.
    assert sorted((k, n) for _, k, n, _ in checks.calls) == [
        ("IAMRole", "team-a-web"),
        ("IAMRole", "team-b-batch"),
    ]


def test_unreadable_messages_go_to_the_dead_letter_queue_with_the_reason(
    sqs: Any, queues: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, dead = queues
    before = counts()
    wrong_source = load("put-role-policy") | {"source": "aws.s3"}
    send(sqs, url, "{not json " + SECRET, body(wrong_source))
    with caplog.at_level(logging.DEBUG, logger="controller"):
        assert poll_all(consumer(sqs, url, dead), 2) == ["unparseable"] * 2
    assert remaining(sqs, url) == 0
    forwarded = sqs.receive_message(
        QueueUrl=dead, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    )["Messages"]
    reasons = {
        m["Body"][:10]: m["MessageAttributes"]["rolekeeper-reason"]["StringValue"]
        for m in forwarded
    }
    assert reasons["{not json "].startswith("not JSON")
    assert "source: expected 'aws.iam'" in reasons[body(wrong_source)[:10]]
    assert all(m["MessageAttributes"]["rolekeeper-message-id"]["StringValue"] for m in forwarded)
    assert {m["Body"] for m in forwarded} == {"{not json " + SECRET, body(wrong_source)}
    assert delta(before) == {"received": 2, "unparseable": 2, "dead_lettered": 2}
    assert "is not a readable IAM event" in caplog.text
    assert SECRET not in caplog.text


def test_without_a_dead_letter_url_the_redrive_policy_moves_them(
    sqs: Any, queues: tuple[str, str]
) -> None:
    url, dead = queues
    c = consumer(sqs, url)  # no dead-letter URL
    before = counts()
    send(sqs, url, "[]")
    assert poll_all(c, 1) == ["unparseable"]
    assert remaining(sqs, url) == 1  # left in the queue, not deleted
    time.sleep(1.2)  # its visibility timeout
    assert poll_all(c, 1) == ["unparseable"]  # received a second time: maxReceiveCount
    time.sleep(1.2)
    assert asyncio.run(c.poll()) == []  # moto's redrive moved it on the third receive
    moved = sqs.receive_message(QueueUrl=dead, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in moved] == ["[]"]
    assert delta(before) == {"received": 2, "unparseable": 2}


def test_a_failed_check_leaves_the_message_to_come_back(sqs: Any, queues: tuple[str, str]) -> None:
    url, _ = queues
    before = counts()
    send(sqs, url, load("put-role-policy"))
    assert poll_all(consumer(sqs, url, checks=Checks(fail=True)), 1) == ["error"]
    assert delta(before) == {"received": 1, "error_check": 1}
    time.sleep(1.2)  # visibility timeout: it comes back, and a working check handles it
    checks = Checks()
    assert poll_all(consumer(sqs, url, checks=checks), 1) == ["matched"]
    assert [n for _, _, n, _ in checks.calls] == ["team-a-web"]
    assert remaining(sqs, url) == 0


def test_a_receipt_sqs_refuses_is_reported_not_raised(sqs: Any, queues: tuple[str, str]) -> None:
    url, _ = queues
    queue = Queue(sqs, url)
    send(sqs, url, load("tag-role"))
    received = queue.receive()
    bogus = sqs_events.Message("x", "not-a-receipt", "{}")
    assert queue.delete([*received, bogus]) == [bogus]
    assert remaining(sqs, url) == 0


def test_sqs_errors_back_off_and_polling_recovers(sqs: Any, moto_server: moto.MotoServer) -> None:
    name = f"rk-events-late-{next(_queues)}"
    url = f"{moto_server.url}/{ACCOUNT}/{name}"  # does not exist yet
    checks = Checks()
    c = consumer(sqs, url, checks=checks)
    before = counts()
    with pytest.raises(AWSError):
        asyncio.run(c.poll())

    async def scenario() -> None:
        c.start()
        await asyncio.sleep(1.0)  # several failed polls, backing off (at most 0.2 s apart)
        assert c.failures >= 2
        await asyncio.to_thread(sqs.create_queue, QueueName=name)
        await asyncio.to_thread(send, sqs, url, load("put-role-policy"))
        deadline = time.monotonic() + 15
        while not checks.calls and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await c.stop()

    asyncio.run(scenario())
    assert [n for _, _, n, _ in checks.calls] == ["team-a-web"]
    assert c.failures == 0
    found = delta(before)
    assert found["error_receive"] >= 3 and found["matched"] == 1
    sqs.delete_queue(QueueUrl=url)


def test_stop_does_not_wait_for_a_long_poll(sqs: Any, queues: tuple[str, str]) -> None:
    url, _ = queues
    c = consumer(sqs, url, wait=20)

    async def scenario() -> float:
        c.start()
        await asyncio.sleep(0.5)  # the long poll is under way
        started = time.monotonic()
        await c.stop()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0


def test_connect_follows_the_standard_chain(
    moto_server: moto.MotoServer, queues: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, dead = queues
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_server.url)
    queue = sqs_events.connect(EventSettings(queue_url=url, dead_letter_url=dead, wait_seconds=1))
    assert (queue.url, queue.dead_letter_url, queue.wait_seconds, queue.max_messages) == (
        url,
        dead,
        1,
        10,
    )
    assert queue.client.meta.region_name == "us-east-1"  # type: ignore[attr-defined]
    boto3.session.Session().client(
        "sqs", region_name="us-east-1", endpoint_url=moto_server.url
    ).send_message(QueueUrl=url, MessageBody="hello")
    received = queue.receive()
    assert [m.body for m in received] == ["hello"]
    assert received[0].receive_count == 1 and received[0].sent_at is not None
    assert "hello" not in repr(received[0])


@pytest.mark.parametrize(
    ("url", "configured", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "", "eu-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "", "cn-north-1"),
        ("https://us-west-2.queue.amazonaws.com/123456789012/q", "", "us-west-2"),
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "us-east-1", "us-east-1"),
        ("http://127.0.0.1:5000/123456789012/q", "", "us-east-1"),
    ],
)
def test_the_queue_region(url: str, configured: str, region: str) -> None:
    assert region_of(url, configured) == region


def test_a_replica_that_is_not_active_leaves_the_messages(
    sqs: Any, queues: tuple[str, str]
) -> None:
    url, _ = queues
    checks = Checks()
    active = False
    c = Consumer(Queue(sqs, url, wait_seconds=1), checks, lambda: [OPERATOR], active=lambda: active)
    send(sqs, url, load("put-role-policy"))
    before = counts()

    async def scenario() -> None:
        nonlocal active
        c.start()
        await asyncio.sleep(1.5)
        assert checks.calls == [] and delta(before) == {}  # not even received
        active = True
        deadline = time.monotonic() + 10
        while not checks.calls and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await c.stop()

    asyncio.run(scenario())
    assert [n for _, _, n, _ in checks.calls] == ["team-a-web"]
