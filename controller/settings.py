"""Every tunable of Rolekeeper in one typed tree; the CLI's flags take their defaults from here.

Grouped as the operator uses them. Each attribute says what it is for and what it costs, so a
platform team can tune without reading the code. Pure dataclasses: importing this costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DriftSettings:
    """How often AWS is compared with the objects."""

    interval: float = 60.0
    """Seconds between drift checks of each object. One account snapshot per interval is shared
    by every object's check, so the AWS cost does not grow with the number of objects."""


@dataclass(frozen=True)
class EventSettings:
    """Event-driven drift (docs/drift.md): CloudTrail's IAM events, sent by an EventBridge rule
    to an SQS queue, make the operator check a touched entity at once. Off unless `queue_url`."""

    queue_url: str = ""
    """The SQS queue the EventBridge rule writes to ("" = no events: the sweep alone)."""
    dead_letter_url: str = ""
    """Where a message that is not a readable IAM event is forwarded (then deleted), with the
    reason as a message attribute. "" = left in the queue, whose redrive policy moves it to its
    dead-letter queue after maxReceiveCount receives (no sqs:SendMessage needed)."""
    wait_seconds: int = 20
    """Long-poll wait of each ReceiveMessage (0-20): an idle queue costs one call per this many
    seconds, and a message is received as soon as it arrives."""
    max_messages: int = 10
    """Messages per ReceiveMessage (1-10, SQS's maximum)."""
    region: str = ""
    """The queue's region; "" takes it from the queue URL (sqs.<region>.amazonaws.com), else
    us-east-1, where IAM's events are delivered."""
    max_backoff: float = 60.0
    """Longest wait between polls after SQS errors (doubling from 1 s, jittered)."""


@dataclass(frozen=True)
class AWSSettings:
    """How Rolekeeper talks to AWS."""

    max_attempts: int = 8
    """Attempts per call, retries included (botocore adaptive mode, jittered backoff)."""
    connect_timeout: float = 5.0
    """Seconds to open a connection to an AWS endpoint."""
    read_timeout: float = 30.0
    """Seconds to wait for an answer."""
    max_pool_connections: int = 32
    """HTTP connections kept per client; at least the number of workers."""
    principal_window: float = 120.0
    """Seconds an "Invalid principal in policy" is treated as IAM's eventual consistency (a
    principal created a moment ago) and retried, before it is reported as an error."""
    max_calls_per_second: float = 10.0
    """Rolekeeper's budget of IAM calls per second in each AWS account, every attempt (retries
    included) of every worker counted; 0 = unlimited. IAM's own limits are per account, global
    (all regions), shared with everyone who calls IAM there (console, CI, other controllers,
    AWS services acting for the account), cannot be raised, and are not published: AWS only
    says IAM throttles with token buckets refilled each second, several per API. The one IAM
    throttle AWS documents, the account access API, is 20 calls/s for all callers together,
    and ELB's published read bucket refills 10/s. So the default takes 10/s: what one busy
    operator may spend while leaving the rest to everyone else. An operator in sync spends
    almost nothing (one snapshot per interval); the budget bites on bursts — creating 1,000
    objects (about 5 calls each) takes at least 8 minutes at 10/s, and a few hundred objects
    failing and retrying cannot crowd out the account's other users. Raise it for a large
    first import into an account you own; lower it when several clusters share one account
    (each operator has its own budget). Waiting calls are served in arrival order
    (`controller.core.budget`); `rolekeeper_aws_budget_*` metrics show the waits."""
    call_burst: int = 20
    """Calls a quiet operator may make at once before the budget's rate applies (the bucket's
    size): a few objects' reconciles, or a 2,000-entity snapshot's pages, without waiting."""


