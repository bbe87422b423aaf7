"""`rolekeeper plan` and `rolekeeper snapshot` against moto servers over HTTP.

Covers:
- every action kind (create, update, delete, noop, conflict, refused, invalid) in one account,
  prunes limited to the scoped namespace, other kinds ignored with a note;
- a semantically equal hand-written trust policy plans as noop, with no diff;
- the calls planned are, in order and with the same parameters, the calls the operator then
  makes (reconcile, or finalize for prunes): creates, drift, adoption, a user's credentials,
  an instance profile the operator did not create (kept);
- `rolekeeper plan examples/` (a real subprocess) on a fresh server lists a create with the
  exact calls for every example, and only noop once the operator has converged;
- golden text, markdown and json outputs (fixed names on a dedicated server);
- input: directories (recursive, hidden directories skipped), .yml/.json, stdin;
- errors: an invalid spec or malformed YAML names file, line, document and field, and exits 1;
  unreadable input suppresses prunes; a snapshot of an unknown format is refused;
- colour only on a terminal (and never with NO_COLOR);
- --detailed-exitcode: 0 / 2 / 1, and without it 0 / 0 / 1;
- `snapshot` then `plan --snapshot` gives the live plan while AWS is unreachable;
- the plan's client refuses to send a write; docs/plan.md's policy lists exactly the calls made.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from controller import cli
from controller.aws import clients as aws
from controller.aws.clients import Clients
from controller.engine import references
from controller.engine.reconcile import UID_PLACEHOLDER, finalize, reconcile
from controller.kinds import registry
from tests.harness import moto
from tests.helpers import (
    BOUNDARY,
    DYNAMO_READ,
    EC2_TRUST,
    LOGS_POLICY,
    OIDC_ISSUER,
    S3_READ,
    manifest,
    with_trust,
)

pytestmark = pytest.mark.aws

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
ROLEKEEPER = Path(sys.executable).parent / "rolekeeper"
EMPTY_SNAPSHOT = {"formatVersion": 1, "roles": [], "users": []}


def obj(kind: str, namespace: str, name: str, aws_name: str, uid: str = "", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {registry.get(kind).name_field: aws_name, **spec}
    if kind == "IAMRole":
        body.setdefault("assumeRolePolicy", EC2_TRUST)
    return manifest(kind, name, body, namespace, **({"uid": uid} if uid else {}))


def write(directory: Path, *objects: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    return directory


# The cluster every plan and operator run of this module stands for: its id, and guardrails that
# allow adoption (tests/aws/golden/cluster.yaml).
CLUSTER = "c-test"
CLUSTER_ARGS = ["--cluster-id", CLUSTER, "--guardrails", str(Path(__file__).parent / "golden" / "cluster.yaml")]


def parse(manifest: dict[str, Any]) -> Any:
    """The object as this module's operator (cluster CLUSTER) parses it."""
    return registry.parse(manifest).in_cluster(CLUSTER)


def plan_json(capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["plan", "--format", "json", *CLUSTER_ARGS, *args])
    return code, json.loads(capsys.readouterr().out)


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["changes"]}


def decoded(params: dict[str, Any]) -> dict[str, Any]:
    """Policy documents compared as data: the wire form is a JSON string either way."""
    return {k: json.loads(v) if k.endswith("PolicyDocument") else v for k, v in params.items()}


def planned_calls(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(c["api"], decoded(c["params"])) for change in doc["changes"] for c in change["calls"]]


@contextmanager
def recording(iam: Any) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every write the client sends, as (operation, parameters), seen by botocore, not by us."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if not model.name.startswith(("Get", "List")):
            calls.append((model.name, decoded(params)))

    iam.meta.events.register("provide-client-params.iam", record)
    try:
        yield calls
    finally:
        iam.meta.events.unregister("provide-client-params.iam", record)


@contextmanager
def pointed_at(server: moto.MotoServer) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in server.env.items():
            patch.setenv(key, value)
        yield


# --- one account with every kind of change, fixed names ---------------------------------------


