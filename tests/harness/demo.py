"""`make demo`: Rolekeeper's main job end to end, on a local control plane and a local AWS endpoint.

Starts (or, with KUBECONFIG set, uses) a Kubernetes API server, starts a moto server as AWS,
runs `rolekeeper run`, applies examples/ (a boundary IAMPolicy the platform namespace publishes,
roles that reference it), shows READY and ARNs, edits a role behind the operator's back and shows
it put back, has a guardrail refuse a tenant's admin role (at `rolekeeper plan` and in the
cluster, with no AWS call), rotates the CI user's access key (key ids only, never the secret),
deletes an object and shows AWS clean, then tears down.
Nothing here touches a real AWS account: the endpoint is always the local one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3

from tests.harness import moto
from tests.harness.envtest import Cluster, ControlPlane, ExternalCluster, ensure_binaries
from tests.harness.kube import wait_established
from tests.harness.operator import Operator
from tests.harness.util import Timeout, until
from tests.helpers import S3_READ

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".rk-demo"
DRIFT_INTERVAL = 10.0
ROLE = "team-a-web-ec2"
BOLD, DIM, GREEN, RESET = ("\033[1m", "\033[2m", "\033[32m", "\033[0m") if sys.stdout.isatty() else ("",) * 4


def step(text: str) -> None:
    print(f"\n{BOLD}==> {text}{RESET}", flush=True)


def show(text: str) -> None:
    print("    " + text.rstrip().replace("\n", "\n    "), flush=True)


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("RK_DEMO_KUBECONFIG")  # set by `make demo KUBECONFIG=...`
    if external:
        step(f"Using the existing cluster from KUBECONFIG={external}")
        yield ExternalCluster(Path(external))
        return
    step("Starting a local control plane (etcd + kube-apiserver on 127.0.0.1)")
    binaries = ensure_binaries()  # builds once from the Go module proxy, then cached
    with ControlPlane(binaries) as plane:
        show(f"kube-apiserver ready; kubeconfig {plane.kubeconfig}")
        yield plane


def wait_for(probe: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    try:
        until(probe, timeout)
    except Timeout:
        raise SystemExit(f"demo failed: condition not met within {timeout:.0f}s") from None
    return time.monotonic() - started


def role_state(iam: Any) -> str:
    role = iam.get_role(RoleName=ROLE)["Role"]
    principal = role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    policies = [p["PolicyArn"].rsplit("/", 1)[-1]
                for p in iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]]
    return f"trust principal: {json.dumps(principal)}   managed policies: {policies or '(none)'}"


CRDS = ("iamroles", "iamusers", "iampolicies", "iamguardrails", "iamaccounts")
KINDS = "iamroles,iamusers,iampolicies"
GUARDRAIL = """
apiVersion: iam.rolekeeper.dev/v1alpha1
kind: IAMGuardrail
metadata: {name: tenants}
spec:
  namespaceSelector: {matchLabels: {rolekeeper.dev/tenant: "true"}}
  managedPolicies: {denied: ["arn:aws:iam::aws:policy/AdministratorAccess"]}
  roles: {trust: {}}
"""
ADMIN_ROLE = """
apiVersion: iam.rolekeeper.dev/v1alpha1
kind: IAMRole
metadata: {name: escalate, namespace: team-a}
spec:
  roleName: team-a-escalate
  assumeRolePolicy:
    Version: "2012-10-17"
    Statement: [{Effect: Allow, Principal: "*", Action: sts:AssumeRole}]
  managedPolicies: [arn:aws:iam::aws:policy/AdministratorAccess]
