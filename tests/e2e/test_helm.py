"""The Helm chart (charts/rolekeeper) against kustomize and a real API server.

Covers: `helm lint --strict` of the defaults and of ci/all-options-values.yaml; with default
values the chart renders manifests/' kustomize objects one for one (bar the Namespace, which a
Helm release cannot own, and Helm's bookkeeping labels); the RBAC of both as normalised rule
sets, also under another release name, and `accessKeys.namespaces` as the RoleBinding
docs/deploy.md tells people to create; `webhook.enabled` renders manifests/webhook.yaml's objects
and exactly the Deployment and NetworkPolicy additions that file describes; missing CRDs and
bad values are refused with a clear message; the default and the all-options renderings are
accepted by a server-side dry run and their pods meet the `restricted` Pod Security level (a
pod without its securityContext does not); `helm install` with every option on a fresh API
server installs the CRDs from crds/ before the IAMAccount/IAMGuardrail objects and creates every
rendered object; an upgrade changes the Deployment and removes a guardrail taken out of the
values; `helm uninstall` removes the release's objects but keeps the CRDs and, by default, the
guardrails. The control plane has no nodes, so no pod ever runs: the operator inside the chart
is proven by tests/e2e/test_deploy.py, which runs the same arguments and RBAC.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import kube
from tests.harness.envtest import REPO_ROOT, Cluster, ControlPlane

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "rolekeeper"
ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"
MANIFESTS = REPO_ROOT / "manifests"
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-helm.sh"
# Must match hack/build-helm.sh, which honours the same overrides.
HELM_VERSION = os.environ.get("RK_HELM_VERSION", "v3.22.0")
NAMESPACE = "rolekeeper-system"
# What a chart conventionally adds to every object; kustomize's objects carry none of them.
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
               "app.kubernetes.io/version", "app.kubernetes.io/name"}
# The third-party kinds the all-options values use; their CRDs are not in this cluster.
THIRD_PARTY = ["monitoring.coreos.com/v1/ServiceMonitor", "cert-manager.io/v1/Certificate"]
ENABLE_HINT = "the Helm tests need helm: set RK_HELM, run `make helm-bin` (needs Go)"

Obj = dict[str, Any]


# --- helm -----------------------------------------------------------------------------------


def helm_cache() -> Path:
    """The binary hack/build-helm.sh writes (same defaults as the script)."""
    root = os.environ.get("RK_HELM_CACHE")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "rolekeeper" / "helm")
    return Path(root) / HELM_VERSION.removeprefix("v") / "helm"


def find_or_build_helm(config: pytest.Config) -> Path:
    explicit = os.environ.get("RK_HELM")
    if explicit:
        # A wrong explicit setting must not silently fall through to something else.
        if not os.access(explicit, os.X_OK):
            pytest.fail(f"RK_HELM={explicit} is not an executable", pytrace=False)
        return Path(explicit)
    cached = helm_cache()
    if (cached.parent / ".complete").is_file() and os.access(cached, os.X_OK):
        return cached
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        # Prints nothing without Go (exit 0), fails under CI=true; progress goes to stderr.
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True,
                              check=True)
    lines = done.stdout.strip().splitlines()
    if lines:
        return Path(lines[-1])
    pytest.skip(ENABLE_HINT)


@dataclass
class Helm:
    """The real helm binary, with its config, cache and data kept out of the user's home."""

    binary: Path
    home: Path

    def run(self, *args: str, kubeconfig: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HELM_CACHE_HOME": str(self.home / "cache"),
               "HELM_CONFIG_HOME": str(self.home / "config"),
               "HELM_DATA_HOME": str(self.home / "data")}
        env.pop("KUBECONFIG", None)
        extra = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
        done = subprocess.run([str(self.binary), *args, *extra], capture_output=True, text=True,
                              env=env, timeout=120, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stderr}",
                        pytrace=False)
        return done

    def template(self, *args: str, release: str = "rolekeeper",
                 namespace: str = NAMESPACE) -> list[Obj]:
        out = self.run("template", release, str(CHART), "-n", namespace, *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session")
def helm(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(find_or_build_helm(pytestconfig), tmp_path_factory.mktemp("helm-home"))


# --- comparing objects ----------------------------------------------------------------------


def key(obj: Obj) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def by_key(objects: list[Obj]) -> dict[tuple[str, str, str], Obj]:
    return {key(o): o for o in objects}


def kustomized(cluster: Cluster) -> list[Obj]:
    """manifests/ as kustomize renders it (the kustomize built into the real kubectl)."""
    return list(yaml.safe_load_all(cluster.kubectl("kustomize", str(MANIFESTS)).stdout))


def _strip_labels(chart: Obj, kustomize: Obj, where: str) -> None:
    """Check at one metadata path that the chart's labels are kustomize's plus Helm's own, then
    drop both, so the rest of the objects can be compared whole."""
    path = where.split(".")
    chart_meta, kustomize_meta = chart, kustomize
    for part in path:
        chart_meta, kustomize_meta = chart_meta.get(part, {}), kustomize_meta.get(part, {})
    ours, theirs = chart_meta.pop("labels", {}), kustomize_meta.pop("labels", {})
    assert theirs.items() <= ours.items(), (where, key(kustomize), theirs, ours)
    assert set(ours) - set(theirs) <= HELM_LABELS, (where, key(kustomize), ours)


def same_but_labels(chart: Obj, kustomize: Obj) -> tuple[Obj, Obj]:
    chart, kustomize = copy.deepcopy(chart), copy.deepcopy(kustomize)
    _strip_labels(chart, kustomize, "metadata")
    if kustomize["kind"] == "Deployment":
        _strip_labels(chart, kustomize, "spec.template.metadata")
    return chart, kustomize


def rbac(objects: list[Obj]) -> dict[tuple[str, str, str], frozenset[Any]]:
    """Roles as sets of (apiGroup, resource, verb, resourceName) and bindings as (roleRef,
    subjects): how each rule is split into lists makes no difference to what it grants."""
    found: dict[tuple[str, str, str], frozenset[Any]] = {}
    for obj in objects:
        if obj["kind"] in ("ClusterRole", "Role"):
            found[key(obj)] = frozenset(
                (group, resource, verb, name)
                for rule in obj.get("rules", [])
                for group in rule.get("apiGroups", [""])
                for resource in rule.get("resources", [])
                for verb in rule["verbs"]
                for name in rule.get("resourceNames", [None]))
        elif obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            ref = obj["roleRef"]
            found[key(obj)] = frozenset(
                [("roleRef", ref["kind"], ref["name"])]
                + [(s["kind"], s["name"], s.get("namespace", "")) for s in obj["subjects"]])
    return found


def renamed(objects: list[Obj], old: str, new: str) -> list[Obj]:
    result: list[Obj] = json.loads(json.dumps(objects).replace(old, new))
    return result


def container(deployment: Obj) -> Obj:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


# --- rendering: the chart against kustomize -------------------------------------------------


def test_lint_strict_passes_for_defaults_and_every_option(helm: Helm) -> None:
    helm.run("lint", "--strict", str(CHART))
    # lint cannot be told about CRDs in a cluster (no --api-versions): the two third-party kinds
    # are switched off here and rendered by the tests below.
    done = helm.run("lint", "--strict", str(CHART), "-f", str(ALL_OPTIONS),
                    "--set", "metrics.serviceMonitor.enabled=false",
                    "--set", "webhook.certManager.enabled=false",
                    "--set", "webhook.tls.secretName=tls", "--set", "webhook.tls.caBundle=Q0E=")

    assert "0 chart(s) failed" in done.stdout, done.stdout


def test_the_packaged_chart_is_whole_and_lints(helm: Helm, tmp_path: Path) -> None:
    packed = helm.run("package", str(CHART), "-d", str(tmp_path))
    [archive] = tmp_path.glob("rolekeeper-*.tgz")
    listed = subprocess.run(["tar", "tzf", str(archive)], capture_output=True, text=True,
                            check=True).stdout.split()

    # No "found symbolic link" warning: the CRDs are files of the chart, not links out of it.
    assert packed.stderr == ""
    assert {f"rolekeeper/crds/{name}" for name in
            ("iamroles.yaml", "iamusers.yaml", "iampolicies.yaml", "iamguardrails.yaml",
             "iamaccounts.yaml", "kopf-peering.yaml")} <= set(listed)
    helm.run("lint", "--strict", str(archive))


def test_defaults_render_the_kustomize_objects(helm: Helm, control_plane: Cluster) -> None:
    chart = by_key(helm.template())
    kustomize = by_key(kustomized(control_plane))
    # A release cannot own the namespace it is stored in: docs/deploy.md creates it from
    # manifests/namespace.yaml (Pod Security labels) before `helm install`.
    namespace = kustomize.pop(("Namespace", "", NAMESPACE))

    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert sorted(chart) == sorted(kustomize)
    for name, ours in chart.items():
        mine, theirs = same_but_labels(ours, kustomize[name])
        assert mine == theirs, name


def test_chart_and_kustomize_grant_the_same_rbac(helm: Helm, control_plane: Cluster) -> None:
    kustomize = rbac(kustomized(control_plane))
    # Another release name renames every object and the peering object; the grants are the same.
    other = renamed(helm.template(release="team-x"), "team-x-rolekeeper", "rolekeeper")

    assert rbac(helm.template()) == kustomize
    assert rbac(other) == kustomize
    assert ("kopf.dev", "clusterkopfpeerings", "patch", "team-x-rolekeeper") in rbac(
        helm.template(release="team-x"))[("ClusterRole", "", "team-x-rolekeeper")]


def test_access_key_namespaces_get_the_documented_role_binding(
    helm: Helm, control_plane: Cluster
) -> None:
    rendered = helm.template("--set", "accessKeys.namespaces={team-a,team-b}")
    # The command docs/deploy.md §5 gives for one namespace, as kubectl would send it.
    documented = json.loads(control_plane.kubectl(
        "create", "rolebinding", "rolekeeper-access-keys", "-n", "team-a",
        "--clusterrole=rolekeeper-access-keys",
        f"--serviceaccount={NAMESPACE}:rolekeeper", "--dry-run=client", "-o", "json").stdout)

    bindings = {k: v for k, v in rbac(rendered).items() if k[0] == "RoleBinding"}
    assert set(bindings) == {("RoleBinding", ns, "rolekeeper-access-keys")
                             for ns in ("team-a", "team-b")}
    assert bindings[("RoleBinding", "team-a", "rolekeeper-access-keys")] == rbac([documented])[
        ("RoleBinding", "team-a", "rolekeeper-access-keys")]


WEBHOOK_ARGS = ["--webhook-port=9443", "--webhook-address=0.0.0.0",
                "--webhook-cert=/webhook-tls/tls.crt", "--webhook-key=/webhook-tls/tls.key"]


def test_webhook_renders_manifests_webhook_and_its_deployment_patch(helm: Helm) -> None:
    plain = by_key(helm.template())
    chart = by_key(helm.template("--set", "webhook.enabled=true",
                                 "--api-versions", "cert-manager.io/v1/Certificate"))
    static = by_key(list(yaml.safe_load_all((MANIFESTS / "webhook.yaml").read_text())))

    added = {k: chart[k] for k in set(chart) - set(plain)}
    assert sorted(added) == sorted(static)
    for name, ours in added.items():
        mine, theirs = same_but_labels(ours, static[name])
        assert mine == theirs, name
    # What manifests/webhook.yaml's header says to add to the Deployment, and nothing else.
    before = container(plain[("Deployment", NAMESPACE, "rolekeeper")])
    after = container(chart[("Deployment", NAMESPACE, "rolekeeper")])
    assert after["args"] == before["args"] + WEBHOOK_ARGS
    assert after["ports"] == [*before["ports"],
                              {"name": "webhook", "containerPort": 9443, "protocol": "TCP"}]
    assert after["volumeMounts"] == [*before["volumeMounts"], {
        "name": "webhook-tls", "mountPath": "/webhook-tls", "readOnly": True}]
    pod = chart[("Deployment", NAMESPACE, "rolekeeper")]["spec"]["template"]["spec"]
    assert pod["volumes"][-1] == {"name": "webhook-tls",
                                  "secret": {"secretName": "rolekeeper-webhook-tls"}}
    for field in ("args", "ports", "volumeMounts"):
        before.pop(field), after.pop(field)
    assert after == before
    policy = chart[("NetworkPolicy", NAMESPACE, "rolekeeper")]["spec"]["ingress"]
    assert policy == [*plain[("NetworkPolicy", NAMESPACE, "rolekeeper")]["spec"]["ingress"],
                      {"ports": [{"port": "webhook", "protocol": "TCP"}]}]


REFUSED = [
    ("servicemonitor-without-crd", ["--set", "metrics.serviceMonitor.enabled=true"],
     "needs the ServiceMonitor CRD (monitoring.coreos.com/v1)"),
    ("cert-manager-missing", ["--set", "webhook.enabled=true"], "needs cert-manager"),
    ("webhook-tls-without-ca", ["--set", "webhook.enabled=true",
                                "--set", "webhook.certManager.enabled=false",
                                "--set", "webhook.tls.secretName=tls"],
     "webhook.tls.caBundle (base64 of the CA that signed webhook.tls.secretName) is required"),
    ("misspelt-key", ["--set", "replica=3"], "additional properties 'replica' not allowed"),
    ("bad-digest", ["--set", "image.digest=latest"], "/image/digest"),
    ("guardrail-without-spec", ["--set", "guardrails[0].name=g"], "missing property 'spec'"),
    ("bad-failure-policy", ["--set", "webhook.failurePolicy=Open"], "/webhook/failurePolicy"),
    ("no-service-account", ["--set", "serviceAccount.create=false"],
     "serviceAccount.name is required when serviceAccount.create is false"),
]


@pytest.mark.parametrize(("args", "message"), [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])
def test_bad_values_are_refused_with_a_clear_message(
    helm: Helm, args: list[str], message: str
) -> None:
    done = helm.run("template", "rolekeeper", str(CHART), *args, check=False)

    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert "panic" not in done.stderr


def test_options_reach_the_deployment(helm: Helm) -> None:
    objects = by_key(helm.template("-f", str(ALL_OPTIONS), *api_versions()))
    values = yaml.safe_load(ALL_OPTIONS.read_text())
    deployment = objects[("Deployment", NAMESPACE, "rolekeeper")]
    pod = deployment["spec"]["template"]["spec"]
    args = container(deployment)["args"]

    assert deployment["spec"]["replicas"] == 3
    assert container(deployment)["image"] == (
        f"{values['image']['repository']}@{values['image']['digest']}")
    assert {"--peering=rolekeeper-prod", "--peering-lifetime=45", "--drift-interval=120",
            "--liveness=http://0.0.0.0:8081/healthz", "--metrics-port=9091",
            "--log-format=text", "--cluster-id=prod-eu-1", "--webhook-port=9444",
            "--workers=8", "--managed-policy-quota=20"} <= set(args)
    assert "--metrics-port=9090" not in args
    assert pod["serviceAccountName"] == "rolekeeper-operator"
    for field in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints",
                  "priorityClassName", "terminationGracePeriodSeconds", "imagePullSecrets"):
        assert pod[field] == values[field], field
    assert container(deployment)["resources"] == values["resources"]
    peering = objects[("ClusterKopfPeering", "", "rolekeeper-prod")]
    patch_rule = ("kopf.dev", "clusterkopfpeerings", "patch", peering["metadata"]["name"])
    assert patch_rule in rbac(list(objects.values()))[("ClusterRole", "", "rolekeeper")]
    assert objects[("IAMGuardrail", "", "tenants")]["spec"] == values["guardrails"][0]["spec"]
    assert objects[("IAMAccount", "", "prod")]["spec"] == values["accounts"][0]["spec"]
    monitor = objects[("ServiceMonitor", NAMESPACE, "rolekeeper")]
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    webhooks = objects[("ValidatingWebhookConfiguration", "", "rolekeeper")]["webhooks"]
    assert {(w["failurePolicy"], w["timeoutSeconds"]) for w in webhooks} == {("Ignore", 3)}
    failing = by_key(helm.template("-f", str(ALL_OPTIONS), *api_versions(),
                                   "--set", "webhook.failurePolicy=Fail"))
    webhooks = failing[("ValidatingWebhookConfiguration", "", "rolekeeper")]["webhooks"]
    assert {w["failurePolicy"] for w in webhooks} == {"Fail"}


def test_metrics_off_removes_every_trace(helm: Helm) -> None:
    objects = by_key(helm.template("--set", "metrics.enabled=false",
                                   "--set", "replicas=1"))
    deployment = objects[("Deployment", NAMESPACE, "rolekeeper")]

    assert ("Service", NAMESPACE, "rolekeeper-metrics") not in objects
    assert not any(a.startswith("--metrics") for a in container(deployment)["args"])
    assert [p["name"] for p in container(deployment)["ports"]] == ["health"]
    ingress = objects[("NetworkPolicy", NAMESPACE, "rolekeeper")]["spec"]["ingress"]
    assert ingress == [{"ports": [{"port": "health", "protocol": "TCP"}]}]
    # One replica: a PodDisruptionBudget of minAvailable 1 would block every node drain.
    assert ("PodDisruptionBudget", NAMESPACE, "rolekeeper") not in objects


# --- the API server ---------------------------------------------------------------------------


def api_versions() -> list[str]:
    return [arg for kind in THIRD_PARTY for arg in ("--api-versions", kind)]


def stand_in_crd(api_version: str, plural: str) -> Obj:
    """A CRD for a third-party kind whose real CRD is not available here: it accepts any spec,
    so only the object's group, version, kind and scope are checked by the API server."""
    group, version, kind = api_version.split("/")
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": f"{kind}List"},
                     "versions": [{"name": version, "served": True, "storage": True, "schema": {
                         "openAPIV3Schema": {"type": "object",
                                             "x-kubernetes-preserve-unknown-fields": True}}}]}}


