"""CloudTrail IAM events as EventBridge delivers them to SQS, for tests that send them themselves.

moto emits no CloudTrail or EventBridge events, so the aws and e2e tiers put these documents
into moto's SQS queue by hand. Each fixture in `tests/data/cloudtrail/` is shaped exactly like
AWS's published samples (EventBridge's envelope around a CloudTrail record: userIdentity with
its sessionContext, requestParameters, recipientAccountId, ...); `event` reuses one with the
names a test needs.
"""

from __future__ import annotations

import copy
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "cloudtrail"
NAMES = tuple(sorted(p.stem for p in FIXTURES.glob("*.json")))


@cache
def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def load(name: str) -> dict[str, Any]:
    """A fresh copy of fixture `name` ("put-role-policy")."""
    return copy.deepcopy(_load(name))


def event(
    name: str, *, user_arn: str | None = None, fresh_id: bool = True, **parameters: Any
) -> dict[str, Any]:
    """Fixture `name` with `parameters` replacing its requestParameters' values (roleName=...);
    `user_arn` makes the caller that IAM user (userIdentity as CloudTrail writes it for one)."""
    doc = load(name)
    detail = doc["detail"]
    detail["requestParameters"].update(parameters)
    if user_arn is not None:
        account = user_arn.split(":")[4]
        detail["userIdentity"] = {
            "type": "IAMUser",
            "principalId": "AIDACKCEVSQ6C2EXAMPLE",
            "arn": user_arn,
            "accountId": account,
            "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "userName": user_arn.rsplit("/", 1)[-1],
        }
    if fresh_id:  # EventBridge and CloudTrail give every delivery its own ids
        doc["id"] = str(uuid.uuid4())
        detail["eventID"] = str(uuid.uuid4())
    return doc


def body(doc: dict[str, Any]) -> str:
    """The SQS message body EventBridge writes for an event: the event as JSON."""
    return json.dumps(doc)
