"""IRSA end to end: spec.serviceAccounts on a real API server, the operator process and moto.

Covers: the operator reads the cluster's issuer from the API server by itself (no
--oidc-issuer); a role listing an existing ServiceAccount is Ready, the ServiceAccount carries
the role's ARN, and the trust policy in AWS names exactly that ServiceAccount (the cluster's
provider, `:sub`, `:aud`) next to the spec's own statement; deleting the role removes the
annotation; a ServiceAccount created after the role is annotated within a drift interval (the
role waits at DependencyNotReady, measured); a ServiceAccount already annotated with another
role's ARN is never overwritten (Ready=False Conflict, the value untouched, also after the
delete); a ServiceAccount leaving the list loses the annotation and the `:sub`; one of another
namespace is refused by the default guardrail before any AWS call and never annotated.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from controller.core import podidentity
from tests.e2e.conftest import DRIFT_INTERVAL
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.operator import Operator
from tests.harness.util import until
from tests.helpers import ACCOUNT, EC2_TRUST, aws_name, manifest

pytestmark = pytest.mark.e2e

ANNOTATION = podidentity.ANNOTATION
FOREIGN = f"arn:aws:iam::{ACCOUNT}:role/someone-elses-role"


def issuer(cluster: Cluster) -> str:
    """The cluster's service-account issuer, as any client reads it."""
    found = cluster.kubectl("get", "--raw", "/.well-known/openid-configuration").stdout
    return podidentity.normalize_issuer(json.loads(found)["issuer"])


def irsa_role(name: str, role_name: str, *accounts: str, **spec: Any) -> dict[str, Any]:
    listed = [{"name": a} if "/" not in a else dict(zip(("namespace", "name"), a.split("/"), strict=True))
              for a in accounts]
    return manifest("IAMRole", name, {"roleName": role_name, "serviceAccounts": listed, **spec},
                    namespace=None)


def service_account(cluster: Cluster, namespace: str, name: str, arn: str = "") -> None:
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    if arn:
        cluster.kubectl("annotate", "serviceaccount", name, "-n", namespace, f"{ANNOTATION}={arn}")


def annotation(cluster: Cluster, namespace: str, name: str) -> str | None:
    found = json.loads(cluster.kubectl("get", "serviceaccount", name, "-n", namespace,
                                       "-o", "json").stdout)
    value = (found["metadata"].get("annotations") or {}).get(ANNOTATION)
    return None if value is None else str(value)


def subjects(iam: Any, role_name: str, cluster: Cluster) -> list[str]:
    """The `:sub` values of the role's generated IRSA statement in AWS (and checks its shape)."""
    document = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    host = podidentity.provider(issuer(cluster))
    [statement] = [s for s in document["Statement"] if s.get("Sid") == podidentity.IRSA_SID]
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]["StringEquals"]
    assert condition[f"{host}:aud"] == "sts.amazonaws.com"
    found = condition[f"{host}:sub"]
    return sorted([found] if isinstance(found, str) else found)


def role_names(iam: Any) -> set[str]:
    return {r["RoleName"] for r in iam.list_roles()["Roles"]}


def test_operator_found_the_issuer_by_itself(operator: Operator, control_plane: Cluster) -> None:
    log = operator.log_path.read_text()
    assert f"OIDC issuer for IRSA trust: {issuer(control_plane)} (from the API server)" in log


def test_service_account_annotated_trust_names_exactly_it_and_delete_removes_it(
    crds: Cluster, shared_ns: str, iam: Any
) -> None:
    role_name = aws_name("uploader")
    service_account(crds, shared_ns, "uploader")
    service_account(crds, shared_ns, "bystander")
    kube.apply(crds, shared_ns, irsa_role("uploader", role_name, "uploader",
                                          assumeRolePolicy=EC2_TRUST))
    kube.wait_ready(crds, shared_ns, "iamrole", "uploader")

    obj = kube.get(crds, shared_ns, "iamrole", "uploader")
    arn = obj["status"]["arn"]
    assert annotation(crds, shared_ns, "uploader") == arn
    assert annotation(crds, shared_ns, "bystander") is None
    assert obj["status"]["serviceAccounts"] == [
        {"namespace": shared_ns, "name": "uploader", "state": "Annotated"}]
    assert subjects(iam, role_name, crds) == [f"system:serviceaccount:{shared_ns}:uploader"]
    statements = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s.get("Sid") for s in statements] == [None, "RolekeeperIRSA"]  # the spec's first
    assert "ServiceAccountAnnotated" in {e["reason"] for e in kube.events(crds, shared_ns, "uploader")}

    crds.kubectl("delete", "iamrole", "uploader", "-n", shared_ns, "--timeout=60s")

    assert role_name not in role_names(iam)
    assert annotation(crds, shared_ns, "uploader") is None