"""


def guardrail_step(kube: Cluster, iam: Any) -> None:
    """A platform team's guardrail, and a tenant asking for an admin role anyone can assume."""
    step("The platform team applies a guardrail to tenant namespaces (team-a is labelled one)")
    kube.kubectl("label", "namespace", "team-a", "rolekeeper.dev/tenant=true", "--overwrite")
    (WORK / "guardrail.yaml").write_text(GUARDRAIL)
    (WORK / "escalate.yaml").write_text(ADMIN_ROLE)
    show(kube.kubectl("apply", "-f", str(WORK / "guardrail.yaml")).stdout)
    step("A tenant's pull request asks for AdministratorAccess trusted by anyone: rolekeeper plan")
    namespace = '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", ' \
        '"labels": {"rolekeeper.dev/tenant": "true"}}}'
    (WORK / "namespace.json").write_text(namespace)
    planned = subprocess.run(
        [str(REPO / ".venv" / "bin" / "rolekeeper"), "plan", str(WORK / "escalate.yaml"),
         "--snapshot", str(WORK / "empty-snapshot.json"), "--guardrails", str(WORK / "guardrail.yaml"),
         "--guardrails", str(WORK / "namespace.json")],
        capture_output=True, text=True, check=False, timeout=60)
    show(planned.stdout)
    step("Applied anyway: the operator refuses it before any AWS call")
    show(kube.kubectl("apply", "-f", str(WORK / "escalate.yaml")).stdout)
    took = wait_for(lambda: "GuardrailViolation" in kube.kubectl(
        "get", "iamrole", "escalate", "-n", "team-a", "-o", "jsonpath={.status.conditions}").stdout, 60)
    message = kube.kubectl("get", "iamrole", "escalate", "-n", "team-a",
                           "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].message}").stdout
    show(f"{GREEN}after {took:.1f}s:{RESET} Ready=False GuardrailViolation: {message}")
    if "team-a-escalate" in [r["RoleName"] for r in iam.list_roles()["Roles"]]:
        raise SystemExit("demo failed: a guardrail-denied role exists in AWS")
    show("team-a-escalate does not exist in AWS")
    kube.kubectl("delete", "-f", str(WORK / "escalate.yaml"), "--timeout=60s")
    kube.kubectl("delete", "-f", str(WORK / "guardrail.yaml"))


