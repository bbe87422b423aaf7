"""Installing Rolekeeper from manifests/ on a real API server, and its least-privilege RBAC.

Covers: `kubectl apply -k manifests/ --dry-run=server` is accepted once crds/, the Kopf peering
CRDs and the namespace exist; a real apply leaves nothing for `kubectl diff` (idempotent
upgrades); the operator, run with the Deployment's own arguments (cluster-wide, peering, JSON
logs) and authenticated as the ServiceAccount the manifests bind, serves a whole scenario (role,
user and IAMPolicy Ready, drift reverted with an Event, delete cleans AWS and releases the
finalizer; the role's ServiceAccount annotated for IRSA, the annotation gone with the role,
with the issuer read from the API server as that ServiceAccount); the apiserver's audit log of that run shows no request refused and every verb the
ClusterRole grants used (a missing and an excess rule both fail); a ClusterRole copy without
the status rule leaves objects without status while AWS changes, one without the events rule
leaves them without Events; the ServiceAccount cannot read Secrets, start workloads or delete our objects;
the metrics after the scenario (reconciles, durations, AWS calls by operation and code, drift
corrections, objects by reason, snapshot age), each documented in docs/metrics.md; the
operator's RSS after the scenario stays below the Deployment's memory request; the INFO log
is JSON and holds no policy document and no secret.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.operator import metrics
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import REPO_ROOT, Cluster, ControlPlane
from tests.harness.operator import Operator
from tests.harness.util import until
from tests.helpers import S3_READ, aws_name, iam_role, iam_user, manifest

pytestmark = pytest.mark.e2e

MANIFESTS = REPO_ROOT / "manifests"
PEERING_CRDS = MANIFESTS / "crds"
SA_NAMESPACE, SA_NAME = "rolekeeper-system", "rolekeeper"
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
DRIFT_INTERVAL = 3.0


class AuditedControlPlane(ControlPlane):
    """The local control plane, plus an audit log of every request the operator's
    ServiceAccount makes (verb, resource, response code): the ground truth for RBAC."""

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def _apiserver_argv(self, port: int) -> list[str]:
        policy = self.workdir / "audit-policy.json"
        policy.write_text(json.dumps({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata", "users": [SA_USER]}, {"level": "None"}],
        }))
        return [*super()._apiserver_argv(port), f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}"]

    def operator_requests(self) -> list[dict[str, Any]]:
        """Audit events of requests authenticated as the ServiceAccount itself (not kubectl
        impersonating it)."""
        events = [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]
        return [e for e in events
                if e["user"]["username"] == SA_USER and "impersonatedUser" not in e]


def rendered(cluster: Cluster) -> list[dict[str, Any]]:
    """manifests/ as kustomize renders it (the kustomize built into kubectl)."""
    return list(yaml.safe_load_all(cluster.kubectl("kustomize", str(MANIFESTS)).stdout))


def find(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


def deployment_args(cluster: Cluster) -> list[str]:
    """The Deployment's arguments; the harness sets ports and a short drift interval."""
    args = find(rendered(cluster), "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "run"
    return [a for a in args[1:]
            if not a.startswith(("--liveness", "--metrics-port", "--drift-interval"))]


def install_crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(REPO_ROOT / "crds"), "-f", str(PEERING_CRDS))
    kube.wait_established(cluster, "iamroles.iam.rolekeeper.dev", "iamusers.iam.rolekeeper.dev",
                          "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")


# --- the installed operator ---------------------------------------------------------------


@pytest.fixture(scope="module")
def plane(control_plane: Cluster) -> Iterator[AuditedControlPlane]:
    """A control plane of this module's own: the audit flags need a fresh apiserver, and a
    cluster-wide operator here cannot meet the session operator's objects."""
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("the RBAC audit needs the local control plane, not RK_E2E_KUBECONFIG")
    with AuditedControlPlane(control_plane.binaries) as audited:
        install_crds(audited)
        audited.kubectl("apply", "-k", str(MANIFESTS))
        yield audited


