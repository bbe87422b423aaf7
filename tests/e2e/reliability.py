"""Shared machinery for the reliability suite: a recording fault proxy, convergence, AWS state.

The reliability tests judge the operator by what reached AWS and what Kubernetes shows, never by
the operator's own counters: `RecordingProxy` logs every IAM request with the entity it names and
the answer the client got, `account_state` reads the account through an uncounted console client,
and `expected_state` derives what AWS must hold from the objects alone. Bulk kubectl helpers are
in `tests.harness.kube`, manifests and policies in `tests.helpers`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.harness import kube
from tests.harness.awsproxy import AwsProxy
from tests.harness.envtest import Cluster
from tests.harness.moto import MotoServer
from tests.harness.operator import Operator
from tests.harness.util import most_in_window, until
from tests.helpers import DYNAMO_READ, EC2_TRUST, S3_READ, SQS_READ, manifest

FULL = os.environ.get("RK_RELIABILITY_FULL") == "1"
OWNER_TAG = "rolekeeper.dev/owner"
UID_TAG = "rolekeeper.dev/uid"
CLUSTER_TAG = "rolekeeper.dev/cluster"
READS = ("Get", "List")
# The request parameters that name the entity a call is about (first match wins).
ENTITY_PARAMS = ("RoleName", "UserName", "InstanceProfileName")
# Every fault kind: the harness's five plus a reply lost after AWS applied the write.
ALL_FAULTS = ("throttle", "server-error", "unavailable", "reset", "slow", "lost-reply")

POLICY_POOL = (S3_READ, DYNAMO_READ, SQS_READ)

Rule = Callable[[str, Mapping[str, list[str]]], tuple[int, str] | None]


# --- the recording proxy -----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One IAM request as the proxy saw it and what the client got back."""

    at: float  # time.monotonic()
    action: str
    entity: str  # RoleName / UserName / InstanceProfileName, "" for account-wide calls
    status: int  # HTTP status sent to the client; 0 when the connection was reset instead
    fault: str  # "" when untouched, else the injected fault kind or "rule"
    aws_status: int = 0  # what moto answered (also when the client never heard it); 0: not asked

    @property
    def is_write(self) -> bool:
        return not self.action.startswith(READS)

    @property
    def is_refused_create(self) -> bool:
        """A create AWS refused because the name is taken: it changes nothing. A new object
        creates without reading first, so claiming an existing name costs exactly this."""
        return self.action in ("CreateRole", "CreateUser") and self.aws_status == 409


class _LostReply(Exception):
    """Raised inside the handler to drop an upstream answer and reset the connection."""


