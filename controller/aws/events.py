"""SQS for event-driven drift: long-poll the queue an EventBridge rule fills with CloudTrail's
IAM events, delete what was handled, forward what cannot be read to a dead-letter queue.

The only module that talks to SQS. Calls block (a long poll waits up to 20 s): the caller runs
them off its event loop. Every boto3 error leaves as a classified `AWSError`. Message bodies are
handed up as they are and never logged here: they carry CloudTrail's requestParameters, which
hold policy documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
from botocore.config import Config

from controller.aws.calls import classified
from controller.core.cloudtrail import queue_parts
from controller.settings import EventSettings

DEFAULT_REGION = "us-east-1"  # where IAM's CloudTrail events reach EventBridge
REASON_ATTRIBUTE = "rolekeeper-reason"
MESSAGE_ID_ATTRIBUTE = "rolekeeper-message-id"


class SQSClient(Protocol):
    """The three SQS calls Rolekeeper makes (boto3's client satisfies it)."""

    def receive_message(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def delete_message_batch(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def send_message(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Message:
    """One SQS message: its body is EventBridge's event, as text."""

    message_id: str
    receipt: str
    body: str
    receive_count: int = 1  # ApproximateReceiveCount: >1 when it was received before
    sent_at: float | None = None  # SentTimestamp, seconds since the epoch

    def __repr__(self) -> str:  # never the body: it may hold policy documents
        return f"Message({self.message_id!r}, receive_count={self.receive_count})"


class Queue:
    """The events queue (and its dead-letter queue, if forwarding is configured)."""

    def __init__(
        self,
        client: SQSClient,
        url: str,
        dead_letter_url: str = "",
        wait_seconds: int = 20,
        max_messages: int = 10,
    ) -> None:
        self.client = client
        self.url = url
        self.dead_letter_url = dead_letter_url
        self.wait_seconds = wait_seconds
        self.max_messages = max_messages

    def receive(self) -> list[Message]:
        """Up to `max_messages` messages, waiting up to `wait_seconds` for the first."""
        with classified("ReceiveMessage"):
            response = self.client.receive_message(
                QueueUrl=self.url,
                WaitTimeSeconds=self.wait_seconds,
                MaxNumberOfMessages=self.max_messages,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        return [_message(raw) for raw in response.get("Messages") or ()]

    def delete(self, messages: Sequence[Message]) -> list[Message]:
        """Delete handled messages in one call; returns those SQS did not delete (a receipt that
        expired: the message comes back after its visibility timeout and is handled again)."""
        if not messages:
            return []
        with classified("DeleteMessageBatch"):
            response = self.client.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(messages)
                ],
            )
        failed = {str(entry.get("Id")) for entry in response.get("Failed") or ()}
        return [m for i, m in enumerate(messages) if str(i) in failed]

    def dead_letter(self, message: Message, reason: str) -> None:
        """Copy a message to the dead-letter queue with why it could not be read (the caller
        deletes it from the queue afterwards, so nothing is lost if this fails)."""
        with classified("SendMessage"):
            self.client.send_message(
                QueueUrl=self.dead_letter_url,
                MessageBody=message.body,
                MessageAttributes={
                    REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:256] or "-"},
                    MESSAGE_ID_ATTRIBUTE: {
                        "DataType": "String",
                        "StringValue": message.message_id or "-",
                    },
                },
            )


def region_of(url: str, configured: str = "") -> str:
    """The queue's region: `configured`, else the one its URL names, else us-east-1."""
    parts = queue_parts(url)
    return configured or (parts[0] if parts else "") or DEFAULT_REGION


def connect(settings: EventSettings, session: boto3.session.Session | None = None) -> Queue:
    """A Queue on an SQS client from boto3's standard chain (AWS_ENDPOINT_URL_SQS, IRSA, ...)."""
    session = session or boto3.session.Session()
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        # A long poll answers after wait_seconds: give it that long plus some.
        read_timeout=settings.wait_seconds + 10,
        user_agent_extra="rolekeeper",
    )
    client = session.client(
        "sqs", region_name=region_of(settings.queue_url, settings.region), config=config
    )
    return Queue(
        client,
        settings.queue_url,
        settings.dead_letter_url,
        settings.wait_seconds,
        settings.max_messages,
    )


def _message(raw: Mapping[str, Any]) -> Message:
    attributes = raw.get("Attributes") or {}
    count = str(attributes.get("ApproximateReceiveCount") or "1")
    sent = str(attributes.get("SentTimestamp") or "")
    return Message(
        message_id=str(raw.get("MessageId") or ""),
        receipt=str(raw.get("ReceiptHandle") or ""),
        body=str(raw.get("Body") or ""),
        receive_count=int(count) if count.isdigit() else 1,
        sent_at=int(sent) / 1000 if sent.isdigit() else None,
    )