@dataclass(frozen=True)
class KopfSettings:
    """Kopf tuning: concurrency, Events, watches, retries."""

    workers: int = 16
    """Threads for blocking AWS calls; bounds how many objects reconcile at once."""
    event_posters: int = 16
    """Concurrent Kubernetes Event posts (Kopf's default is one per object: 1,000 objects
    created at once opened ~330 TLS connections to the API server)."""
    object_idle_timeout: float = 1.0
    """Seconds an object's Kopf worker lingers after its last event (Kopf waits 5 s)."""
    api_connections: int = 32
    """Kubernetes API requests in flight at most, watches not counted (Kopf's default is
    unlimited: one connection per object being handled during a burst)."""
    event_idle_timeout: float = 0.1
    """Seconds an Event poster waits for more before it frees its slot (Kopf waits 1 s)."""
    watch_server_timeout: int = 270
    """Seconds the API server keeps a watch open; below idle cut-offs of proxies."""
    watch_client_timeout: int = 300
    """Seconds the client waits on a silent watch before reconnecting."""
    watch_connect_timeout: int = 10
    """Seconds to open a watch connection."""
    max_backoff: float = 300.0
    """Longest delay between retries of a failing object (and of a terminal delete failure)."""
    peering_lifetime: int = 60
    """Seconds peers wait for a silent (killed) replica before taking over."""


@dataclass(frozen=True)
class Limits:
    """What the parser is told about the account: IAM quotas (the defaults are AWS's defaults)
    and the tag keys others own."""

    trust_policy_size: int = 2048
    """Characters of a trust policy, whitespace not counted (AWS raises it up to 4096)."""
    role_inline_total: int = 10240
    """Characters of all inline policies of a role together."""
    user_inline_total: int = 2048
    """Characters of all inline policies of a user together."""
    managed_policy_count: int = 10
    """Managed policies per role or user: the account's quota (AWS's default is 10; raise it to
    at most 20 with `--managed-policy-quota` once AWS has raised the account's quota). Checked
    before anything is created, so a role never exists with only part of its policies."""
    tag_count: int = 50
    """Tags per role or user, Rolekeeper's two ownership tags included."""
    ignore_tags: tuple[str, ...] = ()
    """Tag keys, or key prefixes ending in `*` (`org:*`), that others own on every entity
    (`--ignore-tags`, added to each object's `spec.ignoreTags`): never set, never removed, never
    drift. They still count against `tag_count`; a spec tag they match is InvalidSpec
    (docs/tags.md). `rolekeeper plan --ignore-tags` must be given the same list."""


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class PodIdentitySettings:
    """IRSA (docs/pod-identity.md): what the trust statements of spec.serviceAccounts name."""

    oidc_issuer: str | None = None
    """The cluster's service-account issuer, https://... (on EKS the cluster's OpenID Connect
    provider URL, https://oidc.eks.<region>.amazonaws.com/id/<ID>). `rolekeeper run` without
    --oidc-issuer reads it from the API server once at start (/.well-known/openid-configuration,
    which every ServiceAccount may read by default); None: not known, and an IAMRole listing
    ServiceAccounts for IRSA reports InvalidSpec saying so."""


@dataclass(frozen=True)
class EndpointSettings:
    """What the operator serves besides its work."""

    liveness: str | None = None
    """URL of the health probe, e.g. http://0.0.0.0:8080/healthz (None: not served)."""
    metrics_port: int | None = None
    """Port of Prometheus /metrics (None: not served)."""
    metrics_address: str = "0.0.0.0"
    """Address /metrics binds to; 127.0.0.1 keeps it off the pod network."""


@dataclass(frozen=True)
class Settings:
    """Everything `rolekeeper run` can be told."""

    drift: DriftSettings = field(default_factory=DriftSettings)
    events: EventSettings = field(default_factory=EventSettings)
    aws: AWSSettings = field(default_factory=AWSSettings)
    kopf: KopfSettings = field(default_factory=KopfSettings)
    limits: Limits = DEFAULT_LIMITS
    pod_identity: PodIdentitySettings = field(default_factory=PodIdentitySettings)
    endpoints: EndpointSettings = field(default_factory=EndpointSettings)
    cluster_id: str = ""
    """This cluster's identity in ownership tags (rolekeeper.dev/cluster). "" takes the uid of
    the kube-system namespace: stable for the cluster's life, different in any other cluster.
    Set it explicitly to keep ownership across a restore into a new cluster (docs/design.md)."""


DEFAULTS = Settings()

READ_ONLY_AWS = AWSSettings(max_calls_per_second=0.0)
"""How `rolekeeper plan`, `snapshot` and `import` talk to AWS: like the operator, but with no
call budget unless `--aws-max-calls-per-second` is given. They make one call at a time and end
in seconds, so their rate is bounded by IAM's latency; and a budget is per process, so it could
not pace many CI jobs anyway. Budgeted at the operator's default, plans took 2-4x as long."""
