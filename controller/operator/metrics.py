"""Prometheus metrics: what the operator did, what AWS answered, and how old its view of AWS is.

Names follow Prometheus conventions (`_total` counters, `_seconds` units). Labels are bounded
sets (kinds, results, reasons, IAM operation names, error codes), never object names, so the
series count does not grow with the number of managed objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.aws import budget

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "rolekeeper_reconcile_total",
    "Reconcile attempts by kind (IAMRole/IAMUser), trigger (change/drift/delete) and result "
    "(synced, deleted, retry, or the lower-cased Ready reason: invalidspec, conflict, awserror).",
    ["kind", "trigger", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "rolekeeper_reconcile_duration_seconds",
    "Wall time of one reconcile or finalize, AWS calls included.",
    ["kind", "trigger"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
AWS_CALLS = Counter(
    "rolekeeper_aws_api_calls_total",
    "IAM API calls (every attempt, retries included) by operation and error code ('' = success).",
    ["operation", "code"],
    registry=REGISTRY,
)
DRIFT_CORRECTIONS = Counter(
    "rolekeeper_drift_corrections_total",
    "Out-of-band changes reverted, by kind and by the IAM operation that reverted them.",
    ["kind", "operation"],
    registry=REGISTRY,
)
OBJECTS = Gauge(
    "rolekeeper_objects",
    "Managed objects by kind and Ready reason (Synced, AWSError, Conflict, ...).",
    ["kind", "reason"],
    registry=REGISTRY,
)
FINDINGS = Gauge(
    "rolekeeper_findings",
    "Unsuppressed security findings on managed objects, by severity and finding id "
    "(docs/findings.md); both label sets are fixed by the rule catalogue.",
    ["severity", "id"],
    registry=REGISTRY,
)
SNAPSHOT_AGE = Gauge(
    "rolekeeper_snapshot_age_seconds",
    "Seconds since the shared account snapshot used for drift checks was taken.",
    registry=REGISTRY,
)

# Event-driven drift (docs/drift.md): CloudTrail's IAM events read from SQS.
EVENTS_RECEIVED = Counter(
    "rolekeeper_drift_events_received_total",
    "Messages received from the events queue (--events-queue-url), redeliveries included.",
    registry=REGISTRY,
)
EVENTS = Counter(
    "rolekeeper_drift_events_total",
    "Messages handled, by outcome: matched (a check of a managed entity was requested), "
    "ignored_own (a call by the operator's own identity), ignored_unmanaged (no managed entity "
    "touched, or a read), ignored_failed (the call failed: nothing changed), unparseable (not a "
    "readable IAM CloudTrail event).",
    ["outcome"],
    registry=REGISTRY,
)
EVENTS_DEAD_LETTERED = Counter(
    "rolekeeper_drift_events_dead_lettered_total",
    "Unparseable messages forwarded to --events-dead-letter-queue-url (then deleted).",
    registry=REGISTRY,
)
EVENT_ERRORS = Counter(
    "rolekeeper_drift_event_errors_total",
    "Failures of the events consumer by stage: receive, delete, dead_letter (SQS calls; "
    "polling backs off, a message not deleted comes back) and check (requesting a check "
    "failed; the message is left to come back).",
    ["stage"],
    registry=REGISTRY,
)
EVENT_CHECKS = Counter(
    "rolekeeper_drift_event_checks_total",
    "Checks of managed objects requested by events, by kind.",
    ["kind"],
    registry=REGISTRY,
)
EVENT_DELAY = Histogram(
    "rolekeeper_drift_event_delay_seconds",
    "Seconds from a matched message's arrival in the queue (SentTimestamp) to its checks being "
    "requested.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)

OUT_OF_SYNC = Gauge(
    "rolekeeper_out_of_sync_objects",
    "Observe-only objects (managementPolicy: Observe) whose AWS entity differs from the spec or "
    "does not exist, by kind: what flipping them to Manage would change.",
    ["kind"],
    registry=REGISTRY,
)


class BudgetCollector(Collector):
    """The account-wide IAM call budgets (`controller.aws.budget`), read at scrape time, by
    AWS account id (one series per account the operator uses: bounded by the IAMAccounts)."""

    def __init__(self, stats: Callable[[], list[budget.BudgetStats]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        waited = CounterMetricFamily(
            "rolekeeper_aws_budget_wait_seconds",
            "Seconds IAM call attempts spent waiting for the account's call budget "
            "(--aws-max-calls-per-second), summed; its rate is the mean number of waiting calls.",
            labels=["account"],
        )
        waits = CounterMetricFamily(
            "rolekeeper_aws_budget_waits",
            "IAM call attempts that had to wait for the account's call budget.",
            labels=["account"],
        )
        waiting = GaugeMetricFamily(
            "rolekeeper_aws_budget_waiting_calls",
            "IAM call attempts waiting for the account's call budget right now.",
            labels=["account"],
        )
        tokens = GaugeMetricFamily(
            "rolekeeper_aws_budget_tokens",
            "Calls the account's budget allows at once right now (at most --aws-call-burst; "
            "negative: slots already promised to waiting calls).",
            labels=["account"],
        )
        rate = GaugeMetricFamily(
            "rolekeeper_aws_budget_calls_per_second",
            "The account's IAM call budget (--aws-max-calls-per-second); no series: unlimited.",
            labels=["account"],
        )
        by_account: dict[str, list[budget.BudgetStats]] = {}
        for found in self._stats():
            by_account.setdefault(found.account_id, []).append(found)
        for account, found_all in sorted(by_account.items()):
            waited.add_metric([account], sum(s.waited_seconds for s in found_all))
            waits.add_metric([account], sum(s.waits for s in found_all))
            waiting.add_metric([account], sum(s.waiting for s in found_all))
            tokens.add_metric([account], min(s.tokens for s in found_all))
            rate.add_metric([account], min(s.rate for s in found_all))
        yield from (waited, waits, waiting, tokens, rate)


REGISTRY.register(BudgetCollector(budget.BUDGETS.stats))


def record_aws_call(operation: str, code: str) -> None:
    AWS_CALLS.labels(operation=operation, code=code).inc()


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Expose /metrics on a background thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)
