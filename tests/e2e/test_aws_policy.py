"""The operator's own AWS policy (docs/aws-policy.json), proven against moto with IAM enforcement.

Covers: every IAM operation the controller's code can call is granted, and nothing is granted
that no code calls (static, from the source and botocore's IAM model); a moto server started
with INITIAL_NO_AUTH_ACTION_COUNT really enforces (anonymous calls and actions outside the
policy are refused); the operator, holding an access key of a user that has only that policy,
converges a role, a user and an IAMPolicy using every feature (managed and inline policies,
an IAMPolicy by reference, tags, a role's boundary, an instance profile, groups; a policy's
versions and tags), reverts drift (a detached policy, another default policy version), applies
edits that change and remove each of them, deletes a user that carries every credential a human
can add and an IAMPolicy still attached to a role Rolekeeper owns, and leaves alone a policy
made by hand under a name an IAMPolicy asks for — with no AccessDenied, and every granted
action called except those UNEXERCISED lists with the reason;
removing one statement breaks exactly its feature with `Ready=False, reason=AWSError` and
AccessDenied in the message; the Deny keeps the operator off its own role; and what moto does
not enforce (conditions), measured, so docs/deploy.md can say precisely what this proves.
"""

from __future__ import annotations

import ast
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.e2e.test_deploy import samples
from tests.harness import kube, moto
from tests.harness.envtest import REPO_ROOT, Cluster
from tests.harness.guardrails import allowing_adoption
from tests.harness.operator import Operator
from tests.harness.util import until
from tests.helpers import BOUNDARY, EC2_TRUST, S3_READ, aws_name, iam_role, iam_user, manifest

pytestmark = pytest.mark.e2e