def build_golden_account() -> None:
    clients = aws.connect(boto3.session.Session())
    console = boto3.session.Session().client("iam", region_name="us-east-1")
    console.create_group(GroupName="deployers")
    for old in (
        obj("IAMRole", "team-a", "web", "team-a-web", "uid-web", managedPolicies=[S3_READ]),
        obj("IAMRole", "team-a", "api", "team-a-api", "uid-api", description="API v1", managedPolicies=[S3_READ], inlinePolicies={"write-logs": LOGS_POLICY}),
        obj("IAMUser", "team-a", "deployer", "team-a-deployer", "uid-deployer", groups=["deployers"], tags={"team": "a"}),
        obj("IAMRole", "team-b", "shared", "team-a-shared", "uid-b"),
        obj("IAMRole", "team-a", "renamed", "team-a-renamed-v1", "uid-renamed"),
        obj("IAMRole", "team-a", "old-worker", "team-a-old-worker", "uid-old", managedPolicies=[S3_READ], inlinePolicies={"write-logs": LOGS_POLICY}, instanceProfile=True),
    ):
        assert reconcile(clients, parse(old)).ready
    console.create_role(RoleName="team-a-legacy", AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    console.create_role(RoleName="team-a-adopted", AssumeRolePolicyDocument=json.dumps(EC2_TRUST), Tags=[{"Key": "owner", "Value": "someone"}])


@pytest.fixture(scope="module")
def golden_server(moto_server: moto.MotoServer) -> Iterator[moto.MotoServer]:
    """A server of its own: the shared one holds other tests' entities under random names."""
    with moto.running() as server:
        with pointed_at(server):
            build_golden_account()
        yield server


@pytest.fixture
def golden(golden_server: moto.MotoServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in golden_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(GOLDEN)  # sources print as manifests/..., the same on every machine
    return GOLDEN


GOLDEN_ARGS = ["manifests", "--prune-scope", "team-a"]
EXPECTED = {
    "web": ("noop", ""),
    "api": ("update", ""),
    "batch": ("create", ""),
    "deployer": ("update", ""),
    "shared": ("conflict", "is not managed by this object (another object manages it)"),  # owner withheld
    "legacy": ("refused", "set spec.adopt: true"),
    "adopted": ("update", "adopts the existing IAM role"),
    "renamed": ("invalid", "spec.roleName: is immutable"),
    "twin-a": ("create", ""),
    "twin-b": ("conflict", "also declared by IAMRole team-a/twin-a"),
    "broken": ("invalid", "spec.maxSessionDuration: 60 is below the minimum 3600"),
    "old-worker": ("delete", "no longer declared"),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_each_action_kind(golden: Path, capsys: Any, name: str) -> None:
    _, doc = plan_json(capsys, *GOLDEN_ARGS)
    action, fragment = EXPECTED[name]
    assert by_name(doc)[name]["action"] == action
    assert fragment in by_name(doc)[name]["message"]


def test_only_scoped_namespaces_are_pruned_and_other_kinds_noted(golden: Path, capsys: Any) -> None:
    code = cli.main(["plan", "--format", "json", *CLUSTER_ARGS, *GOLDEN_ARGS])
    out, err = capsys.readouterr()
    assert sorted(c["name"] for c in json.loads(out)["changes"]) == sorted(EXPECTED)  # no team-b prune
    assert "ignored 1 object(s)" in err and "ConfigMap team-a/settings" in err
    assert "Namespace" not in err  # read for the labels guardrails select namespaces by
    assert code == 1  # conflicts, a refusal and invalid specs: the merge would not converge


@pytest.mark.parametrize(("fmt", "filename"), [("markdown", "plan.md"), ("json", "plan.json"), ("text", "plan.txt")])
def test_golden_output(golden: Path, capsys: Any, fmt: str, filename: str) -> None:
    cli.main(["plan", "--format", fmt, *CLUSTER_ARGS, *GOLDEN_ARGS])
    out = capsys.readouterr().out
    if os.environ.get("ROLEKEEPER_UPDATE_GOLDEN") == "1":
        (GOLDEN / filename).write_text(out)
        pytest.skip(f"rewrote {filename}")
    assert out == (GOLDEN / filename).read_text()


# --- semantics --------------------------------------------------------------------------------

SAME_MEANING = {
    "list-vs-string-no-version": (
        EC2_TRUST,
        {"Statement": {"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}},
    ),
    "bare-account-id": (
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]},
        {"Version": "2012-10-17", "Statement": [{"Action": "sts:AssumeRole", "Principal": {"AWS": "123456789012"}, "Effect": "Allow"}]},
    ),
    "condition-bool-and-order": (
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]},
        {"Statement": [{"Condition": {"Bool": {"aws:MultiFactorAuthPresent": True}}, "Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"AWS": ["123456789012"]}}]},
    ),
}


@pytest.mark.parametrize("case", SAME_MEANING)
def test_equivalent_hand_written_trust_is_noop(clients: Clients, unique: Any, tmp_path: Path, capsys: Any, case: str) -> None:
    applied, hand_written = SAME_MEANING[case]
    name = unique("same")
    reconcile(clients, parse(obj("IAMRole", "team-a", name, name, "uid-1", assumeRolePolicy=applied)))
    _, doc = plan_json(capsys, str(write(tmp_path, obj("IAMRole", "team-a", name, name, assumeRolePolicy=hand_written))))
    # Findings are not this test's subject (an unconditioned account root has RK-TRUST-002).
    assert doc["changes"][0] | {"source": None, "findings": []} == {
        "kind": "IAMRole", "namespace": "team-a", "name": name, "awsName": name, "action": "noop",
        "calls": [], "diff": [], "message": "", "source": None, "findings": [],
    }


def test_changed_trust_shows_a_semantic_diff(clients: Clients, unique: Any, tmp_path: Path, capsys: Any) -> None:
    name = unique("diff")
    reconcile(clients, parse(obj("IAMRole", "team-a", name, name, "uid-1")))
    lambda_trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com"]}, "Action": "sts:AssumeRole"}]}
    _, doc = plan_json(capsys, str(write(tmp_path, obj("IAMRole", "team-a", name, name, "uid-1", assumeRolePolicy=lambda_trust))))
    assert doc["changes"][0]["diff"] == [{
        "field": "spec.assumeRolePolicy",
        "changes": [
            "Statement[0].Principal.Service: - ec2.amazonaws.com",
            "Statement[0].Principal.Service: + lambda.amazonaws.com",
        ],
    }]


# --- the plan is what the operator does -------------------------------------------------------

FULL_ROLE = {
    "path": "/apps/", "description": "Web tier", "maxSessionDuration": 7200,
    "managedPolicies": [S3_READ, DYNAMO_READ], "inlinePolicies": {"write-logs": LOGS_POLICY},
    "permissionsBoundary": BOUNDARY, "tags": {"team": "a", "env": "prod"}, "instanceProfile": True,
}
Scenario = Callable[[Clients, Any, str, Callable[[str], str]], tuple[list[dict[str, Any]], Callable[[], Any]]]


def create_role(clients: Clients, console: Any, ns: str, unique: Callable[[str], str]) -> Any:
    manifest = obj("IAMRole", ns, "web", unique("web"), "uid-1", **FULL_ROLE)
    return [manifest], lambda: reconcile(clients, parse(manifest))


def create_user(clients: Clients, console: Any, ns: str, unique: Callable[[str], str]) -> Any:
    group = unique("grp")
    console.create_group(GroupName=group)
    manifest = obj("IAMUser", ns, "ci", unique("ci"), "uid-1", path="/ci/", groups=[group], managedPolicies=[S3_READ], inlinePolicies={"logs": LOGS_POLICY}, permissionsBoundary=BOUNDARY, tags={"team": "a"})
    return [manifest], lambda: reconcile(clients, parse(manifest))


def drifted_role(clients: Clients, console: Any, ns: str, unique: Callable[[str], str]) -> Any:
    manifest = obj("IAMRole", ns, "web", unique("drift"), "uid-1", **FULL_ROLE)
    name = manifest["spec"]["roleName"]
    reconcile(clients, parse(manifest))
    console.detach_role_policy(RoleName=name, PolicyArn=S3_READ)
    console.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    console.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "999999999999"}, "Action": "sts:AssumeRole"}]}))
    console.put_role_policy(RoleName=name, PolicyName="write-logs", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    console.put_role_policy(RoleName=name, PolicyName="backdoor", PolicyDocument=json.dumps(LOGS_POLICY))
    console.delete_role_permissions_boundary(RoleName=name)
    console.tag_role(RoleName=name, Tags=[{"Key": "team", "Value": "b"}, {"Key": "extra", "Value": "x"}])
    console.update_role(RoleName=name, Description="hacked")
    console.remove_role_from_instance_profile(RoleName=name, InstanceProfileName=name)
    return [manifest], lambda: reconcile(clients, parse(manifest))


def adopted_role(clients: Clients, console: Any, ns: str, unique: Callable[[str], str]) -> Any:
    name = unique("adopt")
    console.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST), Tags=[{"Key": "owner", "Value": "someone"}])
    console.attach_role_policy(RoleName=name, PolicyArn=DYNAMO_READ)
    manifest = obj("IAMRole", ns, "adopted", name, "uid-1", adopt=True, managedPolicies=[S3_READ])
    return [manifest], lambda: reconcile(clients, parse(manifest))