class RecordingProxy(AwsProxy):
    """`AwsProxy` that also logs (action, entity, answer) per request, can lose a reply after
    AWS applied the call (`lost-reply`: the client sees a reset, the write happened — the case
    that creates duplicates in careless clients), and can answer chosen requests the way real
    AWS would where moto is lenient (`rules`)."""

    def __init__(self, upstream_port: int) -> None:
        self.log: list[Request] = []
        self.rules: list[Rule] = []
        # action -> fault kinds for its next requests, in order (deterministic, beside the rate)
        self.script: dict[str, list[str]] = {}
        self._local = threading.local()
        super().__init__(upstream_port)

    @classmethod
    def for_server(cls, server: MotoServer) -> RecordingProxy:
        return cls(server.port).start()  # type: ignore[return-value]

    def env(self, server: MotoServer) -> dict[str, str]:
        """boto3 environment for an operator that talks to AWS through this proxy only."""
        return {**server.env, "AWS_ENDPOINT_URL_IAM": self.url, "AWS_ENDPOINT_URL_STS": self.url}

    # ----- queries

    def requests(
        self, since: float = 0.0, until: float = float("inf"), entities: Iterable[str] | None = None
    ) -> list[Request]:
        names = None if entities is None else set(entities)
        with self._lock:
            return [
                r
                for r in self.log
                if since <= r.at <= until and (names is None or r.entity in names)
            ]

    def succeeded(self, action: str, since: float = 0.0, entities: Iterable[str] | None = None) -> int:
        """Calls of `action` that AWS executed successfully (whether or not the client heard)."""
        return sum(
            1
            for r in self.requests(since, entities=entities)
            if r.action == action and r.aws_status == 200
        )

    def mark(self) -> float:
        return time.monotonic()

    # ----- hooks into AwsProxy

    def fail_next(self, actions: Iterable[str], kind: str, times: int = 1) -> None:
        """Give the next `times` requests of each action the fault `kind`, whatever the rate."""
        with self._lock:
            for action in actions:
                self.script.setdefault(action, []).extend([kind] * times)

    def _choose_fault(self, action: str) -> str | None:
        with self._lock:
            queued = self.script.get(action)
            kind = queued.pop(0) if queued else None
            if kind is not None:
                self.injected[kind] += 1
        if kind is None:
            kind = super()._choose_fault(action)
        self._local.fault = kind or ""
        return kind

    def _note(self, action: str, entity: str, status: int, fault: str, aws_status: int) -> None:
        with self._lock:
            self.log.append(Request(time.monotonic(), action, entity, status, fault, aws_status))

    def _handler_class(self) -> Any:
        base = super()._handler_class()
        proxy = self

        class Handler(base):  # type: ignore[misc, valid-type]
            def _forward(self, body: bytes) -> None:
                params = parse_qs(body.decode("utf-8", "replace"))
                action = params.get("Action", ["?"])[0]
                entity = next((params[k][0] for k in ENTITY_PARAMS if k in params), "")
                self._rk_request = (action, entity)
                self._rk_noted = False
                proxy._local.fault = ""
                for rule in list(proxy.rules) if self.command == "POST" else ():
                    answer = rule(action, params)
                    if answer is not None:
                        proxy._record(action)
                        proxy._local.fault = "rule"
                        self._reply(answer[0], answer[1].encode())
                        return
                try:
                    super()._forward(body)
                except _LostReply:
                    self._reset()
                if self.command == "POST" and not self._rk_noted:  # a reset sends no status
                    proxy._note(action, entity, 0, proxy._local.fault, 0)

            def send_response(self, code: int, message: str | None = None) -> None:
                action, entity = self._rk_request
                fault = proxy._local.fault
                if self.command == "POST":
                    # Injected answers never reached moto; a lost reply did, and was a success.
                    upstream = code if fault in ("", "slow", "lost-reply") else 0
                    proxy._note(action, entity, 0 if fault == "lost-reply" else code, fault, upstream)
                    self._rk_noted = True
                if fault == "lost-reply":
                    raise _LostReply
                super().send_response(code, message)

            def _reset(self) -> None:
                # RST instead of FIN, as the harness's own "reset" does.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True

        return Handler


def iam_error(code: str, message: str, status: int = 400) -> tuple[int, str]:
    """An answer shaped like IAM's own error responses."""
    kind = "Sender" if status < 500 else "Receiver"
    body = (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error>'
        f"<Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>rule</RequestId></ErrorResponse>"
    )
    return status, body


def peak_rate(requests: list[Request], window: float = 1.0) -> int:
    """The most requests seen in any `window`-second sliding window."""
    return most_in_window([r.at for r in requests], window)


# --- objects -----------------------------------------------------------------------------------


