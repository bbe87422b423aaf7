"""Several AWS accounts: `IAMAccount` objects, which namespace uses which account, and the
assumed-role clients of each account (assumed once, cached, refreshed before they expire).

An `IAMAccount` (cluster-scoped) names an AWS account, the role to assume in it (with an
external id and a session name) and the namespaces it serves: a label selector (the same
`NamespaceSelector` guardrails use, `core.guardrails`) or a list of names. A namespace that no
IAMAccount serves uses the operator's own credentials, as before there were accounts.

`choose` is pure and fails closed: a namespace served by two IAMAccounts, or any IAMAccount
that cannot be read, means the account of an object is not known, and nothing is written —
writing to the wrong account is the one mistake this module exists to prevent.

`Accounts` keeps one `Clients` per IAMAccount, built on botocore's `RefreshableCredentials`
over `sts:AssumeRole`: the IAM client refreshes its credentials itself, 15 minutes before they
expire (botocore's advisory window; at 10 minutes every call waits for the refresh). A failed
AssumeRole is remembered for `retry_after` seconds, so a thousand objects of an account whose
trust was revoked cost one STS call per interval, not one each; each of them reports the STS
error. A changed IAMAccount spec (another role, external id, ...) is assumed afresh.
"""

from __future__ import annotations

import datetime
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

from controller.aws.calls import classified
from controller.aws.clients import Clients, client_config, connect
from controller.core.errors import AWSError, TerminalError
from controller.core.guardrails import (
    NamespaceSelector,
    SelectorOperator,
    matches,
    parse_selector,
)
from controller.settings import DEFAULTS, AWSSettings

GROUP = "iam.rolekeeper.dev"
API_VERSION = f"{GROUP}/v1alpha1"
KIND = "IAMAccount"
PLURAL = "iamaccounts"
DEFAULT_SESSION_NAME = "rolekeeper"
DEFAULT_DURATION = 3600  # seconds; AWS's default and the most role chaining allows
MIN_DURATION, MAX_DURATION = 900, 43200
RETRY_AFTER = 30.0  # seconds a failed AssumeRole is remembered before it is tried again

_ACCOUNT = re.compile(r"\d{12}")
_ROLE_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/[\w+=,.@/-]{1,512}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

