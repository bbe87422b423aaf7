"""Several AWS accounts end to end: `rolekeeper run` + kube-apiserver + one moto server.

moto keeps separate IAM state per account id, and credentials from `sts:AssumeRole` on a role
ARN in account X act in account X (docs/testing.md records what was verified: moto checks
neither that the role exists, nor its trust policy, nor the external id). So AWS's refusals are
emulated by the test's own proxy, in AWS's words: it answers AssumeRole with 403 AccessDenied
for a role whose (emulated) trust does not admit the caller or whose external id differs.
The same proxy attributes every request to an account by its access key (learned from the
AssumeRole answers that minted it), so the tests count calls per account independently of the
operator's own counters.

Covers (issue 17, "Several accounts"):
- objects of a namespace listed by IAMAccount a, of one selected by label by IAMAccount b and
  of one no IAMAccount serves land in accounts 111111111111, 222222222222 and moto's default
  (status.accountId, the ARN, and moto's per-account state), and no create crosses accounts;
- the sweep costs one snapshot (GetAccountAuthorizationDetails + ListRoles) per account per
  interval, and nothing per object while nothing drifts;
- a role that cannot be assumed (IAMAccount c) gives Ready=False with the STS error on every
  object of that account, and nothing else: other accounts stay Ready, no IAM call is made in
  it, AssumeRole is not retried per object;
- a trust revoked for a working account (b's external id no longer admitted) turns every
  object of b to Ready=False with the STS error, makes no further call in b, leaves a alone,
  and restoring it brings b's objects back.
"""

from __future__ import annotations

import http.client
import itertools
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
import yaml

from tests import helpers
from tests.harness import kube, moto
from tests.harness.envtest import Cluster
from tests.harness.operator import Operator
from tests.harness.util import free_port, until

pytestmark = pytest.mark.e2e

DEFAULT = moto.ACCOUNT_ID  # the operator's own account: moto's default
A_ID, B_ID, C_ID = "111111111111", "222222222222", "333333333333"
INTERVAL = 3.0
PREFIX = "rk-acct"
SNAPSHOT_CALLS = ("GetAccountAuthorizationDetails", "ListRoles")

DENIED_BODY = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    "<Code>AccessDenied</Code><Message>User: arn:aws:sts::{caller}:user/moto is not authorized to "
    "perform: sts:AssumeRole on resource: {role}</Message></Error>"
    "<RequestId>emulated-trust</RequestId></ErrorResponse>"
)
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
_ACCESS_KEY = re.compile(r"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>")


class AccountProxy:
    """Forwards to moto; counts (account, Action) by the request's access key; emulates trust:
    a role in `untrusted`, or one whose `external_ids` entry differs from the request's
    ExternalId, is refused as AWS refuses it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.timeline: list[tuple[float, str, str]] = []  # (monotonic, account, action)
        self.keys: dict[str, str] = {}  # access key id -> account it acts in
        self.untrusted: set[str] = set()
        self.external_ids: dict[str, str] = {}
        self.refused: Counter[str] = Counter()  # role ARN -> AssumeRole answered AccessDenied
        self.assumed: Counter[str] = Counter()  # role ARN -> AssumeRole answered with keys
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, account: str, action: str | None = None, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for t, acct, act in self.timeline
                       if acct == account and t >= since and (action is None or act == action))

    def iam_calls(self, account: str, since: float = 0.0) -> int:
        """Calls made in `account` other than STS's (AssumeRole, GetCallerIdentity)."""
        with self._lock:
            return sum(1 for t, acct, act in self.timeline
                       if acct == account and t >= since
                       and act not in ("AssumeRole", "GetCallerIdentity"))

    def times(self, account: str, action: str, since: float = 0.0) -> list[float]:
        with self._lock:
            return [t for t, acct, act in self.timeline
                    if acct == account and act == action and t >= since]

    def _record(self, account: str, action: str) -> None:
        with self._lock:
            self.calls[(account, action)] += 1
            self.timeline.append((time.monotonic(), account, action))

    def _refuse(self, params: dict[str, list[str]]) -> bool:
        role = params.get("RoleArn", [""])[0]
        if role in self.untrusted:
            return True
        wanted = self.external_ids.get(role)
        return wanted is not None and params.get("ExternalId", [""])[0] != wanted

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params = parse_qs(body.decode("utf-8", "replace"))
                action = params.get("Action", ["?"])[0]
                found = _CREDENTIAL.search(self.headers.get("Authorization", ""))
                account = proxy.keys.get(found.group(1) if found else "", DEFAULT)
                proxy._record(account, action)
                if action == "AssumeRole" and proxy._refuse(params):
                    role = params["RoleArn"][0]
                    with proxy._lock:
                        proxy.refused[role] += 1
                    return self._reply(403, DENIED_BODY.format(caller=account, role=role).encode())
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    upstream.request("POST", self.path, body=body, headers=dict(self.headers.items()))
                    response = upstream.getresponse()
                    payload = response.read()
                finally:
                    upstream.close()
                if action == "AssumeRole" and response.status == 200:
                    key = _ACCESS_KEY.search(payload.decode())
                    if key:
                        proxy.keys[key.group(1)] = params["RoleArn"][0].split(":")[4]
                        with proxy._lock:
                            proxy.assumed[params["RoleArn"][0]] += 1
                self._reply(response.status, payload, response.getheader("Content-Type"))

            def _reply(self, code: int, payload: bytes, content_type: str | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type or "text/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def iam_account(name: str, account_id: str, role: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "iam.rolekeeper.dev/v1alpha1", "kind": "IAMAccount",
            "metadata": {"name": name},
            "spec": {"accountId": account_id, "roleArn": role, **spec}}