def pruned_role(clients: Clients, console: Any, ns: str, unique: Callable[[str], str]) -> Any:
    gone = parse(obj("IAMRole", ns, "gone", unique("gone"), "uid-1", **FULL_ROLE))
    reconcile(clients, gone)
    console.put_role_policy(RoleName=gone.aws_name, PolicyName="by-hand", PolicyDocument=json.dumps(LOGS_POLICY))
    return [], lambda: finalize(clients, gone)


def pruned_user_with_credentials(clients: Clients, console: Any, ns: str, unique: Callable[[str], str]) -> Any:
    group = unique("grp")
    console.create_group(GroupName=group)
    gone = parse(obj("IAMUser", ns, "gone", unique("gone"), "uid-1", groups=[group], managedPolicies=[S3_READ], inlinePolicies={"logs": LOGS_POLICY}))
    reconcile(clients, gone)
    console.create_access_key(UserName=gone.aws_name)
    console.create_login_profile(UserName=gone.aws_name, Password="Sup3r-secret-pw!")
    return [], lambda: finalize(clients, gone)


def console_profile_left_by_adopted_role(clients: Clients, console: Any, ns: str, unique: Callable[[str], str]) -> Any:
    name = unique("adopt")
    console.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    console.create_instance_profile(InstanceProfileName=name)  # not ours: it must survive
    console.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    manifest = obj("IAMRole", ns, "adopted", name, "uid-1", adopt=True)
    return [manifest], lambda: reconcile(clients, parse(manifest))