@pytest.fixture(scope="module")
def sa_operator(plane: AuditedControlPlane, aws: Aws,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """`rolekeeper run` with the Deployment's arguments, as the ServiceAccount of manifests/."""
    # TokenRequest for the ServiceAccount that `apply -k` created (service_account_token()
    # would first try to create it).
    token = plane.kubectl("create", "token", SA_NAME, "-n", SA_NAMESPACE,
                          "--duration=1h").stdout.strip()
    kubeconfig = plane.kubeconfig_for_token(token, tmp_path_factory.mktemp("sa") / "kubeconfig",
                                            user=SA_USER)
    op = Operator(kubeconfig, aws.env, drift_interval=DRIFT_INTERVAL,
                  extra_args=deployment_args(plane))
    op.argv.remove("--standalone")  # the Deployment peers; so does this run
    op.start()
    try:
        yield op
    finally:
        op.stop()


@dataclass
class Scenario:
    """What the representative scenario did and saw, for the tests below to judge."""

    namespace: str
    role_name: str
    user_name: str
    policy_markers: tuple[str, ...]
    secret: str
    finalizers_while_alive: list[str]
    drift_event: str
    events: dict[str, set[str]] = field(default_factory=dict)
    left_in_aws: list[str] = field(default_factory=list)
    # eks.amazonaws.com/role-arn of the web role's ServiceAccount: while the role lives, after.
    irsa_annotation: tuple[str | None, str | None] = (None, None)


@pytest.fixture(scope="module")
def scenario(plane: AuditedControlPlane, sa_operator: Operator, aws: Aws) -> Scenario:
    """Create an IAMPolicy, a role (managed + inline policy) and a user → Ready; revert drift on
    the inline policy; give the user an access key by hand; delete the role, the user and the
    IAMPolicy. Two more roles stay: one Synced, one InvalidSpec (for the objects-by-reason
    gauge)."""
    iam = aws.console()
    ns = plane.create_namespace("team-a")
    role_name, user_name, kept_name = aws_name("web"), aws_name("ci"), aws_name("kept")
    policy_name = aws_name("perm")
    spec_marker = f"spec-marker-{secrets.token_hex(6)}"
    hand_marker = f"hand-marker-{secrets.token_hex(6)}"
    policy_marker = f"policy-marker-{secrets.token_hex(6)}"
    inline = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadBucket", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{spec_marker}/*"}]}
    # The IAMPolicy kind needs the iampolicies and iampolicies/status rules (its finalizer, its
    # status). Nothing references it: a role waiting for a policy (DependencyNotReady) reads
    # before it creates, and the metrics below prove that new objects create without a read.
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{policy_marker}/*"}]}
    # IRSA (spec.serviceAccounts) needs the serviceaccounts get and patch rules.
    plane.kubectl("create", "serviceaccount", "web", "-n", ns)
    kube.apply(plane, ns,
               manifest("IAMPolicy", "perm", {"policyName": policy_name, "document": document},
                        namespace=None),
               iam_role("web", role_name, managedPolicies=[S3_READ], inlinePolicies={"read": inline},
                        serviceAccounts=[{"name": "web"}]),
               iam_user("ci", user_name, managedPolicies=[S3_READ]),
               iam_role("kept", kept_name),
               iam_role("invalid", aws_name("invalid"), inlinePolicies={"p": {
                   "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                           "Action": "s3:GetObject",
                                                           "Resource": "*"}]}}))
    for kind, name in (("iampolicy", "perm"), ("iamrole", "web"), ("iamuser", "ci"),
                       ("iamrole", "kept")):
        kube.wait_ready(plane, ns, kind, name)
    kube.wait_reason(plane, ns, "iamrole", "invalid", "InvalidSpec")
    finalizers = kube.get(plane, ns, "iamrole", "web")["metadata"].get("finalizers", [])
    annotated = _role_arn_annotation(plane, ns, "web")

    # A console edit of the inline policy: the operator must put the spec's version back.
    edited = {**inline, "Statement": [{**inline["Statement"][0],
                                       "Resource": f"arn:aws:s3:::{hand_marker}/*"}]}
    iam.put_role_policy(RoleName=role_name, PolicyName="read", PolicyDocument=json.dumps(edited))
    until(lambda: spec_marker in json.dumps(
        iam.get_role_policy(RoleName=role_name, PolicyName="read")["PolicyDocument"]),
        DRIFT_INTERVAL * 3 + 10, "inline policy drift reverted")
    drift_event = until(
        lambda: next((e["message"] for e in kube.events(plane, ns, "web")
                      if e["reason"] == "DriftReverted"), None), 15, "a DriftReverted event")

    secret = iam.create_access_key(UserName=user_name)["AccessKey"]["SecretAccessKey"]
    plane.kubectl("delete", "iamrole", "web", "-n", ns, "--timeout=60s")
    plane.kubectl("delete", "iamuser", "ci", "-n", ns, "--timeout=60s")
    plane.kubectl("delete", "iampolicy", "perm", "-n", ns, "--timeout=60s")
    irsa = (annotated, _role_arn_annotation(plane, ns, "web"))
    left = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] == role_name]
    left += [u["UserName"] for u in iam.list_users()["Users"] if u["UserName"] == user_name]
    left += [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]
             if p["PolicyName"] == policy_name]
    return Scenario(
        namespace=ns, role_name=role_name, user_name=user_name,
        policy_markers=(spec_marker, hand_marker, policy_marker), secret=secret,
        finalizers_while_alive=finalizers, drift_event=drift_event,
        events={name: kube.applied_calls(plane, ns, name)
                for name in ("web", "ci", "perm")},
        left_in_aws=left,
        irsa_annotation=irsa,
    )


def _role_arn_annotation(cluster: Cluster, namespace: str, name: str) -> str | None:
    found = json.loads(cluster.kubectl("get", "serviceaccount", name, "-n", namespace,
                                       "-o", "json").stdout)
    return (found["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn")


# --- install --------------------------------------------------------------------------------


def test_kustomize_dry_run_is_accepted_by_the_api_server(crds: Cluster) -> None:
    install_crds(crds)
    # A server-side dry run cannot create the namespace its other objects live in.
    crds.kubectl("apply", "-f", str(MANIFESTS / "namespace.yaml"))

    done = crds.kubectl("apply", "-k", str(MANIFESTS), "--dry-run=server")

    applied = {line.split()[0].split("/")[0] for line in done.stdout.splitlines()}
    assert applied == {
        "namespace", "serviceaccount", "clusterrole.rbac.authorization.k8s.io",
        "clusterrolebinding.rbac.authorization.k8s.io", "clusterkopfpeering.kopf.dev",
        "deployment.apps", "service", "poddisruptionbudget.policy", "networkpolicy.networking.k8s.io",
    }, done.stdout
    # The namespace enforces the `restricted` Pod Security level: the pod template meets it.
    assert "violate PodSecurity" not in done.stderr, done.stderr


def test_reapplying_the_manifests_changes_nothing(plane: AuditedControlPlane) -> None:
    done = plane.kubectl("diff", "-k", str(MANIFESTS), check=False)

    assert done.returncode == 0, done.stdout + done.stderr


# --- the operator as the ServiceAccount -------------------------------------------------------


def test_operator_serves_the_scenario_as_the_service_account(scenario: Scenario) -> None:
    assert scenario.finalizers_while_alive == ["iam.rolekeeper.dev/finalizer"]
    assert "Updated inline policy read" in scenario.drift_event
    assert {"CreateRole", "AttachRolePolicy", "PutRolePolicy", "DriftReverted",
            "DeleteRole"} <= scenario.events["web"]
    assert {"CreateUser", "AttachUserPolicy", "DeleteAccessKey", "DeleteUser"} <= scenario.events["ci"]
    assert {"CreatePolicy", "DeletePolicy"} <= scenario.events["perm"]
    assert scenario.left_in_aws == []
    arn = f"arn:aws:iam::123456789012:role/{scenario.role_name}"
    assert scenario.irsa_annotation == (arn, None)


def test_audit_log_shows_every_granted_verb_used_and_none_refused(
    scenario: Scenario, plane: AuditedControlPlane
) -> None:
    requests = plane.operator_requests()
    refused = [(r["verb"], r["requestURI"]) for r in requests if r["responseStatus"]["code"] == 403]
    assert refused == []
    used = {(r["objectRef"].get("apiGroup", ""), r["objectRef"]["resource"]
             + ("/" + r["objectRef"]["subresource"] if r["objectRef"].get("subresource") else ""),
             r["verb"], r["objectRef"].get("name"))
            for r in requests if "objectRef" in r and r["responseStatus"]["code"] < 400}
    unused = []
    for rule in find(rendered(plane), "ClusterRole")["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    names = rule.get("resourceNames")
                    if not any(u[:3] == (group, resource, verb) and (not names or u[3] in names)
                               for u in used):
                        unused.append((group, resource, verb))
    assert unused == [], f"granted but never used (excess rule?): {unused}"


@pytest.mark.parametrize(
    ("dropped", "expect_403"),
    [("iamroles/status", "iamroles/status"), ("events", "/events")],
    ids=["no-status-rule", "no-events-rule"],
)
def test_a_missing_rule_breaks_its_feature(
    crds: Cluster, aws: Aws, tmp_path: Path, dropped: str, expect_403: str
) -> None:
    """A namespaced copy of the operator (the session control plane, its own namespace) bound to
    the ClusterRole minus one rule; Kopf needs namespaces list/watch in --namespace mode."""
    ns = crds.create_namespace("rk-rbac-missing")
    role = find(rendered(crds), "ClusterRole")
    role["metadata"]["name"] = name = f"rk-without-{secrets.token_hex(4)}"
    role["rules"] = [r for r in role["rules"] if dropped not in r["resources"]]
    role["rules"].append({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]})
    crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(role))
    crds.kubectl("create", "serviceaccount", "op", "-n", ns)
    crds.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}",
                 f"--serviceaccount={ns}:op")
    token = crds.kubectl("create", "token", "op", "-n", ns).stdout.strip()
    kubeconfig = crds.kubeconfig_for_token(token, tmp_path / "kubeconfig")
    role_name = aws_name("partial")
    with Operator(kubeconfig, aws.env, namespaces=[ns], drift_interval=DRIFT_INTERVAL) as op:
        kube.apply(crds, ns, iam_role("partial", role_name))
        iam = aws.console()
        until(lambda: any(r["RoleName"] == role_name for r in iam.list_roles()["Roles"]),
              30, "the role created in AWS")
        if dropped == "events":
            kube.wait_ready(crds, ns, "iamrole", "partial")
        until(lambda: expect_403 in _forbidden(op), 30, f"a 403 on {expect_403}")
        obj = kube.get(crds, ns, "iamrole", "partial")
        events = kube.events(crds, ns, "partial")
    if dropped == "iamroles/status":
        # AWS changed, yet nobody can see it: no Ready, no ARN; `kubectl wait` would time out.
        assert obj["status"] == {"observedGeneration": 0}  # the CRD's default: never written
        assert "iam.rolekeeper.dev/finalizer" in obj["metadata"]["finalizers"]
    else:
        # Reconciling works; the audit trail in Events is gone.
        assert obj["status"]["conditions"][0]["reason"] == "Synced"
        assert events == []


def _forbidden(op: Operator) -> str:
    return "\n".join(line for line in op.log_path.read_text().splitlines() if "403" in line)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("get", "secrets"), ("list", "secrets"), ("list", "configmaps"),
        ("create", "pods"), ("create", "deployments.apps"), ("create", "serviceaccounts/token"),
        ("create", "iamroles.iam.rolekeeper.dev"), ("update", "iamroles.iam.rolekeeper.dev"),
        ("delete", "iamusers.iam.rolekeeper.dev"), ("delete", "events"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "clusterkopfpeerings.kopf.dev/someone-else"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "users"),
    ],
)
def test_service_account_cannot(plane: AuditedControlPlane, verb: str, resource: str) -> None:
    done = plane.kubectl("auth", "can-i", verb, resource, "-A", f"--as={SA_USER}", check=False)

    assert done.stdout.strip() == "no", (verb, resource, done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [("patch", "iamroles.iam.rolekeeper.dev/status"), ("create", "events"),
     ("patch", "clusterkopfpeerings.kopf.dev/rolekeeper")],
)
def test_service_account_can(plane: AuditedControlPlane, verb: str, resource: str) -> None:
    """The check above can say yes: a broken `--as` would make every answer "no"."""
    done = plane.kubectl("auth", "can-i", verb, resource, "-A", f"--as={SA_USER}", check=False)

    assert done.stdout.strip() == "yes", (verb, resource, done.stdout, done.stderr)


# --- metrics and logs -------------------------------------------------------------------------


def samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of the series of `name` whose labels include `labels`."""
    found = []
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            found.append(float(match[3]))
    return found


def test_metrics_after_the_scenario(scenario: Scenario, sa_operator: Operator) -> None:
    text = sa_operator.metrics()

    assert sum(samples(text, "rolekeeper_reconcile_total", kind="IAMRole", trigger="change",
                       result="synced")) >= 2
    assert sum(samples(text, "rolekeeper_reconcile_total", kind="IAMRole", trigger="delete",
                       result="deleted")) == 1
    assert sum(samples(text, "rolekeeper_reconcile_total", kind="IAMRole",
                       result="invalidspec")) >= 1
    assert sum(samples(text, "rolekeeper_reconcile_duration_seconds_count", kind="IAMUser",
                       trigger="change")) >= 1
    assert samples(text, "rolekeeper_reconcile_duration_seconds_bucket", kind="IAMRole",
                   trigger="drift", le="+Inf")
    assert sum(samples(text, "rolekeeper_aws_api_calls_total", operation="CreateRole", code="")) == 2
    # New objects are created without a read first; the delete reads the role it removes
    # (a success: empty code label).
    assert sum(samples(text, "rolekeeper_aws_api_calls_total", operation="GetRole", code="")) >= 1
    assert not samples(text, "rolekeeper_aws_api_calls_total", operation="GetRole",
                       code="NoSuchEntity")
    assert sum(samples(text, "rolekeeper_drift_corrections_total", kind="IAMRole",
                       operation="PutRolePolicy")) == 1
    # Deleted objects leave the gauge; the two that stay are counted by their reason.
    assert samples(text, "rolekeeper_objects", kind="IAMRole", reason="Synced") == [1.0]
    assert samples(text, "rolekeeper_objects", kind="IAMRole", reason="InvalidSpec") == [1.0]
    assert samples(text, "rolekeeper_objects", kind="IAMUser", reason="Synced") == [0.0]
    age = samples(text, "rolekeeper_snapshot_age_seconds")
    assert len(age) == 1 and 0 <= age[0] < DRIFT_INTERVAL * 10


def test_rss_after_the_scenario_fits_the_deployment_memory_request(
    scenario: Scenario, sa_operator: Operator, plane: AuditedControlPlane
) -> None:
    resources = find(rendered(plane), "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "resources"]
    request_mib = int(resources["requests"]["memory"].removesuffix("Mi"))
    limit_mib = int(resources["limits"]["memory"].removesuffix("Mi"))
    rss_mib = sa_operator.rss_kib() / 1024
    print(f"\noperator RSS after the scenario: {rss_mib:.0f} MiB "
          f"(request {request_mib} MiB, limit {limit_mib} MiB)")

    assert rss_mib < request_mib < limit_mib


def test_every_metric_is_documented() -> None:
    documented = (REPO_ROOT / "docs" / "metrics.md").read_text()
    names = {family.name for family in metrics.REGISTRY.collect()}

    assert names and {n for n in names if f"`{n}" not in documented} == set()


def test_info_log_is_json_without_policies_or_secrets(
    scenario: Scenario, sa_operator: Operator
) -> None:
    time.sleep(DRIFT_INTERVAL)  # one more sweep over what stayed
    lines = [line for line in sa_operator.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # --log-format json: every line parses

    assert any(r.get("object", {}).get("name") == "web" or "web" in r.get("message", "")
               for r in records), "the log says nothing about the scenario's objects"
    text = "\n".join(lines)
    assert scenario.secret not in text
    for marker in scenario.policy_markers:
        assert marker not in text
    assert "Statement" not in text
