"""Smoke tests proving the local control plane is a real one: CRDs, schema, RBAC, webhooks."""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness.envtest import Cluster, ControlPlane
from tests.harness.util import until
from tests.helpers import iam_role

pytestmark = pytest.mark.e2e



def iamrole(name: str, namespace: str, **spec: object) -> str:
    """An IAMRole manifest as JSON (kubectl accepts JSON on stdin)."""
    return json.dumps(iam_role(name, None, namespace, **spec))


def test_iamrole_is_listed_with_printer_columns(
    control_plane: Cluster, crds: Cluster, namespace: str
) -> None:
    control_plane.kubectl("apply", "-f", "-", input=iamrole("web", namespace))

    table = control_plane.kubectl("get", "iamroles", "-n", namespace).stdout.splitlines()

    assert table[0].split() == ["NAME", "ARN", "READY", "REASON", "AGE"]
    assert table[1].split()[0] == "web"


def test_schema_violation_is_rejected_by_the_api_server(
    control_plane: Cluster, crds: Cluster, namespace: str
) -> None:
    done = control_plane.kubectl(
        "apply", "-f", "-", input=iamrole("short", namespace, maxSessionDuration=100), check=False
    )

    assert done.returncode != 0
    assert "spec.maxSessionDuration" in done.stderr
    assert "should be greater than or equal to 3600" in done.stderr
    missing = control_plane.kubectl("get", "iamrole", "short", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr


def test_service_account_token_is_authenticated_and_rbac_enforced(
    control_plane: Cluster, namespace: str, tmp_path: Path
) -> None:
    token = control_plane.service_account_token(namespace, "reader")
    as_sa = Cluster(
        control_plane.kubeconfig_for_token(token, tmp_path / "sa"), control_plane.kubectl_path
    )

    denied = as_sa.kubectl("get", "configmaps", "-n", namespace, check=False)
    control_plane.kubectl(
        "create", "role", "read-cm", "-n", namespace, "--verb=get,list", "--resource=configmaps"
    )
    control_plane.kubectl(
        "create",
        "rolebinding",
        "read-cm",
        "-n",
        namespace,
        "--role=read-cm",
        f"--serviceaccount={namespace}:reader",
    )

    assert f"system:serviceaccount:{namespace}:reader" in denied.stderr
    assert "forbidden" in denied.stderr
    until(
        lambda: as_sa.kubectl("get", "configmaps", "-n", namespace, check=False).returncode == 0,
        15, "the RoleBinding to take effect", every=0.2,
    )


# --------------------------------------------------------------------------- webhooks

DENY_LABEL = "rolekeeper.dev/deny"
MUTATED_LABEL = "rolekeeper.dev/mutated"


def _pem_certs(tmp_path: Path) -> tuple[bytes, Path, Path]:
    """A CA and a 127.0.0.1 serving cert it signed: (ca_pem, cert_file, key_file)."""
    now = datetime.datetime.now(datetime.UTC)

    def build(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Certificate | None,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            # Go verifies the SAN only (no CN fallback), so the IP must be there.
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("rolekeeper-test-ca", ca_key, None, ca_key, ca=True)
    leaf = build("127.0.0.1", leaf_key, ca, ca_key, ca=False)
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file


def _review(request: dict[str, object], path: str) -> dict[str, object]:
    """The AdmissionReview response: /validate denies DENY_LABEL, /mutate adds MUTATED_LABEL."""
    obj = request["object"]
    assert isinstance(obj, dict)
    labels = obj.get("metadata", {}).get("labels") or {}
    response: dict[str, object] = {"uid": request["uid"], "allowed": True}
    if path == "/validate" and DENY_LABEL in labels:
        response["allowed"] = False
        response["status"] = {"code": 403, "message": "denied by the rolekeeper test webhook"}
    if path == "/mutate":
        patch = (
            [
                {
                    "op": "add",
                    "path": f"/metadata/labels/{MUTATED_LABEL.replace('/', '~1')}",
                    "value": "true",
                }
            ]
            if labels
            else [{"op": "add", "path": "/metadata/labels", "value": {MUTATED_LABEL: "true"}}]
        )
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class _AdmissionHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        # The apiserver appends ?timeout=...s to the configured URL.
        path = urllib.parse.urlsplit(self.path).path
        body = json.dumps(_review(review["request"], path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep pytest output clean."""


@pytest.fixture
def webhook_server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """An HTTPS admission server on 127.0.0.1: yields (base URL, CA PEM)."""
    ca_pem, cert_file, key_file = _pem_certs(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AdmissionHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca_pem
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _webhook_configs(url: str, ca_pem: bytes, namespace: str) -> str:
    """Validating + mutating configs for configmap CREATE in one namespace only."""
    ca_bundle = base64.b64encode(ca_pem).decode()
    hook = {
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["configmaps"],
            }
        ],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Fail",
        "timeoutSeconds": 5,
    }
    items = []
    for kind, path in (
        ("ValidatingWebhookConfiguration", "/validate"),
        ("MutatingWebhookConfiguration", "/mutate"),
    ):
        webhook = {
            **hook,
            "name": f"{path[1:]}.{namespace}.rolekeeper.dev",
            "clientConfig": {"url": url + path, "caBundle": ca_bundle},
        }
        items.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": f"rk-test-{namespace}"},
                "webhooks": [webhook],
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def _configmap(name: str, namespace: str, labels: dict[str, str]) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
        }
    )


def test_admission_webhooks_on_localhost_are_called(
    control_plane: Cluster, namespace: str, webhook_server: tuple[str, bytes]
) -> None:
    url, ca_pem = webhook_server
    configs = _webhook_configs(url, ca_pem, namespace)
    control_plane.kubectl("create", "-f", "-", input=configs)
    try:
        # The apiserver picks up new webhook configurations asynchronously.
        probes = iter(range(1000))

        def mutated() -> bool:
            name = f"probe-{next(probes)}"
            control_plane.kubectl("create", "-f", "-", input=_configmap(name, namespace, {}))
            labels = control_plane.kubectl(
                "get", "configmap", name, "-n", namespace, "-o", "jsonpath={.metadata.labels}"
            ).stdout
            return MUTATED_LABEL in labels

        until(mutated, 15, "the mutating webhook to be called", every=0.2)
        denied = control_plane.kubectl(
            "create", "-f", "-", input=_configmap("bad", namespace, {DENY_LABEL: "x"}), check=False
        )
    finally:
        control_plane.kubectl("delete", "-f", "-", input=configs, check=False)

    assert denied.returncode != 0
    assert "denied the request: denied by the rolekeeper test webhook" in denied.stderr


def test_restarts_keep_state(control_plane: Cluster, namespace: str) -> None:
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("restarts need the local ControlPlane, not RK_E2E_KUBECONFIG")
    control_plane.kubectl("create", "configmap", "kept", "-n", namespace)

    control_plane.restart_etcd()
    control_plane.restart_apiserver()

    until(
        lambda: (
            control_plane.kubectl(
                "get", "configmap", "kept", "-n", namespace, check=False
            ).returncode
            == 0
        ),
        30, "the configmap after the restarts", every=0.2,
    )