def pod_identity_step(kube: Cluster, iam: Any) -> None:
    """IRSA from spec.serviceAccounts: the trust the operator wrote, and the ServiceAccount's
    annotation; and the one Event that lists what creating a role took."""
    step("Pods get a role: IAMRole uploader lists ServiceAccount team-a/uploader (IRSA)")
    account = json.loads(kube.kubectl("get", "serviceaccount", "uploader", "-n", "team-a",
                                      "-o", "json").stdout)
    annotation = account["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
    show(f"ServiceAccount team-a/uploader: eks.amazonaws.com/role-arn={annotation}")
    trust = iam.get_role(RoleName="team-a-uploader")["Role"]["AssumeRolePolicyDocument"]
    for statement in trust["Statement"]:
        if statement.get("Sid") == "RolekeeperIRSA":
            show(f"trust written by the operator: {statement['Action']} from "
                 f"{statement['Principal']['Federated']}")
            show(f"  when {json.dumps(statement['Condition']['StringEquals'])}")
    if not annotation or not annotation.endswith(":role/team-a-uploader"):
        raise SystemExit("demo failed: the uploader ServiceAccount has no role annotation")
    step("What creating web-ec2 took, in its one Event: kubectl get events")
    show(kube.kubectl("get", "events", "-n", "team-a", "--field-selector",
                      "involvedObject.name=web-ec2,reason=Created",
                      "-o", "custom-columns=REASON:.reason,FROM:.source.component,"
                      "MESSAGE:.message").stdout)


def secret_key_id(kube: Cluster) -> str:
    """The access key id the CI user's Secret holds (an id, not the secret)."""
    encoded = kube.kubectl("get", "secret", "ci-deployer-aws-credentials", "-n", "team-a",
                           "-o", "jsonpath={.data.AWS_ACCESS_KEY_ID}", check=False).stdout
    return base64.b64decode(encoded).decode() if encoded else ""


def rotation_step(kube: Cluster, iam: Any) -> None:
    """The CI user's access key, delivered as a Secret, rotated on request (ids only shown)."""
    step("The CI user's key lives in Secret team-a/ci-deployer-aws-credentials; rotate it now")
    old = secret_key_id(kube)
    show(f"Secret holds key {old}")
    kube.kubectl("annotate", "iamuser", "ci-deployer", "-n", "team-a",
                 f"rolekeeper.dev/rotate-key={int(time.time())}", "--overwrite")
    took = wait_for(lambda: secret_key_id(kube) not in ("", old), 60)
    keys = [k["AccessKeyId"] + f" ({k['Status']})"
            for k in iam.list_access_keys(UserName="team-a-ci-deployer")["AccessKeyMetadata"]]
    show(f"{GREEN}after {took:.1f}s:{RESET} Secret holds key {secret_key_id(kube)}; "
         f"keys in AWS: {keys} (the old one works until the grace period ends)")


def main() -> int:
    WORK.mkdir(exist_ok=True)
    (WORK / "empty-snapshot.json").write_text(json.dumps(
        {"formatVersion": 1, "account": "123456789012", "partition": "aws", "takenAt": ""}))
    step("Starting a local AWS endpoint (moto server on 127.0.0.1, AWS managed policies loaded)")
    with moto.running() as aws, cluster() as kube:
        show(f"AWS IAM endpoint {aws.url}")
        iam = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1").client("iam", endpoint_url=aws.url)
        step("Installing the CRDs (kubectl apply -f crds/)")
        show(kube.kubectl("apply", "-f", str(REPO / "crds")).stdout)
        wait_established(kube, *(f"{plural}.iam.rolekeeper.dev" for plural in CRDS))
        # The CI user example joins a group the platform team owns; create it like they would.
        iam.create_group(GroupName="deployers")
        step(f"Running the operator: rolekeeper run --drift-interval {DRIFT_INTERVAL:.0f}")
        operator = Operator(kube.kubeconfig, aws.env, drift_interval=DRIFT_INTERVAL)
        operator.log_path = WORK / "operator.log"
        with operator:
            show(f"pid {operator.pid}, log {operator.log_path}")
            step("Applying examples/ (kubectl apply -f examples/)")
            show(kube.kubectl("apply", "-f", str(REPO / "examples")).stdout)
            started = time.monotonic()
            for namespace in ("platform", "team-a"):
                kube.kubectl("wait", "--for=condition=Ready", "--timeout=120s", "-n", namespace,
                             KINDS, "--all", timeout=130)
            step(f"All Ready in {time.monotonic() - started:.1f}s: kubectl get {KINDS} -A")
            show(kube.kubectl("get", KINDS, "-A").stdout)
            show("team-a-thumbnailer's boundary, referenced by name (managed by platform):")
            boundary = iam.get_role(RoleName="team-a-thumbnailer")["Role"]["PermissionsBoundary"]
            show(f"  {boundary['PermissionsBoundaryArn']}")
            pod_identity_step(kube, iam)

            step(f"Someone edits {ROLE} in the console: detaches S3 read, trusts a foreign account")
            show("before: " + role_state(iam))
            iam.detach_role_policy(RoleName=ROLE, PolicyArn=S3_READ)
            iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                    "Action": "sts:AssumeRole"}]}))
            show("edited: " + role_state(iam))
            show(f"{DIM}waiting for the drift check (every {DRIFT_INTERVAL:.0f}s)...{RESET}")
            took = wait_for(lambda: "ec2.amazonaws.com" in role_state(iam)
                            and "AmazonS3ReadOnlyAccess" in role_state(iam), DRIFT_INTERVAL * 3 + 15)
            show(f"{GREEN}after {took:.1f}s:{RESET} " + role_state(iam))
            events = kube.kubectl("get", "events", "-n", "team-a",
                                  "--field-selector=reason=DriftReverted",
                                  "-o", "custom-columns=OBJECT:.involvedObject.name,MESSAGE:.message")
            show(events.stdout)

            guardrail_step(kube, iam)
            rotation_step(kube, iam)

            step("Deleting one object: kubectl delete iamrole thumbnailer -n team-a")
            show(kube.kubectl("delete", "iamrole", "thumbnailer", "-n", "team-a",
                              "--timeout=60s").stdout)
            left = [r["RoleName"] for r in iam.list_roles()["Roles"]]
            show(f"roles in AWS now: {left}")
            if "team-a-thumbnailer" in left:
                raise SystemExit("demo failed: the deleted role is still in AWS")
            step("Cleaning up: deleting the remaining examples (the operator empties AWS)")
            # Only the IAM objects: a local control plane has no controller-manager to finish
            # deleting a namespace, and on a real cluster the namespace may hold other things.
            for namespace in ("team-a", "platform"):  # roles first: they hold the policy
                kube.kubectl("delete", KINDS, "--all", "-n", namespace,
                             "--timeout=120s", timeout=130)
            show(f"roles left in AWS: {[r['RoleName'] for r in iam.list_roles()['Roles']]}, "
                 f"users left: {[u['UserName'] for u in iam.list_users()['Users']]}")
        step("Stopped the operator, the AWS endpoint and the control plane. Demo complete.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