def test_service_account_created_later_is_annotated_within_an_interval(
    crds: Cluster, shared_ns: str, iam: Any
) -> None:
    role_name = aws_name("later")
    kube.apply(crds, shared_ns, irsa_role("later", role_name, "later"))
    waiting = kube.wait_reason(crds, shared_ns, "iamrole", "later", "DependencyNotReady")
    assert f"ServiceAccount {shared_ns}/later does not exist yet" in waiting["message"]
    assert role_name in role_names(iam)  # the role itself is made: only the annotation waits

    service_account(crds, shared_ns, "later")
    created = time.monotonic()
    kube.wait_ready(crds, shared_ns, "iamrole", "later", timeout=int(DRIFT_INTERVAL * 3 + 20))
    took = time.monotonic() - created

    print(f"\nServiceAccount created -> annotated and Ready: {took:.1f}s "
          f"(drift interval {DRIFT_INTERVAL:.0f}s)")
    arn = kube.get(crds, shared_ns, "iamrole", "later")["status"]["arn"]
    assert annotation(crds, shared_ns, "later") == arn
    assert took < DRIFT_INTERVAL * 2 + 10


def test_a_foreign_annotation_is_never_overwritten(crds: Cluster, shared_ns: str, iam: Any) -> None:
    role_name = aws_name("taken")
    service_account(crds, shared_ns, "taken", arn=FOREIGN)
    kube.apply(crds, shared_ns, irsa_role("taken", role_name, "taken"))

    conflict = kube.wait_reason(crds, shared_ns, "iamrole", "taken", "Conflict")

    assert "already annotated eks.amazonaws.com/role-arn with another role's ARN" in conflict["message"]
    assert FOREIGN not in conflict["message"]  # another namespace's role is not quoted
    assert annotation(crds, shared_ns, "taken") == FOREIGN
    status = kube.get(crds, shared_ns, "iamrole", "taken")["status"]
    assert status["serviceAccounts"] == [{"namespace": shared_ns, "name": "taken",
                                          "state": "Conflict"}]
    crds.kubectl("delete", "iamrole", "taken", "-n", shared_ns, "--timeout=60s")
    assert annotation(crds, shared_ns, "taken") == FOREIGN
    assert role_name not in role_names(iam)


def test_leaving_the_list_removes_the_annotation_and_the_subject(
    crds: Cluster, shared_ns: str, iam: Any
) -> None:
    role_name = aws_name("two")
    service_account(crds, shared_ns, "web")
    service_account(crds, shared_ns, "api")
    kube.apply(crds, shared_ns, irsa_role("two", role_name, "web", "api"))
    kube.wait_ready(crds, shared_ns, "iamrole", "two")
    arn = kube.get(crds, shared_ns, "iamrole", "two")["status"]["arn"]
    assert (annotation(crds, shared_ns, "web"), annotation(crds, shared_ns, "api")) == (arn, arn)

    kube.apply(crds, shared_ns, irsa_role("two", role_name, "web"))

    until(lambda: annotation(crds, shared_ns, "api") is None, 30, "the annotation of api removed")
    until(lambda: subjects(iam, role_name, crds) == [f"system:serviceaccount:{shared_ns}:web"],
          30, "the trust naming web only")
    assert annotation(crds, shared_ns, "web") == arn
    kube.wait_ready(crds, shared_ns, "iamrole", "two")
    status = kube.get(crds, shared_ns, "iamrole", "two")["status"]
    assert status["serviceAccounts"] == [{"namespace": shared_ns, "name": "web",
                                          "state": "Annotated"}]


def test_another_namespaces_service_account_is_refused_by_default(
    crds: Cluster, shared_ns: str, control_plane: Cluster, iam: Any
) -> None:
    other = control_plane.create_namespace("irsa-other")
    service_account(crds, other, "victim")
    role_name = aws_name("reach")
    kube.apply(crds, shared_ns, irsa_role("reach", role_name, f"{other}/victim"))

    denied = kube.wait_reason(crds, shared_ns, "iamrole", "reach", "GuardrailViolation")

    assert f"ServiceAccount {other}/victim is in another namespace" in denied["message"]
    assert role_name not in role_names(iam)
    assert annotation(crds, other, "victim") is None