def pruned_role_in_console_profile(clients: Clients, console: Any, ns: str, unique: Callable[[str], str]) -> Any:
    name = unique("adopt")
    console.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    console.create_instance_profile(InstanceProfileName=name)
    console.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    gone = parse(obj("IAMRole", ns, "adopted", name, "uid-1", adopt=True, instanceProfile=True))
    reconcile(clients, gone)
    return [], lambda: finalize(clients, gone)


SCENARIOS: dict[str, Scenario] = {
    "create-role": create_role,
    "create-user": create_user,
    "drifted-role": drifted_role,
    "adopted-role": adopted_role,
    "pruned-role": pruned_role,
    "pruned-user-with-credentials": pruned_user_with_credentials,
    "console-profile-left-by-adopted-role": console_profile_left_by_adopted_role,
    "pruned-role-in-console-profile": pruned_role_in_console_profile,
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_planned_calls_are_the_operators_calls(clients: Clients, iam: Any, unique: Any, tmp_path: Path, capsys: Any, scenario: str) -> None:
    ns = unique("ns")
    manifests, operate = SCENARIOS[scenario](clients, iam, ns, unique)
    prune = ["--prune-scope", ns] if not manifests else []
    _, doc = plan_json(capsys, str(write(tmp_path, *manifests)), *prune)
    with recording(clients.iam) as made:
        operate()
    assert len(doc["changes"]) == 1
    assert planned_calls(doc) == made
    assert made, "the scenario makes the operator write"


def test_examples_create_then_noop(moto_server: moto.MotoServer) -> None:
    """The issue's acceptance test: a fresh account, `rolekeeper plan examples/` as CI runs it."""
    with moto.running() as server, pointed_at(server):
        boto3.client("iam", region_name="us-east-1").create_group(GroupName="deployers")
        first = subprocess.run(
            [str(ROLEKEEPER), "plan", "examples/", "--format", "json", "--detailed-exitcode", *CLUSTER_ARGS,
             "--oidc-issuer", OIDC_ISSUER],  # irsa-role.yaml's trust names the cluster's issuer
            cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120, check=False,
        )
        assert first.returncode == 2, first.stderr
        planned = json.loads(first.stdout)
        objects = [d for f in sorted((ROOT / "examples").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d["kind"].startswith("IAM")]
        assert [(c["name"], c["action"]) for c in planned["changes"]] == [(o["metadata"]["name"], "create") for o in objects]
        clients = aws.connect(boto3.session.Session())
        # As the operator converges: referenced IAMPolicy objects first (a role waits for them).
        first = {registry.REFERENCED.name: 0}
        order = sorted(range(len(objects)), key=lambda i: first.get(objects[i]["kind"], 1))
        arns: dict[tuple[str, str], str] = {}
        with recording(clients.iam) as made:
            for o in (objects[i] for i in order):
                uid = f"uid-{o['metadata']['name']}"
                desired, missing = references.resolve(
                    with_trust(parse({**o, "metadata": {**o["metadata"], "uid": uid}})),
                    lambda ref: (arns[(ref.namespace, ref.name)], ""),
                )
                outcome = reconcile(clients, desired)
                assert outcome.ready and not missing
                arns[(o["metadata"]["namespace"], o["metadata"]["name"])] = outcome.verdict.arn
        expected = []
        for change in (planned["changes"][i] for i in order):
            # Manifests from Git have no uid yet: the plan shows a placeholder where it goes.
            text = json.dumps(change["calls"]).replace(UID_PLACEHOLDER, f"uid-{change['name']}")
            expected += [(c["api"], decoded(c["params"])) for c in json.loads(text)]
        assert expected == made
        again = subprocess.run(
            [str(ROLEKEEPER), "plan", "examples/", "--format", "json", "--detailed-exitcode", *CLUSTER_ARGS,
             "--oidc-issuer", OIDC_ISSUER],  # irsa-role.yaml's trust names the cluster's issuer
            cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120, check=False,
        )
        assert again.returncode == 0, again.stderr
        assert {c["action"] for c in json.loads(again.stdout)["changes"]} == {"noop"}


# --- input, errors, exit codes ----------------------------------------------------------------


@pytest.fixture
def empty_snapshot(tmp_path: Path) -> str:
    path = tmp_path / "empty-snapshot.json"
    path.write_text(json.dumps(EMPTY_SNAPSHOT))
    return str(path)


def test_reads_directories_recursively_and_stdin(tmp_path: Path, empty_snapshot: str, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    write(root / "a", obj("IAMRole", "ns", "one", "one"))
    (root / "a" / "b").mkdir()
    (root / "a" / "b" / "two.yml").write_text(yaml.safe_dump(obj("IAMUser", "ns", "two", "two")))
    (root / "a" / "b" / "three.json").write_text(json.dumps(obj("IAMRole", "ns", "three", "three")))
    write(root / ".github", obj("IAMRole", "ns", "hidden", "hidden"))
    (root / "notes.txt").write_text("kind: IAMRole")
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(obj("IAMRole", "ns", "piped", "piped"))))
    _, doc = plan_json(capsys, str(root), "-", "--snapshot", empty_snapshot)
    assert [(c["name"], c["action"], c["source"]["file"]) for c in doc["changes"]] == [
        ("three", "create", str(root / "a" / "b" / "three.json")),
        ("two", "create", str(root / "a" / "b" / "two.yml")),
        ("one", "create", str(root / "a" / "objects.yaml")),
        ("piped", "create", "-"),
    ]


VALID = "apiVersion: iam.rolekeeper.dev/v1alpha1\nkind: IAMRole\nmetadata: {name: ok, namespace: ns}\nspec: {assumeRolePolicy: {Statement: [{Effect: Allow, Principal: {Service: ec2.amazonaws.com}, Action: sts:AssumeRole}]}}\n"
BAD_INPUT = {
    "invalid-field": (VALID + "---\n# a comment\n" + VALID.replace("name: ok", "name: bad").replace("spec: {", "spec: {maxSessionDuration: 60, "), "bad.yaml:7 (document 2): spec.maxSessionDuration: 60 is below the minimum 3600"),
    "list-item": ("kind: List\napiVersion: v1\nitems:\n- " + VALID.replace("\n", "\n  ").replace("spec: {", "spec: {path: apps, ").rstrip() + "\n", "bad.yaml:4 (document 1, items[0]): spec.path: 'apps' must be / or start and end with /"),
    "malformed-yaml": (VALID + "---\nkind: IAMRole\nmetadata: {name: [unclosed\n", "bad.yaml:8 (document 2): malformed YAML column 1:"),
    "declared-twice": (VALID + "---\n" + VALID, "bad.yaml:6 (document 2): IAMRole ns/ok is declared twice (first at"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_names_file_document_and_field(tmp_path: Path, empty_snapshot: str, capsys: Any, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    text, expected = BAD_INPUT[case]
    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["plan", "bad.yaml", "--snapshot", empty_snapshot])
    assert code == 1
    assert f"error: {expected}" in capsys.readouterr().err


def test_unreadable_input_lists_no_prunes(clients: Clients, unique: Any, tmp_path: Path, capsys: Any) -> None:
    """The objects of a file that cannot be read would look undeclared: never plan their delete."""
    ns = unique("ns")
    reconcile(clients, parse(obj("IAMRole", ns, "kept", unique("kept"), "uid-1")))
    (tmp_path / "kept.yaml").write_text("kind: IAMRole\nmetadata: {name: [kept\n")
    code, doc = plan_json(capsys, str(tmp_path), "--prune-scope", ns)
    assert (code, doc["changes"]) == (1, [])
    assert doc["notes"] == ["deletes (--prune-scope) are not listed: some input could not be read"]


@pytest.mark.parametrize(("tty", "no_color", "colored"), [(True, "", True), (False, "", False), (True, "1", False)])
def test_colour_only_on_a_terminal(tmp_path: Path, empty_snapshot: str, capsys: Any, monkeypatch: pytest.MonkeyPatch, tty: bool, no_color: str, colored: bool) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("NO_COLOR", no_color)
    cli.main(["plan", str(write(tmp_path, obj("IAMRole", "ns", "r", "r"))), "--snapshot", empty_snapshot])
    out = capsys.readouterr().out
    assert ("\033[32m+ create IAMRole ns/r" in out) is colored
    assert "+ create IAMRole ns/r" in out


def test_unsupported_snapshot_format_is_an_error(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "snap.json").write_text(json.dumps({**EMPTY_SNAPSHOT, "formatVersion": 99}))
    code = cli.main(["plan", str(write(tmp_path / "m", obj("IAMRole", "ns", "r", "r"))), "--snapshot", str(tmp_path / "snap.json")])
    assert code == 1
    assert "snapshot format 99 is not supported" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("state", "detailed", "code"),
    [("in-sync", True, 0), ("in-sync", False, 0), ("new", True, 2), ("new", False, 0), ("invalid", True, 1), ("invalid", False, 1)],
)
def test_exit_codes(clients: Clients, unique: Any, tmp_path: Path, capsys: Any, state: str, detailed: bool, code: int) -> None:
    name = unique("exit")
    manifest = obj("IAMRole", "team-a", name, name, "uid-1")
    if state == "in-sync":
        reconcile(clients, parse(manifest))
    if state == "invalid":
        manifest["spec"]["maxSessionDuration"] = 1
    flags = ["--detailed-exitcode"] if detailed else []
    assert cli.main(["plan", str(write(tmp_path, manifest)), *flags]) == code


def test_snapshot_file_plans_with_aws_unreachable(clients: Clients, iam: Any, unique: Any, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = unique("ns")
    kept = obj("IAMRole", ns, "kept", unique("kept"), "uid-1", managedPolicies=[S3_READ])
    reconcile(clients, parse(kept))
    reconcile(clients, parse(obj("IAMRole", ns, "gone", unique("gone"), "uid-2")))
    reconcile(clients, parse(obj("IAMUser", ns, "gone-user", unique("gone"), "uid-3", managedPolicies=[S3_READ])))
    iam.update_role(RoleName=kept["spec"]["roleName"], Description="edited by hand")
    manifests = str(write(tmp_path / "m", kept))
    _, live = plan_json(capsys, manifests, "--prune-scope", ns)
    assert cli.main(["snapshot"]) == 0  # as `rolekeeper snapshot > FILE`
    (tmp_path / "snap.json").write_text(capsys.readouterr().out)
    closed = f"http://127.0.0.1:{moto.free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", closed)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", closed)
    with pytest.raises(EndpointConnectionError):  # the endpoint really is unreachable
        boto3.client("sts", region_name="us-east-1", config=Config(retries={"max_attempts": 1})).get_caller_identity()
    code, offline = plan_json(capsys, manifests, "--prune-scope", ns, "--snapshot", str(tmp_path / "snap.json"))
    assert code == 0
    assert [c["action"] for c in offline["changes"]] == ["update", "delete", "delete"]
    # Only a live read sees a user's credentials: the snapshot says so instead of guessing.
    assert "the snapshot holds no access keys" in offline["changes"][2].pop("message")
    assert "the snapshot holds no access keys" not in live["changes"][2].pop("message")
    assert offline == live


def documented_actions() -> set[str]:
    """The actions of the policy in docs/plan.md (its only JSON block with a Sid)."""
    for block in (ROOT / "docs" / "plan.md").read_text().split("```json\n")[1:]:
        doc = json.loads(block.split("```", 1)[0])
        if "Sid" in doc.get("Statement", [{}])[0]:
            return set(doc["Statement"][0]["Action"])
    raise AssertionError("docs/plan.md has no policy")


def test_docs_policy_is_exactly_the_calls_plan_makes(clients: Clients, iam: Any, unique: Any, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of reading (per entity; snapshot with prunes of a user and a role with a
    profile) against drifted entities: every IAM call made is in docs/plan.md, and no more."""
    used: list[Clients] = []
    connect = aws.connect

    def counted_connect(*args: Any, **kwargs: Any) -> Clients:
        used.append(connect(*args, **kwargs))
        return used[-1]

    monkeypatch.setattr(aws, "connect", counted_connect)
    ns = unique("ns")
    with_inline = {"inlinePolicies": {"logs": LOGS_POLICY}}
    kept_policy = obj("IAMPolicy", ns, "policy", unique("policy"), "uid-5", document=LOGS_POLICY)
    policy_arn = f"arn:aws:iam::123456789012:policy/{kept_policy['spec']['policyName']}"
    kept_role = obj("IAMRole", ns, "role", unique("role"), "uid-1", instanceProfile=True, **with_inline)
    kept_user = obj("IAMUser", ns, "user", unique("user"), "uid-2", **with_inline)
    for o in (kept_policy, kept_role, kept_user, obj("IAMRole", ns, "gone-role", unique("gone"), "uid-3", instanceProfile=True), obj("IAMUser", ns, "gone-user", unique("gone"), "uid-4")):
        reconcile(clients, parse(o))
    iam.tag_role(RoleName=kept_role["spec"]["roleName"], Tags=[{"Key": "drift", "Value": "x"}])
    # The role now also attaches the policy: plan looks it up first, as the operator does.
    kept_role["spec"]["managedPolicies"] = [policy_arn]
    manifests = str(write(tmp_path, kept_policy, kept_role, kept_user))
    plan_json(capsys, manifests)
    _, pruned = plan_json(capsys, manifests, "--prune-scope", ns)
    assert [c["action"] for c in pruned["changes"]] == ["noop", "update", "noop", "delete", "delete"]
    assert cli.main(["snapshot", "-o", str(tmp_path / "snap.json")]) == 0
    made = {f"iam:{op}" for c in used for op in c.counter.calls}
    assert made == documented_actions()


def test_plan_client_refuses_writes(clients: Clients, unique: Any) -> None:
    aws.read_only(clients.iam)
    with pytest.raises(RuntimeError, match="read-only: refusing IAM CreateRole"):
        clients.iam.create_role(RoleName=unique("never"), AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    assert "CreateRole" not in clients.counter.calls  # stopped before it was sent
