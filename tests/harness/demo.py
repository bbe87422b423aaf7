"""`make demo`: Rolekeeper's main job end to end, on a local control plane and a local AWS endpoint.

Starts (or, with KUBECONFIG set, uses) a Kubernetes API server, starts a moto server as AWS,
runs `rolekeeper run`, applies examples/, shows READY and ARNs, edits a role behind the
operator's back and shows it put back, deletes an object and shows AWS clean, then tears down.
Nothing here touches a real AWS account: the endpoint is always the local one.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3

from tests.harness import moto
from tests.harness.envtest import Cluster, ControlPlane, ExternalCluster, ensure_binaries
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


def main() -> int:
    WORK.mkdir(exist_ok=True)
    step("Starting a local AWS endpoint (moto server on 127.0.0.1, AWS managed policies loaded)")
    with moto.running() as aws, cluster() as kube:
        show(f"AWS IAM endpoint {aws.url}")
        iam = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1").client("iam", endpoint_url=aws.url)
        step("Installing the CRDs (kubectl apply -f crds/)")
        show(kube.kubectl("apply", "-f", str(REPO / "crds")).stdout)
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     "crd/iamroles.iam.rolekeeper.dev", "crd/iamusers.iam.rolekeeper.dev")
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
            kube.kubectl("wait", "--for=condition=Ready", "--timeout=120s", "-n", "team-a",
                         "iamroles,iamusers", "--all", timeout=130)
            step(f"All Ready in {time.monotonic() - started:.1f}s: kubectl get iamroles,iamusers -A")
            show(kube.kubectl("get", "iamroles,iamusers", "-A").stdout)

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
            kube.kubectl("delete", "iamroles,iamusers", "--all", "-n", "team-a",
                         "--timeout=120s", timeout=130)
            show(f"roles left in AWS: {[r['RoleName'] for r in iam.list_roles()['Roles']]}, "
                 f"users left: {[u['UserName'] for u in iam.list_users()['Users']]}")
        step("Stopped the operator, the AWS endpoint and the control plane. Demo complete.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