def restricted_namespace(cluster: Cluster, name: str) -> None:
    """manifests/namespace.yaml (Pod Security `restricted`, enforced) under another name."""
    namespace = yaml.safe_load((MANIFESTS / "namespace.yaml").read_text())
    namespace["metadata"]["name"] = name
    cluster.kubectl("apply", "-f", "-", input=json.dumps(namespace))


@pytest.fixture(scope="module")
def plane(control_plane: Cluster) -> Iterator[ControlPlane]:
    """A fresh API server of this module's own: `helm install` must find no CRDs, and the
    release's cluster-scoped objects (guardrails, accounts) must not reach other tests."""
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("installs cluster-scoped objects: needs the local control plane")
    with ControlPlane(control_plane.binaries) as fresh:
        stand_ins = [stand_in_crd("monitoring.coreos.com/v1/ServiceMonitor", "servicemonitors"),
                     stand_in_crd("cert-manager.io/v1/Certificate", "certificates"),
                     stand_in_crd("cert-manager.io/v1/Issuer", "issuers")]
        fresh.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(stand_ins))
        kube.wait_established(fresh, *(crd["metadata"]["name"] for crd in stand_ins))
        restricted_namespace(fresh, NAMESPACE)
        for name in yaml.safe_load(ALL_OPTIONS.read_text())["accessKeys"]["namespaces"]:
            fresh.kubectl("create", "namespace", name)
        yield fresh