POLICY_PATH = REPO_ROOT / "docs" / "aws-policy.json"
OPERATOR_USER = "rolekeeper-operator"
# The initial unauthenticated calls that create the two users below; enforcement starts after.
BOOTSTRAP_CALLS = 6
DRIFT_INTERVAL = 3.0
INLINE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::rk-artifacts/*"}]}
# Granted, yet no API call of the scenario shows them (each with the reason).
UNEXERCISED = {
    "PassRole": "a permission AWS checks inside AddRoleToInstanceProfile, never a call of its own",
    "TagInstanceProfile": "checked inside CreateInstanceProfile when it carries tags",
    "ListServiceSpecificCredentials": "read only after a DeleteConflict, which moto never raises",
    "DeleteServiceSpecificCredential": "same: moto deletes users that still hold credentials",
    "PutUserPermissionsBoundary": "not implemented by moto 5.2.5 (it answers 500)",
    "DeleteUserPermissionsBoundary": "not implemented by moto 5.2.5 (it answers 500)",
    # spec.accessKey's calls: this scenario's user has no accessKey; test_access_keys.py (aws and
    # e2e tiers) makes each of them.
    "CreateAccessKey": "spec.accessKey, exercised by test_access_keys.py",
    "UpdateAccessKey": "spec.accessKey rotation, exercised by test_access_keys.py",
    "GetAccessKeyLastUsed": "spec.accessKey status, exercised by test_access_keys.py",
}


def statement(action: str) -> dict[str, Any]:
    """A one-statement identity policy (IAMPolicy documents and their versions)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": action, "Resource": "arn:aws:s3:::rk-artifacts/*"}]}


def policy() -> dict[str, Any]:
    return dict(json.loads(POLICY_PATH.read_text()))


def allowed_actions(document: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for statement in document["Statement"]:
        if statement["Effect"] == "Allow":
            listed = statement["Action"]
            actions |= {a.removeprefix("iam:") for a in ([listed] if isinstance(listed, str) else listed)}
    return actions


def without(sid: str) -> dict[str, Any]:
    document = policy()
    document["Statement"] = [s for s in document["Statement"] if s["Sid"] != sid]
    return document


def iam_operations_in_controller() -> set[str]:
    """IAM operations the controller's source names: method calls (`iam.get_role`), paginator
    and operation names in strings, and templates like f"Attach{kind}Policy" or
    f"list_{kind}_policies" expanded for roles and users."""
    operations = set(botocore.session.get_session().get_service_model("iam").operation_names)
    by_method = {xform_name(op): op for op in operations}

    def known(name: str) -> str | None:
        return name if name in operations else by_method.get(name)

    found: set[str] = set()
    for path in (REPO_ROOT / "controller").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Attribute):
                names = [node.attr]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value]
            elif isinstance(node, ast.JoinedStr):
                template = "".join(v.value if isinstance(v, ast.Constant) else "{}"
                                   for v in node.values)
                if template.count("{}") == 1:
                    names = [template.replace("{}", k) for k in ("Role", "User", "role", "user")]
            found |= {op for op in map(known, names) if op}
    return found


def test_policy_grants_exactly_what_the_controller_calls() -> None:
    called = iam_operations_in_controller()
    granted = allowed_actions(policy())

    assert called - granted == set(), "called by the controller, not granted"
    assert granted - called == {"PassRole", "TagInstanceProfile"}, "granted, never called"


# --- a moto server that enforces IAM ----------------------------------------------------------


@dataclass
class Enforcing:
    """moto with IAM enforcement; `admin` stands for a human, `operator_env` for the operator."""

    server: moto.MotoServer
    admin: Any
    operator_key: tuple[str, str]

    def client(self, key: tuple[str, str]) -> Any:
        return boto3.session.Session(
            aws_access_key_id=key[0], aws_secret_access_key=key[1], region_name="us-east-1"
        ).client("iam", endpoint_url=self.server.url)

    @property
    def operator_env(self) -> dict[str, str]:
        # No counting proxy here: SigV4 signs the Host header, which a proxy would change.
        return {**self.server.env, "AWS_ACCESS_KEY_ID": self.operator_key[0],
                "AWS_SECRET_ACCESS_KEY": self.operator_key[1]}

    def set_operator_policy(self, document: dict[str, Any]) -> None:
        self.admin.put_user_policy(UserName=OPERATOR_USER, PolicyName="rolekeeper",
                                   PolicyDocument=json.dumps(document))


@pytest.fixture(scope="module")
def enforcing() -> Iterator[Enforcing]:
    server = moto.start(extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": str(BOOTSTRAP_CALLS)})
    try:
        anonymous = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("iam", endpoint_url=server.url)
        anonymous.create_user(UserName="admin")
        anonymous.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        admin_key = anonymous.create_access_key(UserName="admin")["AccessKey"]
        anonymous.create_user(UserName=OPERATOR_USER)
        anonymous.put_user_policy(UserName=OPERATOR_USER, PolicyName="rolekeeper",
                                  PolicyDocument=POLICY_PATH.read_text())
        operator_key = anonymous.create_access_key(UserName=OPERATOR_USER)["AccessKey"]
        enforcing = Enforcing(server, None, (operator_key["AccessKeyId"], operator_key["SecretAccessKey"]))
        enforcing.admin = enforcing.client((admin_key["AccessKeyId"], admin_key["SecretAccessKey"]))
        yield enforcing
    finally:
        server.stop()


@pytest.fixture(scope="module")
def policy_operator(enforcing: Enforcing, crds: Cluster) -> Iterator[tuple[Operator, str]]:
    """An operator holding only docs/aws-policy.json, watching a namespace of its own."""
    namespace = crds.create_namespace("rk-aws-policy")
    op = Operator(crds.kubeconfig, enforcing.operator_env, namespaces=[namespace],
                  drift_interval=DRIFT_INTERVAL)
    op.start()
    try:
        yield op, namespace
    finally:
        op.stop()


def test_moto_enforces_iam(enforcing: Enforcing) -> None:
    anonymous = enforcing.client(("testing", "testing"))
    with pytest.raises(ClientError) as refused:
        anonymous.list_users()
    assert refused.value.response["Error"]["Code"] == "InvalidClientTokenId"
    with pytest.raises(ClientError) as denied:
        enforcing.client(enforcing.operator_key).create_group(GroupName="not-granted")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert enforcing.admin.list_users()["Users"]


# --- converging with only the policy ----------------------------------------------------------


def wait_generation(cluster: Cluster, ns: str, kind: str, name: str, generation: int) -> None:
    def synced() -> bool:
        obj = kube.get(cluster, ns, kind, name)
        ready = kube.ready(cluster, ns, kind, name) or {}
        return obj["status"].get("observedGeneration") == generation and ready.get("status") == "True"
    until(synced, 60, f"{kind}/{name} Ready at generation {generation}")


def give_every_credential(admin: Any, user_name: str) -> None:
    """What a human may attach to a user by hand, all of which blocks DeleteUser on AWS."""
    admin.create_access_key(UserName=user_name)
    admin.create_login_profile(UserName=user_name, Password="Very-long-passw0rd!")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH).decode()
    admin.upload_ssh_public_key(UserName=user_name, SSHPublicKeyBody=ssh)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    admin.upload_signing_certificate(
        UserName=user_name, CertificateBody=cert.public_bytes(serialization.Encoding.PEM).decode())
    serial = admin.create_virtual_mfa_device(VirtualMFADeviceName=user_name)["VirtualMFADevice"]["SerialNumber"]
    admin.enable_mfa_device(UserName=user_name, SerialNumber=serial,
                            AuthenticationCode1="123456", AuthenticationCode2="654321")


def test_operator_converges_with_only_the_policy(
    enforcing: Enforcing, policy_operator: tuple[Operator, str], crds: Cluster
) -> None:
    op, ns = policy_operator
    admin = enforcing.admin
    group = aws_name("group")
    admin.create_group(GroupName=group)
    role_name, user_name, policy_name = aws_name("web"), aws_name("ci"), aws_name("perm")
    kube.apply(crds, ns,
               manifest("IAMPolicy", "perm", {"policyName": policy_name, "tags": {"team": "a"},
                                              "document": statement("s3:PutObject")},
                        namespace=None),
               iam_role("web", role_name, description="web tier", maxSessionDuration=7200,
                           managedPolicies=[S3_READ], managedPolicyRefs=[{"name": "perm"}],
                           inlinePolicies={"read": INLINE}, tags={"team": "a"},
                           instanceProfile=True),
               iam_user("ci", user_name, managedPolicies=[S3_READ],
                           inlinePolicies={"read": INLINE}, groups=[group], tags={"team": "a"}))
    kube.wait_ready(crds, ns, "iampolicy", "perm")
    kube.wait_ready(crds, ns, "iamrole", "web")
    kube.wait_ready(crds, ns, "iamuser", "ci")
    policy_arn = kube.get(crds, ns, "iampolicy", "perm")["status"]["arn"]

    admin.detach_role_policy(RoleName=role_name, PolicyArn=S3_READ)  # drift
    until(lambda: S3_READ in {p["PolicyArn"] for p in admin.list_attached_role_policies(
              RoleName=role_name)["AttachedPolicies"]},
          DRIFT_INTERVAL * 3 + 10, "drift reverted")
    # A human makes another version of the policy the default: the spec's version comes back.
    admin.create_policy_version(PolicyArn=policy_arn, SetAsDefault=True,
                                PolicyDocument=json.dumps(statement("s3:*")))
    until(lambda: admin.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"] == "v1",
          DRIFT_INTERVAL * 3 + 10, "policy version drift reverted")
    # A policy made by hand under the name an IAMPolicy asks for: CreatePolicy is refused, the
    # operator finds the policy by name (no ARN known) and leaves it alone, also on delete.
    squatted = aws_name("squatted")
    squatted_arn = admin.create_policy(PolicyName=squatted,
                                       PolicyDocument=json.dumps(INLINE))["Policy"]["Arn"]
    kube.apply(crds, ns, manifest("IAMPolicy", "squatter", {"policyName": squatted,
                                                            "document": statement("s3:PutObject")},
                                  namespace=None))
    kube.wait_reason(crds, ns, "iampolicy", "squatter", "Conflict")
    crds.kubectl("delete", "iampolicy", "squatter", "-n", ns, "--timeout=60s")
    kept = admin.get_policy(PolicyArn=squatted_arn)["Policy"]
    assert kept["DefaultVersionId"] == "v1" and not kept.get("Tags"), kept
    admin.delete_policy(PolicyArn=squatted_arn)

    # Edits that take every feature away again, change what changes in place, and add a
    # boundary (at create time a boundary rides on CreateRole/CreateUser instead).
    lambda_trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    kube.apply(crds, ns,
               manifest("IAMPolicy", "perm", {"policyName": policy_name, "tags": {"tier": "web"},
                                              "document": statement("s3:DeleteObject")},
                        namespace=None),
               iam_role("web", role_name, description="web tier v2", assumeRolePolicy=lambda_trust,
                           permissionsBoundary=BOUNDARY, tags={"tier": "web"}),
               iam_user("ci", user_name, tags={"tier": "ci"}))
    wait_generation(crds, ns, "iampolicy", "perm", 2)
    wait_generation(crds, ns, "iamrole", "web", 2)
    wait_generation(crds, ns, "iamuser", "ci", 2)
    assert admin.list_instance_profiles_for_role(RoleName=role_name)["InstanceProfiles"] == []
    assert admin.list_groups_for_user(UserName=user_name)["Groups"] == []
    assert admin.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    perm = admin.get_policy(PolicyArn=policy_arn)["Policy"]
    assert perm["DefaultVersionId"] == "v3"
    assert {t["Key"]: t["Value"] for t in admin.list_policy_tags(PolicyArn=policy_arn)["Tags"]
            if not t["Key"].startswith("rolekeeper.dev/")} == {"tier": "web"}
    kube.apply(crds, ns, iam_role("web", role_name, assumeRolePolicy=lambda_trust),
               iam_user("ci", user_name))
    wait_generation(crds, ns, "iamrole", "web", 3)
    wait_generation(crds, ns, "iamuser", "ci", 3)
    assert "PermissionsBoundary" not in admin.get_role(RoleName=role_name)["Role"]

    give_every_credential(admin, user_name)
    crds.kubectl("delete", "iamrole", "web", "-n", ns, "--timeout=60s")
    crds.kubectl("delete", "iamuser", "ci", "-n", ns, "--timeout=60s")
    # A role Rolekeeper owns elsewhere (its ownership tag; another namespace, not watched here)
    # still holds the policy: deleting the IAMPolicy detaches it there, drops the old
    # versions, then deletes the policy.
    holder = aws_name("holder")
    admin.create_role(RoleName=holder, AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
                      Tags=[{"Key": "rolekeeper.dev/owner", "Value": "elsewhere/holder"}])
    admin.attach_role_policy(RoleName=holder, PolicyArn=policy_arn)
    crds.kubectl("delete", "iampolicy", "perm", "-n", ns, "--timeout=60s")

    assert role_name not in {r["RoleName"] for r in admin.list_roles()["Roles"]}
    assert user_name not in {u["UserName"] for u in admin.list_users()["Users"]}
    assert admin.list_virtual_mfa_devices()["VirtualMFADevices"] == []
    assert policy_arn not in {p["Arn"] for p in admin.list_policies(Scope="Local")["Policies"]}
    assert admin.list_attached_role_policies(RoleName=holder)["AttachedPolicies"] == []
    admin.delete_role(RoleName=holder)
    text = op.metrics()
    assert samples(text, "rolekeeper_aws_api_calls_total", code="AccessDenied") == []
    used = {op_name for op_name in allowed_actions(policy())
            if sum(samples(text, "rolekeeper_aws_api_calls_total", operation=op_name))}
    assert allowed_actions(policy()) - used == set(UNEXERCISED)


# --- one statement less -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sid", "broken", "working", "operation"),
    [
        ("InlinePolicies",
         iam_role("inline", aws_name("inline"), inlinePolicies={"read": INLINE}),
         iam_role("plain", aws_name("plain"), managedPolicies=[S3_READ]),
         "PutRolePolicy"),
        ("OwnedInstanceProfiles",
         iam_role("ec2", aws_name("ec2"), instanceProfile=True),
         iam_role("noprofile", aws_name("noprofile")),
         "AddRoleToInstanceProfile"),
    ],
    ids=["inline-policies", "instance-profiles"],
)
def test_missing_statement_surfaces_access_denied_in_status(
    enforcing: Enforcing, policy_operator: tuple[Operator, str], crds: Cluster,
    sid: str, broken: dict[str, Any], working: dict[str, Any], operation: str,
) -> None:
    _, ns = policy_operator
    enforcing.set_operator_policy(without(sid))
    try:
        kube.apply(crds, ns, broken, working)
        condition = kube.wait_reason(crds, ns, "iamrole", broken["metadata"]["name"], "AWSError")
        kube.wait_ready(crds, ns, "iamrole", working["metadata"]["name"])
    finally:
        enforcing.set_operator_policy(policy())
    assert condition["status"] == "False"
    assert "AccessDenied" in condition["message"] and operation in condition["message"]
    warnings = [e for e in kube.events(crds, ns, broken["metadata"]["name"]) if e["type"] == "Warning"]
    assert any("AccessDenied" in e["message"] for e in warnings)


def test_the_operator_cannot_take_over_its_own_role(
    enforcing: Enforcing, policy_operator: tuple[Operator, str], crds: Cluster
) -> None:
    """Only the Deny stops this in moto (it ignores the tag conditions; see below). A guardrail
    that lets the namespace adopt that very name (a platform team's mistake) takes the
    operator's own refusal out of the way, so what is left to stop it is the AWS policy."""
    _, ns = policy_operator
    admin = enforcing.admin
    admin.create_role(RoleName=OPERATOR_USER, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    try:
        with allowing_adoption(crds, ns, roles=[OPERATOR_USER]):
            try:
                kube.apply(crds, ns, iam_role("self", OPERATOR_USER, adopt=True, managedPolicies=[
                    "arn:aws:iam::aws:policy/AdministratorAccess"]))
                condition = kube.wait_reason(crds, ns, "iamrole", "self", "AWSError")
                assert "AccessDenied" in condition["message"]
                assert admin.list_attached_role_policies(RoleName=OPERATOR_USER)["AttachedPolicies"] == []
                assert "Tags" not in admin.get_role(RoleName=OPERATOR_USER)["Role"]
            finally:
                crds.kubectl("delete", "iamrole", "self", "-n", ns, "--timeout=60s", check=False)
    finally:
        admin.delete_role(RoleName=OPERATOR_USER)


# --- what moto does not check (measured, so the docs can say what is proven) -----------------


def test_moto_does_not_evaluate_tag_conditions(enforcing: Enforcing) -> None:
    """Real IAM refuses both calls below for this policy (no ownership tag in the request / on
    the role); moto allows them. The conditions in docs/aws-policy.json are reviewed, not run."""
    operator = enforcing.client(enforcing.operator_key)
    untagged = aws_name("untagged")
    operator.create_role(RoleName=untagged, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    operator.attach_role_policy(RoleName=untagged, PolicyArn=S3_READ)

    assert "Tags" not in enforcing.admin.get_role(RoleName=untagged)["Role"]
    enforcing.admin.detach_role_policy(RoleName=untagged, PolicyArn=S3_READ)
    enforcing.admin.delete_role(RoleName=untagged)