def statement(*actions: str) -> dict[str, Any]:
    """An inline identity policy already in Rolekeeper's canonical form, so AWS returns it
    byte-for-byte and the test can compare with == instead of the operator's own equivalence."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": actions[0] if len(actions) == 1 else sorted(actions),
             "Resource": "*"}
        ],
    }


def role_object(name: str, role_name: str, version: int = 1, **spec: Any) -> dict[str, Any]:
    """An IAMRole whose spec varies with `version`, so successive versions differ in every
    kind of field (policies attached and detached, inline edits, tags, description)."""
    body: dict[str, Any] = {
        "roleName": role_name,
        "assumeRolePolicy": EC2_TRUST,
        "description": f"reliability v{version}",
        "maxSessionDuration": 3600 + 600 * (version % 3),
        "managedPolicies": [POLICY_POOL[version % 3], POLICY_POOL[(version + 1) % 3]][: 1 + version % 2],
        "inlinePolicies": {f"v{version % 2}": statement(f"s3:Get{'Object' if version % 2 else 'Bucket'}")},
        "tags": {"suite": "reliability", "version": str(version)},
        **spec,
    }
    return manifest("IAMRole", name, body, namespace=None)


def user_object(name: str, user_name: str, version: int = 1, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "userName": user_name,
        "managedPolicies": [POLICY_POOL[version % 3]],
        "inlinePolicies": {"read": statement("sqs:ReceiveMessage" if version % 2 else "sqs:GetQueueUrl")},
        "tags": {"suite": "reliability", "version": str(version)},
        **spec,
    }
    return manifest("IAMUser", name, body, namespace=None)


def aws_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """("role"|"user", AWS name) of an object, the key of `account_state`."""
    spec = obj["spec"]
    if obj["kind"] == "IAMRole":
        return "role", spec.get("roleName") or obj["metadata"]["name"]
    return "user", spec.get("userName") or obj["metadata"]["name"]


# --- convergence -------------------------------------------------------------------------------


def lagging(
    cluster: Cluster,
    namespace: str,
    present: Iterable[Mapping[str, Any]],
    gone: Iterable[Mapping[str, Any]] = (),
) -> list[str]:
    """What keeps the namespace from having converged: objects not Ready for their current
    generation, and deleted objects still held (by our finalizer)."""
    live = kube.list_objects(cluster, namespace)
    problems = []
    for obj in present:
        key = (kube.plural(obj), obj["metadata"]["name"])
        item = live.get(key)
        if item is None:
            problems.append(f"{key[1]}: missing")
            continue
        condition = kube.ready_condition(item)
        generation = item["metadata"]["generation"]
        if condition.get("status") != "True" or item.get("status", {}).get(
            "observedGeneration"
        ) != generation:
            problems.append(
                f"{key[1]}: gen {generation} observed "
                f"{item.get('status', {}).get('observedGeneration')} "
                f"{condition.get('reason')}: {condition.get('message', '')[:160]}"
            )
    for obj in gone:
        key = (kube.plural(obj), obj["metadata"]["name"])
        if key in live:
            problems.append(f"{key[1]}: still present, finalizers {live[key]['metadata'].get('finalizers')}")
    return problems


def wait_converged(
    cluster: Cluster,
    namespace: str,
    present: Iterable[Mapping[str, Any]],
    gone: Iterable[Mapping[str, Any]] = (),
    timeout: float = 120.0,
    on_timeout: Callable[[], str] = lambda: "",
) -> float:
    """Seconds until `lagging` is empty; fails with what still lags after `timeout`."""
    present, gone = list(present), list(gone)
    start = time.monotonic()
    problems: list[str] = []

    def converged() -> bool:
        problems[:] = lagging(cluster, namespace, present, gone)
        return not problems

    until(converged, timeout, lambda: f"convergence: {len(problems)} lagging, e.g. {problems[:5]}\n"
          f"{on_timeout()}", every=1.0)
    return time.monotonic() - start


# --- AWS state ---------------------------------------------------------------------------------


def account_state(iam: Any, prefix: str = "") -> dict[tuple[str, str], dict[str, Any]]:
    """Roles, users and instance profiles whose names start with `prefix`, in a plain form.

    Read with the uncounted console client in three calls (account details, roles for
    description and session length, instance profiles), so it is cheap at any scale.
    """
    details = iam.get_account_authorization_details(Filter=["Role", "User"])
    extra = {r["RoleName"]: r for r in _all(iam, "list_roles", "Roles")}
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for role in details.get("RoleDetailList", []):
        name = role["RoleName"]
        if name.startswith(prefix):
            state[("role", name)] = {
                "path": role.get("Path", "/"),
                "trust": _doc(role.get("AssumeRolePolicyDocument")),
                "description": extra.get(name, {}).get("Description", ""),
                "maxSessionDuration": extra.get(name, {}).get("MaxSessionDuration", 3600),
                "managedPolicies": sorted(p["PolicyArn"] for p in role.get("AttachedManagedPolicies", [])),
                "inlinePolicies": {p["PolicyName"]: _doc(p["PolicyDocument"])
                                   for p in role.get("RolePolicyList", [])},
                "tags": {t["Key"]: t["Value"] for t in role.get("Tags", [])},
                "instanceProfiles": sorted(p["InstanceProfileName"] for p in role.get("InstanceProfileList", [])),
                "id": role["RoleId"],
            }
    for user in details.get("UserDetailList", []):
        name = user["UserName"]
        if name.startswith(prefix):
            state[("user", name)] = {
                "path": user.get("Path", "/"),
                "managedPolicies": sorted(p["PolicyArn"] for p in user.get("AttachedManagedPolicies", [])),
                "inlinePolicies": {p["PolicyName"]: _doc(p["PolicyDocument"])
                                   for p in user.get("UserPolicyList", [])},
                "groups": sorted(user.get("GroupList", [])),
                "tags": {t["Key"]: t["Value"] for t in user.get("Tags", [])},
                "id": user["UserId"],
            }
    for profile in _all(iam, "list_instance_profiles", "InstanceProfiles"):
        name = profile["InstanceProfileName"]
        if name.startswith(prefix):
            state[("instance-profile", name)] = {
                "roles": sorted(r["RoleName"] for r in profile.get("Roles", []))
            }
    return state


def whole_account(iam: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """`account_state` of every name, plus groups (members, policies) and customer managed
    policies (default version, attachments): what "nothing else changed" compares."""
    state = account_state(iam)
    details = iam.get_account_authorization_details(Filter=["Group", "LocalManagedPolicy"])
    members: dict[str, list[str]] = {}
    for (kind, name), user in state.items():
        for group in user.get("groups", []) if kind == "user" else []:
            members.setdefault(group, []).append(name)
    for group in details.get("GroupDetailList", []):
        name = group["GroupName"]
        state[("group", name)] = {
            "members": sorted(members.get(name, [])),
            "managedPolicies": sorted(p["PolicyArn"] for p in group.get("AttachedManagedPolicies", [])),
            "inlinePolicies": {p["PolicyName"]: _doc(p["PolicyDocument"])
                               for p in group.get("GroupPolicyList", [])},
        }
    for policy in details.get("Policies", []):
        state[("policy", policy["Arn"])] = {
            "defaultVersion": policy.get("DefaultVersionId"),
            "attachments": policy.get("AttachmentCount"),
        }
    return state


def _all(iam: Any, operation: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in iam.get_paginator(operation).paginate():
        items.extend(page[key])
    return items


def _doc(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def expected_state(objects: Iterable[Mapping[str, Any]], namespace: str,
                   uids: Mapping[str, str], cluster: str) -> dict[tuple[str, str], dict[str, Any]]:
    """What `account_state` must show for these objects, derived from their specs alone.

    `uids` maps metadata.name to the live object's uid (the ownership tag records it);
    `cluster` is the operator's cluster identity (`cluster_id`), recorded in the cluster tag.
    """
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in objects:
        spec, name = obj["spec"], obj["metadata"]["name"]
        tags = {**spec.get("tags", {}), OWNER_TAG: f"{namespace}/{name}", UID_TAG: uids[name],
                CLUSTER_TAG: cluster}
        kind, aws_name = aws_key(obj)
        common = {
            "path": spec.get("path", "/"),
            "managedPolicies": sorted(spec.get("managedPolicies", [])),
            "inlinePolicies": dict(spec.get("inlinePolicies", {})),
            "tags": tags,
        }
        if kind == "role":
            profiles = [aws_name] if spec.get("instanceProfile") else []
            state[(kind, aws_name)] = {
                **common,
                "trust": spec["assumeRolePolicy"],
                "description": spec.get("description", ""),
                "maxSessionDuration": spec.get("maxSessionDuration", 3600),
                "instanceProfiles": profiles,
            }
            if profiles:
                state[("instance-profile", aws_name)] = {"roles": [aws_name]}
        else:
            state[(kind, aws_name)] = {**common, "groups": sorted(spec.get("groups", []))}
    return state


def without_ids(state: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {key: {k: v for k, v in value.items() if k != "id"} for key, value in state.items()}


def state_diff(want: Mapping[tuple[str, str], Any], have: Mapping[tuple[str, str], Any]) -> list[str]:
    """Readable differences between two account states (empty when equal)."""
    lines = [f"missing in AWS: {k}" for k in sorted(set(want) - set(have))]
    lines += [f"not declared but in AWS: {k}" for k in sorted(set(have) - set(want))]
    for key in sorted(set(want) & set(have)):
        for field in sorted(set(want[key]) | set(have[key])):
            if want[key].get(field) != have[key].get(field):
                lines.append(f"{key} {field}: want {want[key].get(field)!r}, have {have[key].get(field)!r}")
    return lines


def cluster_id(cluster: Cluster) -> str:
    """The identity an operator run without --cluster-id records in its cluster tag: the uid of
    the kube-system namespace, read here independently of the operator."""
    uid = cluster.kubectl("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}").stdout
    assert uid.strip(), "kube-system has no uid"
    return uid.strip()


def uids(cluster: Cluster, namespace: str) -> dict[str, str]:
    return {name: obj["metadata"]["uid"] for (_, name), obj in kube.list_objects(cluster, namespace).items()}


# --- operators and figures ---------------------------------------------------------------------


@contextlib.contextmanager
def operator(kubeconfig: Path, aws_env: Mapping[str, str], namespace: str,
             drift_interval: float = 600.0, extra_args: Iterable[str] = ()) -> Iterator[Operator]:
    """A private `rolekeeper run` for one namespace; its log tail is printed if the test fails.
    Without the account's IAM call budget unless `extra_args` set one: these scenarios measure
    what faults do (docs/reliability.md's figures), and the budget, which would pace them at 10
    calls/s, has tests of its own (tests/*/test_budget.py)."""
    args = list(extra_args)
    if "--aws-max-calls-per-second" not in args:
        args += ["--aws-max-calls-per-second", "0"]
    op = Operator(kubeconfig, aws_env, namespaces=[namespace], drift_interval=drift_interval,
                  extra_args=args)
    op.start()
    try:
        yield op
    except BaseException:
        print(f"--- operator log ({op.log_path}) ---\n{op.log_tail(80)}")
        raise
    finally:
        op.stop()


def report(scenario: str, figures: Mapping[str, Any]) -> None:
    """Publish a run's figures: printed (pytest -s / -rP) and, with RK_RELIABILITY_REPORT=DIR,
    written to DIR/<scenario>.json for docs/reliability.md."""
    line = json.dumps({"scenario": scenario, "full": FULL, **figures}, sort_keys=True, default=str)
    print(f"RELIABILITY {line}")
    directory = os.environ.get("RK_RELIABILITY_REPORT")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / f"{scenario}{'-full' if FULL else ''}.json").write_text(line + "\n")


def per_action(requests: Iterable[Request]) -> dict[str, int]:
    return dict(sorted(Counter(r.action for r in requests).items()))