@dataclass
class Release:
    install: subprocess.CompletedProcess[str]
    rendered: list[Obj]


@pytest.fixture(scope="module")
def release(helm: Helm, plane: ControlPlane) -> Release:
    """`helm install` with every option into a cluster without Rolekeeper's CRDs."""
    installed = helm.run("install", "rolekeeper", str(CHART), "-n", NAMESPACE,
                         "-f", str(ALL_OPTIONS), kubeconfig=plane.kubeconfig)
    manifest = helm.run("get", "manifest", "rolekeeper", "-n", NAMESPACE,
                        kubeconfig=plane.kubeconfig).stdout
    return Release(installed, [doc for doc in yaml.safe_load_all(manifest) if doc])


def crd_names() -> list[str]:
    return sorted(doc["metadata"]["name"] for path in (CHART / "crds").glob("*.yaml")
                  for doc in yaml.safe_load_all(path.read_text()))


def exists(cluster: Cluster, obj: Obj) -> bool:
    namespace = obj["metadata"].get("namespace")
    where = ["-n", namespace] if namespace else []
    api = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    kind = f"{obj['kind']}.{api}" if api else obj["kind"]
    done = cluster.kubectl("get", kind, obj["metadata"]["name"], *where, "-o", "name",
                           "--ignore-not-found")
    return bool(done.stdout.strip())


