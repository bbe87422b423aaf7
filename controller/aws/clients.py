"""boto3 plumbing: one session, IAM/STS clients with adaptive retries, caller identity, call counts.

Endpoints, credentials and region come from boto3's standard chain (AWS_ENDPOINT_URL_IAM,
AWS_PROFILE, IRSA web identity, ...), so nothing here knows whether AWS is real or a local
emulator. Every IAM call is counted through a botocore event hook: metrics and tests read the
same counter, and the operator's own code never has to remember to count.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ConnectionError, HTTPClientError

from controller.aws.budget import BUDGETS, Budget, Budgets
from controller.core.errors import is_transient
from controller.settings import DEFAULTS, AWSSettings

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

CallListener = Callable[[str, str], None]  # (operation, error code or "") after each IAM call


@dataclass
class CallCounter:
    """Thread-safe tally of IAM calls by operation, and of errors by (operation, code)."""

    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    listeners: list[CallListener] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, error_code: str) -> None:
        with self._lock:
            self.calls[operation] += 1
            if error_code:
                self.errors[(operation, error_code)] += 1
        for listener in self.listeners:
            listener(operation, error_code)

    def total(self, writes_only: bool = False) -> int:
        with self._lock:
            return sum(
                n
                for op, n in self.calls.items()
                if not writes_only or not op.startswith(("Get", "List"))
            )

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)


@dataclass(frozen=True)
class Clients:
    """What reconcile needs to talk to one AWS account."""

    iam: IAMClient
    account_id: str
    partition: str
    counter: CallCounter
    caller_arn: str = ""  # who Rolekeeper is in AWS (sts:GetCallerIdentity)
    budget: Budget | None = None  # the account's IAM call budget every attempt spends (None: 0)


def client_config(settings: AWSSettings = DEFAULTS.aws) -> Config:
    # Adaptive mode adds client-side rate limiting on throttles: a burst of reconciles slows
    # down together instead of each retrying at full speed (the retry storm peers suffer from).
    return Config(
        retries={"mode": "adaptive", "max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_pool_connections=settings.max_pool_connections,
        user_agent_extra="rolekeeper",
    )


def connect(
    session: boto3.session.Session | None = None,
    settings: AWSSettings = DEFAULTS.aws,
    budgets: Budgets = BUDGETS,
) -> Clients:
    """Build IAM/STS clients from the standard chain and resolve the account id and partition.

    The IAM client spends the account's budget (`settings.max_calls_per_second`), shared with
    every other client of the same account drawn from `budgets`."""
    session = session or boto3.session.Session()
    region = session.region_name or "us-east-1"  # IAM is global; STS needs some region
    config = client_config(settings)
    iam = session.client("iam", region_name=region, config=config)
    sts = session.client("sts", region_name=region, config=config)
    for client in (iam, sts):
        client.meta.events.register("before-parse", _generic_server_error)
        # Registered after botocore's own retry handler, so it only decides when that one
        # declined (the first non-None answer to needs-retry wins).
        client.meta.events.register("needs-retry", _retry_past_quota(settings.max_attempts))
    identity = sts.get_caller_identity()
    arn = identity["Arn"]
    counter = CallCounter()
    count_calls(iam, counter)
    budget = budgets.get(identity["Account"], settings)
    if budget is not None:
        budget.attach(iam)
    return Clients(
        iam=iam,
        account_id=identity["Account"],
        partition=arn.split(":")[1] if arn.startswith("arn:") else "aws",
        counter=counter,
        caller_arn=arn,
        budget=budget,
    )


def _generic_server_error(response_dict: dict[str, Any], **_: Any) -> None:
    """Give a 5xx that is not IAM's XML error (a load balancer's or proxy's text or HTML page) an
    empty body: botocore then treats it as a generic server error and retries it like any 5xx,
    where the page would make its parser raise ResponseParserError, which nothing retries."""
    if int(response_dict.get("status_code") or 0) < 500:
        return
    if b"<Error>" not in (response_dict.get("body") or b""):
        response_dict["body"] = b""


def _retry_past_quota(max_attempts: int) -> Callable[..., Any]:
    """Keep retrying transient failures after botocore's retry quota is spent.

    botocore stops retrying once its per-client quota is gone (500 tokens, 14 per retried 5xx
    or reset, 1 back per clean call): under a sustained error rate of about 10% or more that
    happens within a few dozen calls, and every reconcile would then need all of its ten or so
    calls to succeed in one go, re-reading everything on each handler retry — more calls to a
    struggling AWS, not fewer, and minutes to converge. Past the quota each call keeps its own
    jittered exponential backoff (botocore's formula, same attempt limit); the worker pool
    bounds how many calls wait at once, and adaptive mode still slows everyone on throttling.
    """

    def needs_retry(
        response: Any = None, caught_exception: Any = None, attempts: int = 1, **_: Any
    ) -> float | None:
        if attempts >= max_attempts:
            return None
        if caught_exception is not None:
            transient = isinstance(caught_exception, ConnectionError | HTTPClientError)
        elif response is not None:
            http_response, parsed = response
            code = (parsed.get("Error") or {}).get("Code", "") if isinstance(parsed, dict) else ""
            transient = is_transient(code, int(http_response.status_code))
        else:
            transient = False
        return random.uniform(0.0, min(20.0, 2.0 ** (attempts - 1))) if transient else None

    return needs_retry


def count_calls(client: Any, counter: CallCounter) -> None:
    """Register a hook that records every API call (each retry attempt counts: that is what AWS
    sees and bills against the rate limit)."""

    def on_response(http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
        code = ""
        if isinstance(parsed, dict):
            code = parsed.get("Error", {}).get("Code", "") or ""
        if (
            not code
            and http_response is not None
            and getattr(http_response, "status_code", 200) >= 500
        ):
            code = str(http_response.status_code)
        counter.record(model.name, code)

    def on_exception(exception: Any, model: Any = None, **_: Any) -> None:
        # Connection-level failures never produce a response; still one attempt made.
        if exception is not None and model is not None:
            counter.record(model.name, type(exception).__name__)

    events = client.meta.events
    events.register("needs-retry.iam", _retry_observer(on_response, on_exception))


def _retry_observer(
    on_response: Callable[..., None], on_exception: Callable[..., None]
) -> Callable[..., None]:
    """`needs-retry` fires once per attempt with either a response or an exception."""

    def observe(
        response: Any = None, caught_exception: Any = None, operation: Any = None, **_: Any
    ) -> None:
        if response is not None:
            http_response, parsed = response
            on_response(http_response=http_response, parsed=parsed, model=operation)
        elif caught_exception is not None:
            on_exception(exception=caught_exception, model=operation)

    return observe


def read_only(client: Any) -> None:
    """Refuse any call but Get*/List* before it leaves the process (plan, snapshot, import)."""

    def refuse(model: Any, **_: Any) -> None:
        if not model.name.startswith(("Get", "List")):
            raise RuntimeError(
                f"read-only: refusing {model.service_model.service_name.upper()} {model.name}"
            )

    client.meta.events.register("before-call", refuse)