def apply_cluster(cluster: Cluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


def moto_iam(server: moto.MotoServer, account: str) -> Any:
    """An IAM client acting in `account`, straight to moto (not counted by the proxy)."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    if account == DEFAULT:
        return session.client("iam", endpoint_url=server.url)
    sts = session.client("sts", endpoint_url=server.url)
    found = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/inspector",
                            RoleSessionName="test")["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=found["AccessKeyId"], aws_secret_access_key=found["SecretAccessKey"],
        aws_session_token=found["SessionToken"], region_name="us-east-1",
    ).client("iam", endpoint_url=server.url)


@dataclass
class World:
    cluster: Cluster
    server: moto.MotoServer
    proxy: AccountProxy
    operator: Operator
    namespaces: dict[str, str]  # "a", "b", "c", "d" -> namespace
    roles: dict[str, list[str]]  # same keys -> AWS role names
    accounts: dict[str, dict[str, Any]]  # IAMAccount objects by key

    def status(self, key: str, index: int) -> dict[str, Any]:
        return dict(kube.get(self.cluster, self.namespaces[key], "iamrole", f"r{index}")
                    .get("status") or {})

    def ready(self, key: str) -> list[dict[str, Any]]:
        return [kube.ready_condition(kube.get(self.cluster, self.namespaces[key], "iamrole", f"r{i}"))
                for i in range(len(self.roles[key]))]


@pytest.fixture(scope="module")
def world(crds: Cluster) -> Iterator[World]:
    tag = secrets.token_hex(3)
    server = moto.start()
    proxy = AccountProxy(server.port)
    names = {key: crds.create_namespace(f"{PREFIX}-{key}") for key in "abcd"}
    crds.kubectl("label", "namespace", names["b"], f"rolekeeper.dev/account=b-{tag}")
    role = {key: f"arn:aws:iam::{acct}:role/rolekeeper-{key}"
            for key, acct in (("a", A_ID), ("b", B_ID), ("c", C_ID))}
    proxy.external_ids[role["b"]] = "rk-ext-b"  # b's trust requires this sts:ExternalId
    proxy.untrusted.add(role["c"])  # c's role does not exist (or never trusted the operator)
    accounts = {
        "a": iam_account(f"{PREFIX}-a-{tag}", A_ID, role["a"], namespaces=[names["a"]]),
        "b": iam_account(f"{PREFIX}-b-{tag}", B_ID, role["b"], externalId="rk-ext-b",
                         sessionName="rolekeeper-e2e",
                         namespaceSelector={"matchLabels": {"rolekeeper.dev/account": f"b-{tag}"}}),
        "c": iam_account(f"{PREFIX}-c-{tag}", C_ID, role["c"], namespaces=[names["c"]]),
    }
    crds.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 "crd/iamaccounts.iam.rolekeeper.dev")
    apply_cluster(crds, *accounts.values())
    env = {**server.env, "AWS_ENDPOINT_URL_IAM": proxy.url, "AWS_ENDPOINT_URL_STS": proxy.url}
    operator = Operator(crds.kubeconfig, env, namespaces=[f"{PREFIX}-*"], drift_interval=INTERVAL)
    operator.start()
    roles = {key: [helpers.aws_name(f"{key}{i}") for i in range(2)] for key in "abcd"}
    try:
        for key, ns in names.items():
            kube.apply(crds, ns, *(helpers.iam_role(f"r{i}", n) for i, n in enumerate(roles[key])))
        world = World(crds, server, proxy, operator, names, roles, accounts)
        for key in "abd":
            for i in range(2):
                kube.wait_ready(crds, names[key], "iamrole", f"r{i}", timeout=90)
        yield world
    finally:
        operator.stop()
        crds.kubectl("delete", "iamaccounts", *(a["metadata"]["name"] for a in accounts.values()),
                     "--ignore-not-found", "--wait=false")
        proxy.stop()
        server.stop()


def test_objects_land_in_their_namespaces_accounts(world: World) -> None:
    expected = {"a": A_ID, "b": B_ID, "d": DEFAULT}
    for key, account in expected.items():
        for i, name in enumerate(world.roles[key]):
            status = world.status(key, i)
            assert status["accountId"] == account
            assert status["arn"] == f"arn:aws:iam::{account}:role/{name}"
    # moto's own per-account state: each account holds exactly its namespace's roles.
    ours = {n for names in world.roles.values() for n in names}
    for key, account in expected.items():
        held = {r["RoleName"] for r in moto_iam(world.server, account).list_roles()["Roles"]}
        assert held & ours == set(world.roles[key]), (key, held)
    held_c = {r["RoleName"] for r in moto_iam(world.server, C_ID).list_roles()["Roles"]}
    assert held_c & ours == set()


def test_no_call_crosses_accounts(world: World) -> None:
    # Every create was signed by the keys of the namespace's own account (the proxy tells
    # accounts apart by access key, learned from the AssumeRole answer that minted it).
    for key, account in (("a", A_ID), ("b", B_ID), ("d", DEFAULT)):
        assert world.proxy.calls[(account, "CreateRole")] == 2, (key, world.proxy.calls)
    assert world.proxy.iam_calls(C_ID) == 0
    # Only the operator's own credentials call STS: AssumeRole for a and b once each (cached),
    # never per object.
    assert {acct for acct, act in world.proxy.calls if act == "AssumeRole"} == {DEFAULT}
    for key in "ab":
        role = world.accounts[key]["spec"]["roleArn"]
        assert world.proxy.assumed[role] == 1, (key, world.proxy.assumed)
    assert world.proxy.refused[world.accounts["a"]["spec"]["roleArn"]] == 0


def test_sweep_costs_one_snapshot_per_account_per_interval(world: World) -> None:
    start = time.monotonic()
    live = {"a": A_ID, "b": B_ID, "d": DEFAULT}
    until(lambda: all(len(world.proxy.times(acct, SNAPSHOT_CALLS[0], start)) >= 5
                      for acct in live.values()),
          12 * INTERVAL, "five snapshots of every account")
    end = time.monotonic()
    report = {}
    for key, account in live.items():
        taken = world.proxy.times(account, SNAPSHOT_CALLS[0], start)
        gaps = [b - a for a, b in itertools.pairwise(taken)]
        # A snapshot is retaken once it is 0.9 interval old, never sooner: one per interval,
        # however many objects' timers ask (two objects per account here).
        assert min(gaps) >= 0.9 * INTERVAL * 0.95, (key, gaps)
        window = taken[-1] - taken[0]
        assert len(taken) - 1 <= window / (0.9 * INTERVAL) + 1e-6
        listing = world.proxy.count(account, SNAPSHOT_CALLS[1], start)
        per_object = sum(world.proxy.count(account, op, start)
                         for op in ("GetRole", "ListAttachedRolePolicies", "ListRolePolicies"))
        # Nothing drifted: no per-object read, no write; the snapshot is all the sweep costs.
        assert per_object == 0, (key, per_object)
        assert world.proxy.iam_calls(account, start) - len(taken) - listing == 0
        report[account] = (len(taken), round(window / max(len(taken) - 1, 1), 2))
    print(f"\nsnapshots per account over {end - start:.1f}s (count, mean gap s): {report}")
    assert world.proxy.iam_calls(C_ID, start) == 0


def test_a_role_that_cannot_be_assumed_fails_only_its_accounts_objects(world: World) -> None:
    role = world.accounts["c"]["spec"]["roleArn"]

    def failed() -> list[dict[str, Any]] | None:
        found = world.ready("c")
        return found if all(c.get("status") == "False" for c in found) else None

    for condition in until(failed, 60, "Ready=False on c's objects"):
        assert condition["reason"] == "AWSError"
        message = condition["message"]
        assert message.startswith(f"cannot assume {role} for IAMAccount "
                                  f"'{world.accounts['c']['metadata']['name']}' (account {C_ID}): ")
        assert f"AccessDenied: User: arn:aws:sts::{DEFAULT}:user/moto is not authorized to perform: " \
               f"sts:AssumeRole on resource: {role}" in message
    assert world.status("c", 0)["accountId"] == C_ID
    assert world.proxy.iam_calls(C_ID) == 0
    for key in "abd":
        assert all(c["status"] == "True" for c in world.ready(key)), key
    assert world.operator.process is not None and world.operator.process.poll() is None
    # Two objects with drift timers every 3 s: AssumeRole for c is retried at most once per
    # 30 s (the remembered failure), not per object or per check.
    first = world.proxy.times(DEFAULT, "AssumeRole")[0]
    elapsed = time.monotonic() - first
    assert world.proxy.refused[role] <= elapsed / 30 + 2, (world.proxy.refused[role], elapsed)


def test_revoked_trust_fails_every_object_of_that_account_and_nothing_else(world: World) -> None:
    cluster, proxy, b = world.cluster, world.proxy, world.accounts["b"]
    role = b["spec"]["roleArn"]
    # The trust no longer admits the operator: its external id changes on the AWS side; the
    # IAMAccount's new externalId is assumed afresh (cached keys of the old spec are dropped).
    proxy.external_ids[role] = "rotated-elsewhere"
    apply_cluster(cluster, {**b, "spec": {**b["spec"], "externalId": "rk-ext-b-v2"}})

    def failed() -> list[dict[str, Any]] | None:
        found = world.ready("b")
        return found if all(c.get("status") == "False" for c in found) else None

    for condition in until(failed, 60, "Ready=False on b's objects"):
        assert condition["reason"] == "AWSError"
        assert f"sts:AssumeRole on resource: {role}" in condition["message"]
        assert condition["message"].startswith(f"cannot assume {role} ")
    revoked = time.monotonic()
    before = proxy.iam_calls(B_ID)
    # Two more snapshots of account a (two intervals): b makes no call, a and d stay Ready.
    until(lambda: len(proxy.times(A_ID, SNAPSHOT_CALLS[0], revoked)) >= 2, 8 * INTERVAL,
          "two snapshots of account a")
    assert proxy.iam_calls(B_ID) == before
    for key in "ad":
        assert all(c["status"] == "True" for c in world.ready(key)), key
    # Trust restored (the spec's external id is admitted again): b's objects recover.
    proxy.external_ids[role] = "rk-ext-b-v2"
    apply_cluster(cluster, {**b, "spec": {**b["spec"], "externalId": "rk-ext-b-v2",
                                          "sessionName": "rolekeeper-e2e-2"}})
    until(lambda: all(c.get("status") == "True" for c in world.ready("b")), 60,
          "b's objects Ready again")
    assert proxy.calls[(B_ID, "CreateRole")] == 2  # the same roles, not new ones