def test_install_creates_the_crds_then_every_object(release: Release, plane: ControlPlane) -> None:
    assert "STATUS: deployed" in release.install.stdout
    # NOTES: a real IRSA role and access-key namespaces given, so neither hint is shown.
    assert "example IRSA role" not in release.install.stdout
    assert "kubectl create rolebinding" not in release.install.stdout
    kube.wait_established(plane, *crd_names())
    kinds = {obj["kind"] for obj in release.rendered}
    # Everything the options add, beside the kustomize objects.
    assert {"IAMAccount", "IAMGuardrail", "ServiceMonitor", "Issuer", "Certificate",
            "ValidatingWebhookConfiguration", "RoleBinding", "Deployment"} <= kinds
    missing = [key(obj) for obj in release.rendered if not exists(plane, obj)]
    assert missing == []


def test_install_stores_a_release_well_below_the_secret_limit(
    release: Release, plane: ControlPlane
) -> None:
    # The release record (chart with its CRDs, values, manifest) is one Secret: 1 MiB at most.
    secret = json.loads(plane.kubectl("get", "secret", "-n", NAMESPACE, "-l",
                                      "owner=helm,name=rolekeeper,version=1", "-o", "json").stdout)
    [record] = secret["items"]

    assert len(record["data"]["release"]) < 256 * 1024


