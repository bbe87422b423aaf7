"""Tenant guardrails end to end (issue 13, "Must show"), as a hostile tenant would try them.

A real kube-apiserver calls the operator's validating webhook over TLS (a self-signed
certificate for 127.0.0.1 whose caBundle Kopf writes into the ValidatingWebhookConfiguration
it manages); tenants are impersonated users holding only a namespace-scoped Role on
iamroles/iamusers; the operator talks to moto through a proxy that logs every IAM call.

- test_escalations_are_refused_at_apply_and_by_the_operator: two tenant namespaces, two
  guardrails (one for every tenant, one more for the "small" one), 30 escalation attempts.
  Each is (a) refused at `kubectl apply` as the tenant, the message naming the guardrail and
  the rule; then, with the webhook configuration deleted, (b) admitted, and the operator ends
  it at Ready=False reason=GuardrailViolation, naming the same guardrail and rule, with no AWS
  call naming its entity and no AWS write at all while they are judged. Allowed objects
  (including a permitted adoption) go Ready; the name team-a tried to squat goes to team-b.
- test_second_cluster_never_takes_over: two control planes (two clusters, each with its own
  kube-system uid, the default cluster identity) and an operator on each, against one AWS
  account; the same namespace/name in both. Each cluster first claims one role; the other
  cluster's object reports Conflict naming the owning cluster, the role is never written by the
  other operator (drift sweeps included: no ping-pong), and deleting the losing object deletes
  nothing in AWS.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import reliability as rl
from tests.e2e.conftest import REPO, Aws
from tests.harness import kube
from tests.harness.envtest import Cluster, ControlPlane
from tests.harness.operator import Operator
from tests.harness.util import until
from tests.harness.webhook import WebhookServer
from tests.helpers import ACCOUNT, EC2_TRUST, LOGS_POLICY, S3_READ, manifest

pytestmark = pytest.mark.e2e

GROUP = "iam.rolekeeper.dev"
PARTNER = "210987654321"  # a foreign account the guardrail lets tenants trust, with ExternalId
STRANGER = "999999999999"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
OIDC_HOST = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE1234"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC_HOST}"
HAND_MADE_ROLE = "OrganizationAccountAccessRole"
BREAKGLASS = "breakglass-admin"
CONFIGURATION = "rolekeeper-guardrails-test"


# --- the platform team's side ------------------------------------------------------------


def guardrails(suffix: str, label: str, boundary: str) -> list[dict[str, Any]]:
    """docs/guardrails.md's guardrail, plus a second one for "small" tenants (no users, two
    roles): where both select a namespace, both must pass."""
    tenants = {
        "namespaceSelector": {"matchLabels": {"rolekeeper.dev/tenant": label}},
        "enforcement": "deny",
        "roles": {
            "names": ["{namespace}.*"],
            "paths": ["/tenants/{namespace}/"],
            "maxSessionDuration": 7200,
            "trust": {
                "services": ["ec2.amazonaws.com", "lambda.amazonaws.com"],
                "accounts": ["self", PARTNER],
                "oidcProviders": [{
                    "provider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.eu-west-1."
                                "amazonaws.com/id/*",
                    "subjects": ["system:serviceaccount:{namespace}:*"],
                }],
                "foreignAccountsRequire": ["ExternalId"],
            },
            "serviceAccounts": {"namespaces": ["{namespace}"]},
        },
        "users": {
            "names": ["{namespace}.*"],
            "paths": ["/tenants/{namespace}/"],
            "groups": ["{namespace}.*"],
            "accessKeys": False,
        },
        "permissionsBoundary": {"required": [boundary]},
        "managedPolicies": {
            "allowed": [S3_READ, f"arn:aws:iam::{ACCOUNT}:policy/tenants/{{namespace}}/*"],
            "denied": [ADMIN, "arn:aws:iam::aws:policy/IAMFullAccess"],
        },
        "actions": {
            "denied": ["iam:*", "organizations:*", "sts:AssumeRole"],
            "deniedOnWildcardResource": ["s3:Delete*", "s3:Put*"],
        },
        "limits": {"roles": 50},
        "adoption": {"roles": {"names": ["{namespace}.legacy-*"],
                               "paths": ["/tenants/{namespace}/"]}},
    }
    small = {
        "namespaceSelector": {"matchLabels": {"rolekeeper.dev/size": label}},
        "users": {"allowed": False},
        "limits": {"roles": 2},
    }
    return [
        {"apiVersion": f"{GROUP}/v1alpha1", "kind": "IAMGuardrail",
         "metadata": {"name": name}, "spec": spec}
        for name, spec in ((f"tenants-{suffix}", tenants), (f"small-{suffix}", small))
    ]


def tenant_rbac(namespace: str, group: str) -> list[dict[str, Any]]:
    """docs/guardrails.md step 2: IAM objects in their namespace, nothing else."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "iam-editor", "namespace": namespace},
         "rules": [
             {"apiGroups": [GROUP], "resources": ["iamroles", "iamusers", "iampolicies"],
              "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
             {"apiGroups": [GROUP],
              "resources": ["iamroles/status", "iamusers/status", "iampolicies/status"],
              "verbs": ["get"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "iam-editor", "namespace": namespace},
         "subjects": [{"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}],
         "roleRef": {"kind": "Role", "name": "iam-editor", "apiGroup": "rbac.authorization.k8s.io"}},
    ]


@dataclass(frozen=True)
class Tenant:
    namespace: str
    user: str
    group: str

    def apply(self, cluster: Cluster, *objects: dict[str, Any], check: bool = True,
              dry_run: bool = False) -> Any:
        return kube.apply_as(cluster, self.namespace, self.user, [self.group], *objects,
                             check=check, dry_run=dry_run)


# --- what tenants ask for ----------------------------------------------------------------


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def trust(principal: Any, action: str = "sts:AssumeRole", **extra: Any) -> dict[str, Any]:
    return doc({"Effect": "Allow", "Principal": principal, "Action": action, **extra})


def oidc_trust(condition: dict[str, Any] | None, provider: str = OIDC) -> dict[str, Any]:
    extra = {"Condition": condition} if condition else {}
    return trust({"Federated": provider}, "sts:AssumeRoleWithWebIdentity", **extra)


@dataclass(frozen=True)
class Attempt:
    what: str  # the escalation, in words
    rule: str  # the rule that must stop it (a `Rule` value)
    tenant: str  # "a" or "b"
    obj: dict[str, Any]
    guardrail: str = "tenants"  # which guardrail names it ("tenants" or "small")

    @property
    def plural(self) -> str:
        return kube.plural(self.obj)

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def aws_name(self) -> str:
        spec = self.obj["spec"]
        return str(spec.get("roleName") or spec.get("userName") or self.name)


class Objects:
    """Manifests for one run: tenant namespaces `a` and `b`, the boundary they must carry."""

    def __init__(self, a: str, b: str, boundary: str) -> None:
        self.ns = {"a": a, "b": b}
        self.boundary = boundary

    def role(self, tenant: str, name: str, **spec: Any) -> dict[str, Any]:
        ns = self.ns[tenant]
        body: dict[str, Any] = {
            "roleName": f"{ns}.{name}", "path": f"/tenants/{ns}/",
            "assumeRolePolicy": EC2_TRUST, "permissionsBoundary": self.boundary,
            "managedPolicies": [S3_READ],
        }
        body.update(spec)
        return manifest("IAMRole", name, {k: v for k, v in body.items() if v is not None}, None)

    def user(self, tenant: str, name: str, **spec: Any) -> dict[str, Any]:
        ns = self.ns[tenant]
        body: dict[str, Any] = {
            "userName": f"{ns}.{name}", "path": f"/tenants/{ns}/",
            "permissionsBoundary": self.boundary,
        }
        body.update(spec)
        return manifest("IAMUser", name, {k: v for k, v in body.items() if v is not None}, None)

    def allowed(self) -> dict[str, list[dict[str, Any]]]:
        a = self.ns["a"]
        return {
            "a": [
                self.role("a", "web", inlinePolicies={"logs": LOGS_POLICY}),
                self.role("a", "partner", managedPolicies=None, assumeRolePolicy=trust(
                    {"AWS": f"arn:aws:iam::{PARTNER}:root"},
                    Condition={"StringEquals": {"sts:ExternalId": "partner-7f3a"}})),
                self.role("a", "irsa", assumeRolePolicy=oidc_trust(
                    {"StringEquals": {f"{OIDC_HOST}:sub": f"system:serviceaccount:{a}:web"}})),
                # Listed under adoption.roles: the one takeover a guardrail permits.
                self.role("a", "legacy-app", adopt=True),
                self.user("a", "ci"),
            ],
            "b": [self.role("b", "api"), self.role("b", "worker")],
        }

    def attempts(self) -> list[Attempt]:
        a, b = self.ns["a"], self.ns["b"]
        role, user = self.role, self.user
        wide_oidc = oidc_trust({"StringLike": {f"{OIDC_HOST}:sub": f"system:serviceaccount:{b}:*"}})
        found = [
            # trust
            Attempt("trust Principal '*'", "roles.trust.wildcardPrincipalRequires", "a",
                    role("a", "x-anyone", assumeRolePolicy=trust("*"))),
            Attempt("trust Principal {AWS: '*'}", "roles.trust.wildcardPrincipalRequires", "a",
                    role("a", "x-anyone-aws", assumeRolePolicy=trust({"AWS": "*"}))),
            Attempt("trust a stranger's root", "roles.trust.accounts", "a",
                    role("a", "x-stranger", assumeRolePolicy=trust(
                        {"AWS": f"arn:aws:iam::{STRANGER}:root"}))),
            Attempt("trust the partner's root without ExternalId",
                    "roles.trust.foreignAccountsRequire", "a",
                    role("a", "x-partner-noext", assumeRolePolicy=trust(
                        {"AWS": f"arn:aws:iam::{PARTNER}:root"}))),
            Attempt("trust the partner with an ExternalId that may be absent (IfExists)",
                    "roles.trust.foreignAccountsRequire", "a",
                    role("a", "x-partner-ifexists", assumeRolePolicy=trust(
                        {"AWS": PARTNER},
                        Condition={"StringEqualsIfExists": {"sts:ExternalId": "x"}}))),
            Attempt("trust an unlisted service", "roles.trust.services", "a",
                    role("a", "x-codebuild", assumeRolePolicy=trust(
                        {"Service": "codebuild.amazonaws.com"}))),
            Attempt("OIDC without a :sub condition", "roles.trust.oidcProviders", "a",
                    role("a", "x-oidc-nosub", assumeRolePolicy=oidc_trust(None))),
            Attempt("OIDC for the other tenant's service accounts", "roles.trust.oidcProviders",
                    "a", role("a", "x-oidc-other", assumeRolePolicy=wide_oidc)),
            Attempt("OIDC from an unlisted provider", "roles.trust.oidcProviders", "a",
                    role("a", "x-oidc-foreign", assumeRolePolicy=oidc_trust(
                        {"StringEquals": {"token.actions.githubusercontent.com:sub": "repo:x"}},
                        "arn:aws:iam::123456789012:oidc-provider/token.actions."
                        "githubusercontent.com"))),
            Attempt("IRSA for the other tenant's ServiceAccount (spec.serviceAccounts)",
                    "roles.serviceAccounts.namespaces", "a",
                    role("a", "x-irsa-other", serviceAccounts=[{"namespace": b, "name": "api"}])),
            # managed policies
            Attempt("attach AdministratorAccess", "managedPolicies.denied", "a",
                    role("a", "x-admin", managedPolicies=[ADMIN])),
            Attempt("attach IAMFullAccess", "managedPolicies.denied", "a",
                    role("a", "x-iamfull",
                         managedPolicies=["arn:aws:iam::aws:policy/IAMFullAccess"])),
            Attempt("attach an unlisted managed policy", "managedPolicies.allowed", "a",
                    role("a", "x-ec2full",
                         managedPolicies=["arn:aws:iam::aws:policy/AmazonEC2FullAccess"])),
            # inline documents
            Attempt("inline Action '*'", "actions.denied", "a",
                    role("a", "x-star", inlinePolicies={"all": doc(allow("*"))})),
            Attempt("inline iam:*", "actions.denied", "a",
                    role("a", "x-iamstar", inlinePolicies={"iam": doc(allow("iam:*"))})),
            Attempt("inline iam:Pass*", "actions.denied", "a",
                    role("a", "x-pass", inlinePolicies={"pass": doc(allow("iam:Pass*"))})),
            Attempt("inline NotAction s3:* (leaves iam:PassRole in)", "actions.denied", "a",
                    role("a", "x-notaction", inlinePolicies={"not": doc(
                        {"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})})),
            Attempt("inline IAM:passrole (case)", "actions.denied", "a",
                    role("a", "x-case", inlinePolicies={"case": doc(allow("IAM:passrole"))})),
            Attempt("inline organizations:* among harmless actions", "actions.denied", "a",
                    role("a", "x-orgs", inlinePolicies={"orgs": doc(
                        allow(["logs:PutLogEvents", "organizations:*"]))})),
            Attempt("inline s3:DeleteObject on every resource",
                    "actions.deniedOnWildcardResource", "a",
                    role("a", "x-s3delete", inlinePolicies={"del": doc(allow("s3:DeleteObject"))})),
            # boundary, session
            Attempt("no permissions boundary", "permissionsBoundary", "a",
                    role("a", "x-noboundary", permissionsBoundary=None)),
            Attempt("another boundary (PowerUserAccess)", "permissionsBoundary", "a",
                    role("a", "x-power",
                         permissionsBoundary="arn:aws:iam::aws:policy/PowerUserAccess")),
            Attempt("maxSessionDuration 43200", "roles.maxSessionDuration", "a",
                    role("a", "x-12h", maxSessionDuration=43200)),
            # names and paths
            Attempt("squat team-b's name", "roles.names", "a",
                    role("a", "x-squat", roleName=f"{b}.api")),
            Attempt("a dash instead of the dot ({namespace}-*)", "roles.names", "a",
                    role("a", "x-dash", roleName=f"{a}-web")),
            Attempt("a path outside /tenants/{namespace}/ (team-b's)", "roles.paths", "a",
                    role("a", "x-path", path=f"/tenants/{b}/")),
            # users and groups
            Attempt("an IAMUser where users are not allowed", "users.allowed", "b",
                    user("b", "x-user"), guardrail="small"),
            Attempt("join group Admins", "users.groups", "a",
                    user("a", "x-admins", groups=["Admins"])),
            Attempt("a user without the boundary", "permissionsBoundary", "a",
                    user("a", "x-user-noboundary", permissionsBoundary=None)),
            # adoption
            Attempt(f"adopt {HAND_MADE_ROLE}", "adoption", "a",
                    role("a", "x-orgaccess", roleName=HAND_MADE_ROLE, path="/", adopt=True)),
            Attempt("adopt the break-glass user into Admins", "adoption", "a",
                    user("a", "x-breakglass", userName=BREAKGLASS, path="/", adopt=True,
                         groups=["Admins"])),
            Attempt("adopt an own-prefix name not on the adoption list", "adoption", "a",
                    role("a", "x-adopt-web", roleName=f"{a}.web-old", adopt=True)),
            # counts
            Attempt("a third role where two are allowed", "limits", "b",
                    role("b", "x-third"), guardrail="small"),
        ]
        return found


# --- the run -----------------------------------------------------------------------------


@dataclass
class World:
    cluster: Cluster
    tenants: dict[str, Tenant]
    objects: Objects
    guardrail_names: dict[str, str]  # "tenants"/"small" -> metadata.name
    proxy: rl.RecordingProxy
    operator: Operator
    webhook: WebhookServer


def hand_made(iam: Any, legacy: tuple[str, str]) -> None:
    """What exists in the account before any tenant arrives (made as a human would)."""
    calls = [
        lambda: iam.create_role(RoleName=HAND_MADE_ROLE, AssumeRolePolicyDocument=json.dumps(
            trust({"AWS": f"arn:aws:iam::{STRANGER}:root"}))),
        lambda: iam.put_role_policy(RoleName=HAND_MADE_ROLE, PolicyName="admin",
                                    PolicyDocument=json.dumps(doc(allow("*")))),
        lambda: iam.create_user(UserName=BREAKGLASS),
        lambda: iam.create_access_key(UserName=BREAKGLASS),
        lambda: iam.create_group(GroupName="Admins"),
        lambda: iam.attach_group_policy(GroupName="Admins", PolicyArn=ADMIN),
    ]
    for call in calls:
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException,
                                 iam.exceptions.LimitExceededException):
            call()
    iam.create_role(RoleName=legacy[0], Path=legacy[1],
                    AssumeRolePolicyDocument=json.dumps(EC2_TRUST))


def hand_made_state(iam: Any) -> dict[str, Any]:
    role = iam.get_role(RoleName=HAND_MADE_ROLE)["Role"]
    return {
        "role_trust": role["AssumeRolePolicyDocument"],
        "role_tags": role.get("Tags", []),
        "role_inline": iam.list_role_policies(RoleName=HAND_MADE_ROLE)["PolicyNames"],
        "user_tags": iam.get_user(UserName=BREAKGLASS)["User"].get("Tags", []),
        "user_groups": [g["GroupName"] for g in
                        iam.list_groups_for_user(UserName=BREAKGLASS)["Groups"]],
        "user_keys": len(iam.list_access_keys(UserName=BREAKGLASS)["AccessKeyMetadata"]),
    }


@pytest.fixture
def world(crds: Cluster, aws: Aws, tmp_path: Path) -> Iterator[World]:
    suffix = secrets.token_hex(3)
    cluster = crds
    tenants = {}
    for key in ("a", "b"):
        ns = cluster.create_namespace(f"rk-gr-{key}")
        labels = [f"rolekeeper.dev/tenant={suffix}"] + (
            [f"rolekeeper.dev/size={suffix}"] if key == "b" else [])
        cluster.kubectl("label", "namespace", ns, *labels)
        tenants[key] = Tenant(ns, f"dev-{key}@example.com", f"tenant-{ns}")
        cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": tenant_rbac(ns, tenants[key].group)}))
    iam = aws.console()
    boundary_name = f"rk-gr-{suffix}-boundary"
    boundary = iam.create_policy(PolicyName=boundary_name, PolicyDocument=json.dumps(
        doc(allow(["s3:*", "logs:*"]), {"Effect": "Deny", "Action": "iam:*", "Resource": "*"}))
    )["Policy"]["Arn"]
    objects = Objects(tenants["a"].namespace, tenants["b"].namespace, boundary)
    hand_made(iam, (f"{tenants['a'].namespace}.legacy-app", f"/tenants/{tenants['a'].namespace}/"))
    rules = guardrails(suffix, suffix, boundary)
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": rules}))
    proxy = rl.RecordingProxy.for_server(aws.server)
    webhook = WebhookServer.for_test(tmp_path / "tls", CONFIGURATION)
    operator = Operator(cluster.kubeconfig, proxy.env(aws.server), namespaces=["rk-gr-*"],
                        drift_interval=600, extra_args=webhook.args())
    try:
        operator.start()
        yield World(cluster, tenants, objects,
                    {"tenants": f"tenants-{suffix}", "small": f"small-{suffix}"},
                    proxy, operator, webhook)
    except BaseException:
        print(f"--- operator log ({operator.log_path}) ---\n{operator.log_tail(120)}")
        raise
    finally:
        operator.stop()
        proxy.stop()
        for rule in rules:
            cluster.kubectl("delete", "iamguardrail", rule["metadata"]["name"],
                            "--ignore-not-found", check=False)
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            cluster.kubectl("delete", kind, CONFIGURATION, "--ignore-not-found", check=False)


def webhook_configured(cluster: Cluster) -> dict[str, Any] | None:
    """Kopf's managed configuration, once it carries our webhooks (None before)."""
    done = cluster.kubectl("get", "validatingwebhookconfiguration", CONFIGURATION, "-o", "json",
                           check=False)
    found = json.loads(done.stdout) if done.returncode == 0 else {}
    return found if len(found.get("webhooks") or []) >= 2 else None


def names_rule(text: str, guardrail: str, rule: str) -> bool:
    return f"IAMGuardrail {guardrail!r}" in text and f"rule {rule} " in text


def verdicts(cluster: Cluster, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {key: kube.ready_condition(obj) for key, obj in kube.list_objects(cluster, namespace).items()}


def test_escalations_are_refused_at_apply_and_by_the_operator(world: World, aws: Aws) -> None:
    cluster, tenants, objects = world.cluster, world.tenants, world.objects
    attempts = objects.attempts()
    assert len(attempts) >= 25
    iam = aws.console()
    before = hand_made_state(iam)
    started = time.monotonic()

    # The API server calls the webhook over TLS with the caBundle Kopf wrote.
    configuration = until(lambda: webhook_configured(cluster), 60, "the managed webhook config")
    hooks = {h["name"]: h for h in configuration["webhooks"]}
    roles_hook = hooks[f"iamroles.{GROUP}.{CONFIGURATION}"]
    assert roles_hook["clientConfig"]["url"] == f"{world.webhook.url}/iamroles.{GROUP}"
    assert roles_hook["clientConfig"]["caBundle"]
    assert roles_hook["failurePolicy"] == "Ignore"

    # RBAC: a tenant writes only in its own namespace, and cannot touch guardrails or webhooks.
    a, b = tenants["a"], tenants["b"]
    other = kube.apply_as(cluster, b.namespace, a.user, [a.group], objects.role("b", "api"),
                          check=False)
    assert other.returncode != 0 and "forbidden" in other.stderr.lower(), other.stderr
    for verb, resource in (("update", "iamguardrails.iam.rolekeeper.dev"),
                           ("delete", "validatingwebhookconfigurations"),
                           ("patch", "namespaces")):
        done = cluster.kubectl("auth", "can-i", verb, resource, f"--as={a.user}",
                               f"--as-group={a.group}", check=False)
        assert done.stdout.strip() == "no", (verb, resource, done.stdout)

    # Allowed objects are admitted and go Ready (the webhook lets them through; the operator
    # creates them, and adopts the one role the guardrail lists).
    allowed = objects.allowed()
    for key, tenant in tenants.items():
        tenant.apply(cluster, *allowed[key])
    for key, tenant in tenants.items():
        for obj in allowed[key]:
            kube.wait_ready(cluster, tenant.namespace, kube.plural(obj), obj["metadata"]["name"])
    assert iam.get_role(RoleName=f"{b.namespace}.api")["Role"]["Path"] == f"/tenants/{b.namespace}/"
    allowed_at = world.proxy.mark()

    # (a) Every attempt is refused at `kubectl apply`, as the tenant, naming guardrail and rule.
    refused_at_apply: dict[str, str] = {}
    for key, tenant in tenants.items():
        mine = [t for t in attempts if t.tenant == key]
        done = tenant.apply(cluster, *(t.obj for t in mine), check=False)
        errors = kube.admission_errors(done.stderr)
        assert done.returncode != 0 and len(errors) == len(mine), done.stderr
        for attempt, error in zip(mine, errors, strict=True):
            refused_at_apply[attempt.name] = error
    for attempt in attempts:
        error = refused_at_apply[attempt.name]
        assert "denied the request" in error, (attempt.what, error)
        assert names_rule(error, world.guardrail_names[attempt.guardrail], attempt.rule), \
            (attempt.what, error)
    for key, tenant in tenants.items():
        stored = {name for _, name in kube.list_objects(cluster, tenant.namespace)}
        assert stored == {o["metadata"]["name"] for o in allowed[key]}
    webhook_done = time.monotonic()

    # (b) Bypass the webhook: delete its configuration; wait until the API server admits what
    # it refused a moment ago (a server-side dry run stores nothing).
    cluster.kubectl("delete", "validatingwebhookconfiguration", CONFIGURATION)
    probe = attempts[0]
    until(lambda: tenants[probe.tenant].apply(cluster, probe.obj, check=False,
                                              dry_run=True).returncode == 0,
          30, "the API server to stop calling the deleted webhook", every=0.2)
    bypass = world.proxy.mark()
    for key, tenant in tenants.items():
        tenant.apply(cluster, *(t.obj for t in attempts if t.tenant == key))

    def judged() -> dict[str, dict[str, Any]] | None:
        found = {}
        for tenant in tenants.values():
            found.update({name: c for (_, name), c in verdicts(cluster, tenant.namespace).items()})
        return found if all(found.get(t.name) for t in attempts) else None

    conditions = until(judged, 90, "a verdict on every attempt")
    judged_at = time.monotonic()
    events: dict[str, int] = {}
    for tenant in tenants.values():
        for event in json.loads(cluster.kubectl("get", "events", "-n", tenant.namespace,
                                                "-o", "json").stdout)["items"]:
            if event.get("reason") == "GuardrailViolation" and event.get("type") == "Warning":
                name = event["involvedObject"]["name"]
                events[name] = events.get(name, 0) + int(event.get("count") or 1)

    # Once the allowed objects were Ready, no AWS call of any kind named an attempt's entity
    # (the squatted name is team-b's own role, made before), and nothing at all was written
    # while the admitted attempts were judged.
    attempt_entities = {t.aws_name for t in attempts}
    touching = world.proxy.requests(since=allowed_at, entities=attempt_entities)
    writes_during_bypass = [r for r in world.proxy.requests(since=bypass) if r.is_write]
    table = []
    for attempt in attempts:
        condition = conditions[attempt.name]
        own = [r for r in touching if r.entity == attempt.aws_name]
        table.append({
            "attempt": attempt.what, "rule": attempt.rule,
            "refused_at_apply": "denied the request" in refused_at_apply[attempt.name],
            "operator": f"{condition.get('status')}/{condition.get('reason')}",
            "aws_calls": len(own), "aws_writes": sum(r.is_write for r in own),
            "warning_events": events.get(attempt.name, 0),
        })
    rl.report("guardrails", {
        "attempts": len(attempts),
        "seconds": {"allowed_ready": round(allowed_at - started, 1),
                    "refused_at_apply": round(webhook_done - allowed_at, 1),
                    "bypassed_and_judged": round(judged_at - webhook_done, 1)},
        "writes_during_bypass": rl.per_action(writes_during_bypass),
        "table": table,
    })
    for row, attempt in zip(table, attempts, strict=True):
        condition = conditions[attempt.name]
        assert condition["status"] == "False" and condition["reason"] == "GuardrailViolation", row
        assert names_rule(condition["message"], world.guardrail_names[attempt.guardrail],
                          attempt.rule), (attempt.what, condition["message"])
        assert events.get(attempt.name, 0) >= 1, row
    assert not touching, rl.per_action(touching)
    assert not writes_during_bypass, rl.per_action(writes_during_bypass)
    assert hand_made_state(iam) == before

    # The allowed objects are still Ready; team-b owns the name team-a tried to squat.
    for key, tenant in tenants.items():
        found = verdicts(cluster, tenant.namespace)
        for obj in allowed[key]:
            assert found[(kube.plural(obj), obj["metadata"]["name"])]["status"] == "True"
    api = iam.list_role_tags(RoleName=f"{b.namespace}.api")["Tags"]
    assert {"Key": "rolekeeper.dev/owner", "Value": f"{b.namespace}/api"} in api


# --- another cluster, same account -------------------------------------------------------


def cluster_tag(iam: Any, role: str) -> str:
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role)["Tags"]}
    return tags.get("rolekeeper.dev/cluster", "")


def kube_system_uid(cluster: Cluster) -> str:
    return str(cluster.kubectl("get", "namespace", "kube-system", "-o",
                               "jsonpath={.metadata.uid}").stdout)


def test_second_cluster_never_takes_over(crds: Cluster, aws: Aws, tmp_path: Path) -> None:
    """Issue 13's replay: an operator in another cluster, same account, same namespace/name,
    no adopt. Neither operator is given --cluster-id: each cluster's kube-system uid is its
    identity, as in a default install."""
    drift = 2.0
    iam = aws.console()
    here = crds
    namespace = here.create_namespace("rk-gr-twin")
    names = {key: f"rk-{secrets.token_hex(4)}-{key}" for key in ("first-here", "first-there")}
    objects = {key: rl.role_object(key, name, 1) for key, name in names.items()}
    proxies = {key: rl.RecordingProxy.for_server(aws.server) for key in ("here", "there")}
    with ControlPlane(here.binaries if isinstance(here, ControlPlane) else None) as there:
        there.kubectl("apply", "-f", str(REPO / "crds"))
        there.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                      f"crd/iamroles.{GROUP}")
        there.kubectl("create", "namespace", namespace)
        clusters = {"here": here, "there": there}
        ids = {key: kube_system_uid(c) for key, c in clusters.items()}
        assert ids["here"] and ids["there"] and ids["here"] != ids["there"]
        owner = {"first-here": "here", "first-there": "there"}
        try:
            with rl.operator(here.kubeconfig, proxies["here"].env(aws.server), namespace,
                             drift_interval=drift), \
                 rl.operator(there.kubeconfig, proxies["there"].env(aws.server), namespace,
                             drift_interval=drift):
                # Each cluster claims one role first ...
                for key, cluster_key in owner.items():
                    kube.apply(clusters[cluster_key], namespace, objects[key])
                    kube.wait_ready(clusters[cluster_key], namespace, "iamrole", key)
                    assert cluster_tag(iam, names[key]) == ids[cluster_key]
                claimed = {key: iam.get_role(RoleName=name)["Role"] for key, name in names.items()}
                mark = time.monotonic()
                # ... then the same namespace/name appears in the other cluster.
                losers = {key: "there" if c == "here" else "here" for key, c in owner.items()}
                for key, cluster_key in losers.items():
                    kube.apply(clusters[cluster_key], namespace, objects[key])
                for key, cluster_key in losers.items():
                    condition = kube.wait_reason(clusters[cluster_key], namespace, "iamrole",
                                                 key, "Conflict")
                    assert "another cluster" in condition["message"], condition
                    assert ids[owner[key]] in condition["message"], condition
                # Three drift sweeps on each side: nobody rewrites anything (issue 13 saw 6
                # UpdateAssumeRolePolicy + 6 TagRole in 40 s of ping-pong).
                until(lambda: all(p.succeeded("GetAccountAuthorizationDetails", since=mark) >= 3
                                  for p in proxies.values()),
                      60, "three drift sweeps in each cluster", every=0.5)
                for key, cluster_key in owner.items():
                    assert kube.ready(clusters[cluster_key], namespace, "iamrole",
                                      key)["status"] == "True"
                    loser = kube.ready(clusters[losers[key]], namespace, "iamrole", key)
                    assert loser["reason"] == "Conflict", loser
                settled = time.monotonic()
                # The losing objects are deleted: the other cluster's roles stay.
                for key, cluster_key in losers.items():
                    kube.delete_all(clusters[cluster_key], namespace, [objects[key]])
                for key, cluster_key in losers.items():
                    until(lambda k=key, c=cluster_key: not kube.exists(
                        clusters[c], namespace, "iamrole", k), 60, f"{key} deleted")
                after = {key: iam.get_role(RoleName=name)["Role"] for key, name in names.items()}
                for key, cluster_key in owner.items():
                    kube.delete_all(clusters[cluster_key], namespace, [objects[key]])
                for key, cluster_key in owner.items():
                    until(lambda k=key, c=cluster_key: not kube.exists(
                        clusters[c], namespace, "iamrole", k), 60, f"{key} deleted")
        finally:
            for proxy in proxies.values():
                proxy.stop()
    foreign_writes = {
        key: [r for r in proxies[losers[key]].requests(entities=[names[key]])
              if r.is_write and not r.is_refused_create]
        for key in names
    }
    owner_rewrites = {
        key: [r for r in proxies[owner[key]].requests(since=mark, until=settled,
                                                      entities=[names[key]]) if r.is_write]
        for key in names
    }
    rl.report("second-cluster", {
        "writes_by_other_cluster": {k: rl.per_action(v) for k, v in foreign_writes.items()},
        "refused_creates_by_other_cluster": {
            k: sum(r.is_refused_create for r in proxies[losers[k]].requests(entities=[names[k]]))
            for k in names},
        "rewrites_by_owner_after_conflict": {k: rl.per_action(v) for k, v in owner_rewrites.items()},
    })
    assert not any(foreign_writes.values()), foreign_writes
    assert not any(owner_rewrites.values()), owner_rewrites
    for key, name in names.items():
        assert after[key]["AssumeRolePolicyDocument"] == claimed[key]["AssumeRolePolicyDocument"]
        assert after[key]["RoleId"] == claimed[key]["RoleId"]
        # The owning objects' own deletion then deleted their roles.
        with pytest.raises(iam.exceptions.NoSuchEntityException):
            iam.get_role(RoleName=name)