Clock = Callable[[], datetime.datetime]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class AccountError(ValueError):
    """An IAMAccount that cannot be used; `errors` name each bad field."""

    def __init__(self, name: str, errors: list[str]) -> None:
        super().__init__(f"IAMAccount {name!r} is invalid: " + "; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Account:
    """One IAMAccount: where its namespaces' entities live and how to get there."""

    name: str
    account_id: str
    role_arn: str
    external_id: str = ""
    session_name: str = DEFAULT_SESSION_NAME
    duration_seconds: int = DEFAULT_DURATION
    selector: NamespaceSelector | None = None  # exactly one of selector / namespaces is set
    namespaces: frozenset[str] | None = None

    def serves(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if self.namespaces is not None:
            return namespace in self.namespaces
        return self.selector is not None and matches(self.selector, labels)

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1]


def parse_account(obj: Mapping[str, Any]) -> Account:
    """An IAMAccount object (as the API returns it) as an `Account`; AccountError lists every
    problem, each starting with its field path."""
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    errors: list[str] = []
    if not isinstance(name, str) or not name:
        errors.append("metadata.name: is required")
        name = ""
    if obj.get("kind", KIND) != KIND:
        errors.append(f"kind: must be {KIND}, got {obj.get('kind')!r}")
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise AccountError(name, [*errors, "spec: is required and must be an object"])
    known = {
        "accountId", "roleArn", "externalId", "sessionName", "durationSeconds",
        "namespaceSelector", "namespaces",
    }  # fmt: skip
    for key in sorted(set(spec) - known):
        errors.append(f"spec.{key}: unknown field (known: {', '.join(sorted(known))})")
    account_id = spec.get("accountId")
    if not isinstance(account_id, str) or not _ACCOUNT.fullmatch(account_id):
        errors.append(f"spec.accountId: must be a 12-digit account id, got {account_id!r}")
        account_id = ""
    role_arn = spec.get("roleArn")
    match = _ROLE_ARN.fullmatch(role_arn) if isinstance(role_arn, str) else None
    if match is None:
        errors.append(
            f"spec.roleArn: must be a role ARN (arn:aws:iam::<account>:role/<name>), "
            f"got {role_arn!r}"
        )
        role_arn = ""
    elif account_id and match.group(2) != account_id:
        # The role assumed decides where the entities land; a mismatch is a typo somewhere.
        errors.append(
            f"spec.roleArn: names account {match.group(2)}, but spec.accountId is {account_id}"
        )
    external_id = spec.get("externalId", "")
    if external_id != "" and (
        not isinstance(external_id, str) or not _EXTERNAL_ID.fullmatch(external_id)
    ):
        errors.append("spec.externalId: must be 2-1224 characters of [A-Za-z0-9+=,.@:/_-]")
        external_id = ""
    session_name = spec.get("sessionName", DEFAULT_SESSION_NAME)
    if not isinstance(session_name, str) or not _SESSION_NAME.fullmatch(session_name):
        errors.append("spec.sessionName: must be 2-64 characters of [A-Za-z0-9+=,.@_-]")
        session_name = DEFAULT_SESSION_NAME
    duration = spec.get("durationSeconds", DEFAULT_DURATION)
    if isinstance(duration, bool) or not isinstance(duration, int) or not (
        MIN_DURATION <= duration <= MAX_DURATION
    ):
        errors.append(
            f"spec.durationSeconds: must be an integer from {MIN_DURATION} to {MAX_DURATION}"
        )
        duration = DEFAULT_DURATION
    selector: NamespaceSelector | None = None
    namespaces: frozenset[str] | None = None
    has_selector, has_list = "namespaceSelector" in spec, "namespaces" in spec
    if has_selector == has_list:
        errors.append("spec: give exactly one of namespaceSelector and namespaces")
    if has_selector:
        selector, problems = parse_selector(spec.get("namespaceSelector"), "spec.namespaceSelector")
        errors.extend(problems)
    if has_list:
        raw = spec.get("namespaces")
        if not isinstance(raw, list) or not all(
            isinstance(n, str) and _NAMESPACE.fullmatch(n) for n in raw
        ):
            errors.append("spec.namespaces: must be a list of namespace names")
        else:
            namespaces = frozenset(raw)
    if errors:
        raise AccountError(name, errors)
    return Account(
        name=name,
        account_id=str(account_id),
        role_arn=str(role_arn),
        external_id=str(external_id),
        session_name=session_name,
        duration_seconds=duration,
        selector=selector,
        namespaces=namespaces,
    )


# --- which account a namespace uses -------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """The account of one namespace: an IAMAccount, the operator's own (`account` None), or
    none at all (`problem` says why; nothing may be written)."""

    account: Account | None = None
    problem: str = ""
    wait: bool = False  # the problem is expected to pass by itself in seconds

    @property
    def key(self) -> str:
        """The account's key for caches and sweeps: the IAMAccount's name, "" for the default."""
        return self.account.name if self.account is not None else ""


def choose(
    accounts: Sequence[Account],
    namespace: str,
    labels: Mapping[str, str],
    broken: Sequence[str] = (),
) -> Choice:
    """Which account the objects of `namespace` (with `labels`) live in."""
    if broken:
        # Any namespace could be the unreadable one's: the default account might be wrong.
        return Choice(
            problem=f"which AWS account namespace {namespace!r} uses is unknown while an "
            f"IAMAccount cannot be read ({'; '.join(sorted(broken))})"
        )
    serving = sorted((a for a in accounts if a.serves(namespace, labels)), key=lambda a: a.name)
    if len(serving) > 1:
        names = ", ".join(f"{a.name} ({a.account_id})" for a in serving)
        return Choice(
            problem=f"namespace {namespace!r} is served by {len(serving)} IAMAccounts: {names}; "
            "make their namespaceSelector/namespaces disjoint"
        )
    return Choice(serving[0] if serving else None)


def describe(selector: NamespaceSelector) -> str:
    """A selector as kubectl writes one (for messages and docs)."""
    parts = [f"{k}={v}" for k, v in selector.match_labels]
    for r in selector.match_expressions:
        if r.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN):
            parts.append(f"{r.key} {str(r.operator).lower()} ({','.join(sorted(r.values))})")
        else:
            parts.append(r.key if r.operator is SelectorOperator.EXISTS else f"!{r.key}")
    return ",".join(parts) or "<every namespace>"


# --- assumed-role clients -----------------------------------------------------------------

# What an AssumeRole gives: botocore's credential metadata (access_key, secret_key, token,
# expiry_time as ISO 8601).
Metadata = dict[str, str]
Assume = Callable[[Account], Metadata]
Connect = Callable[[boto3.session.Session], Clients]


class AccountUnavailable(TerminalError):
    """The role of an IAMAccount cannot be assumed (or lands in another account)."""


def sts_assume(base: boto3.session.Session, settings: AWSSettings = DEFAULTS.aws) -> Assume:
    """An `Assume` calling STS with the operator's own credentials (`base`)."""
    region = base.region_name or "us-east-1"
    sts = base.client("sts", region_name=region, config=client_config(settings))

    def assume(account: Account) -> Metadata:
        params: dict[str, Any] = {
            "RoleArn": account.role_arn,
            "RoleSessionName": account.session_name,
            "DurationSeconds": account.duration_seconds,
        }
        if account.external_id:
            params["ExternalId"] = account.external_id
        with classified("AssumeRole"):
            found = sts.assume_role(**params)["Credentials"]
        return {
            "access_key": found["AccessKeyId"],
            "secret_key": found["SecretAccessKey"],
            "token": found["SessionToken"],
            "expiry_time": found["Expiration"].isoformat(),
        }

    return assume


@dataclass
class _Entry:
    account: Account
    clients: Clients | None = None
    credentials: RefreshableCredentials | None = None
    error: AWSError | None = None
    failed_at: datetime.datetime | None = None


class Accounts:
    """One `Clients` per IAMAccount, assumed on first use; thread-safe (handlers call it from
    the worker pool)."""

    def __init__(
        self,
        assume: Assume,
        connect_with: Connect | None = None,
        settings: AWSSettings = DEFAULTS.aws,
        clock: Clock = _now,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self._assume = assume
        self._connect = connect_with or (lambda session: connect(session, settings))
        self._clock = clock
        self._retry_after = datetime.timedelta(seconds=retry_after)
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.assumed: dict[str, int] = {}  # AssumeRole calls per IAMAccount name (metrics, tests)

    def clients(self, account: Account) -> Clients:
        """The IAMAccount's clients; raises the AWSError of the last failed AssumeRole (the
        same one, without calling STS, until `retry_after` has passed)."""
        with self._guard:
            lock = self._locks.setdefault(account.name, threading.Lock())
        with lock:  # one AssumeRole per account, however many objects ask at once
            entry = self._entries.get(account.name)
            if entry is None or entry.account != account:
                entry = self._entries[account.name] = _Entry(account)
            if entry.clients is not None:
                return entry.clients
            if (
                entry.error is not None
                and entry.failed_at is not None
                and self._clock() - entry.failed_at < self._retry_after
            ):
                raise entry.error
            try:
                entry.clients, entry.credentials = self._open(account)
                entry.error = entry.failed_at = None
                return entry.clients
            except AWSError as exc:
                entry.error = _unavailable(account, exc)
                entry.failed_at = self._clock()
                raise entry.error from exc

    def credentials(self, name: str) -> RefreshableCredentials | None:
        """The refreshable credentials of an IAMAccount already assumed (tests, diagnostics)."""
        entry = self._entries.get(name)
        return entry.credentials if entry is not None else None

    def forget(self, name: str) -> None:
        """Drop an IAMAccount that was deleted (its clients, credentials and last error)."""
        with self._guard:
            self._entries.pop(name, None)

    def _open(self, account: Account) -> tuple[Clients, RefreshableCredentials]:
        def refresh() -> Metadata:
            self.assumed[account.name] = self.assumed.get(account.name, 0) + 1
            return self._assume(account)

        first = refresh()
        credentials = RefreshableCredentials(
            access_key=first["access_key"],
            secret_key=first["secret_key"],
            token=first["token"],
            expiry_time=datetime.datetime.fromisoformat(first["expiry_time"]),
            refresh_using=refresh,
            method="sts-assume-role",
            time_fetcher=self._clock,
        )
        core = botocore.session.get_session()
        core.register_component("credential_provider", CredentialResolver([_Given(credentials)]))
        session = boto3.session.Session(botocore_session=core, region_name=_region())
        clients = self._connect(session)
        if clients.account_id != account.account_id:
            raise AccountUnavailable(
                "AssumeRole",
                "WrongAccount",
                f"{account.role_arn} acts in account {clients.account_id}, "
                f"not {account.account_id}",
            )
        return clients, credentials


class _Given(CredentialProvider):
    """The session's only credential source: the account's refreshable assumed-role ones."""

    METHOD = "sts-assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


def _region() -> str:
    return boto3.session.Session().region_name or "us-east-1"


def _unavailable(account: Account, exc: AWSError) -> AWSError:
    """The error every object of the account reports: which IAMAccount, which role, and STS's
    own answer. A transient STS failure stays retryable."""
    message = (
        f"cannot assume {account.role_arn} for IAMAccount {account.name!r} "
        f"(account {account.account_id}): {exc.code}: {exc.aws_message}"
    )
    if isinstance(exc, TerminalError):
        return AccountUnavailable(exc.operation, exc.code, message)
    return type(exc)(exc.operation, exc.code, message)


def from_environment(settings: AWSSettings = DEFAULTS.aws) -> Accounts:
    """`Accounts` assuming roles with the operator's own credentials (boto3's standard chain)."""
    return Accounts(sts_assume(boto3.session.Session(), settings), settings=settings)