def test_the_renderings_pass_a_server_side_dry_run(
    helm: Helm, plane: ControlPlane, release: Release
) -> None:
    # Another release and namespace, so every object is a create (the CRDs come from `release`).
    restricted_namespace(plane, "rk-dry")
    for args in ([], ["-f", str(ALL_OPTIONS), *api_versions()]):
        objects = helm.template(*args, release="rk-dry", namespace="rk-dry")
        done = plane.kubectl("apply", "--dry-run=server", "-f", "-",
                             input=yaml.safe_dump_all(objects))

        assert len(done.stdout.splitlines()) == len(objects), done.stdout
        assert "created (server dry run)" in done.stdout
        assert "PodSecurity" not in done.stderr, done.stderr


def pod_from(deployment: Obj, namespace: str) -> Obj:
    template = deployment["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pss-probe", "namespace": namespace,
                         "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}


def test_the_pods_meet_the_restricted_pod_security_level(
    helm: Helm, plane: ControlPlane
) -> None:
    # Pod Security admission enforces on pods, not Deployments: dry-run the pod the template
    # would make, in the namespace manifests/namespace.yaml makes.
    for args in ([], ["-f", str(ALL_OPTIONS), *api_versions()]):
        deployment = by_key(helm.template(*args))[("Deployment", NAMESPACE, "rolekeeper")]
        pod = pod_from(deployment, NAMESPACE)
        plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod))

    # The check can fail: the same pod without its container securityContext is refused.
    del pod["spec"]["containers"][0]["securityContext"]
    refused = plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod),
                            check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr


def test_upgrade_changes_the_deployment_and_drops_a_removed_guardrail(
    helm: Helm, plane: ControlPlane, release: Release
) -> None:
    helm.run("upgrade", "rolekeeper", str(CHART), "-n", NAMESPACE, "-f", str(ALL_OPTIONS),
             "--set", "driftInterval=30", "--set-json", "guardrails=[]",
             kubeconfig=plane.kubeconfig)

    deployment = json.loads(plane.kubectl("get", "deployment", "rolekeeper", "-n", NAMESPACE,
                                          "-o", "json").stdout)
    assert "--drift-interval=30" in container(deployment)["args"]
    assert deployment["metadata"]["generation"] == 2
    guardrails = plane.kubectl("get", "iamguardrails", "-o", "name").stdout.split()
    assert guardrails == []


def test_uninstall_keeps_crds_and_guardrails_by_default(
    helm: Helm, plane: ControlPlane, release: Release
) -> None:
    # A second release with the default keepPlatformObjects, in its own namespace.
    restricted_namespace(plane, "rk-keep")
    guardrail = json.dumps([{"name": "kept", "spec": {"namespaceSelector": {
        "matchLabels": {"rolekeeper.dev/tenant": "true"}}}}])
    installed = helm.run("install", "rk-keep", str(CHART), "-n", "rk-keep", "--set-json",
                         f"guardrails={guardrail}", kubeconfig=plane.kubeconfig)
    # NOTES with default values: the example IRSA role cannot work, and how to allow access keys.
    assert "WARNING: the ServiceAccount still carries the example IRSA role" in installed.stdout
    assert ("--clusterrole=rk-keep-rolekeeper-access-keys "
            "--serviceaccount=rk-keep:rk-keep-rolekeeper") in installed.stdout
    plane.kubectl("get", "deployment", "rk-keep-rolekeeper", "-n", "rk-keep")  # raises if absent

    done = helm.run("uninstall", "rk-keep", "-n", "rk-keep", kubeconfig=plane.kubeconfig)

    assert "These resources were kept due to the resource policy:\n[IAMGuardrail] kept\n" in (
        done.stdout)
    assert plane.kubectl("get", "iamguardrail", "kept", "-o", "name").stdout.strip()
    for kind, name in (("deployment", "rk-keep-rolekeeper"), ("clusterrole", "rk-keep-rolekeeper"),
                       ("clusterkopfpeering", "rk-keep-rolekeeper")):
        where = ["-n", "rk-keep"] if kind == "deployment" else []
        assert not plane.kubectl("get", kind, name, *where, "--ignore-not-found",
                                 "-o", "name").stdout.strip(), kind
    # Helm never deletes what crds/ installed (that would delete every IAMRole, and so every
    # AWS role the operator manages).
    present = json.loads(plane.kubectl("get", "crd", "-o", "json").stdout)["items"]
    assert set(crd_names()) <= {crd["metadata"]["name"] for crd in present}
