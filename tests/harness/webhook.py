"""TLS for the admission webhook in tests and benchmarks: a self-signed serving certificate for
127.0.0.1 (an IP SAN: the API server, written in Go, never falls back to the CommonName), the
`rolekeeper run` arguments that serve it, and a client that POSTs AdmissionReviews to it
directly (no API server in between), for the benchmark and for probing the server.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import time
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.harness.util import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServingCert:
    """A self-signed certificate (its own CA: the caBundle is the certificate) and its key."""

    cert: Path
    key: Path
    host: str = HOST


def self_signed(directory: Path, host: str = HOST, days: int = 1) -> ServingCert:
    """Write cert.pem/key.pem for `host` (an IP address or a DNS name) into `directory`.

    The certificate is its own CA (basicConstraints CA:TRUE, keyCertSign), with the subject and
    authority key identifiers Python 3.13's strict verification asks for, and serverAuth.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"rolekeeper-webhook-{host}")])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=False,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ServingCert(cert_path, key_path, host)


@dataclass(frozen=True)
class WebhookServer:
    """Where an operator serves its webhook, and the arguments that make it do so."""

    tls: ServingCert
    port: int
    configuration: str | None = None  # a ValidatingWebhookConfiguration Kopf keeps up to date

    @classmethod
    def for_test(cls, directory: Path, configuration: str | None = None) -> WebhookServer:
        return cls(self_signed(directory), free_port(), configuration)

    def args(self) -> list[str]:
        """`rolekeeper run` arguments: listen on the host only, TLS with this certificate."""
        found = [
            "--webhook-port", str(self.port),
            "--webhook-address", self.tls.host,
            "--webhook-host", self.tls.host,
            "--webhook-cert", str(self.tls.cert),
            "--webhook-key", str(self.tls.key),
        ]
        if self.configuration:
            found += ["--webhook-configuration", self.configuration]
        return found

    @property
    def url(self) -> str:
        return f"https://{self.tls.host}:{self.port}"

    def context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.tls.cert))


def admission_review(
    obj: Mapping[str, Any], *, operation: str = "CREATE", user: str = "bench",
    groups: tuple[str, ...] = ("system:authenticated",),
) -> dict[str, Any]:
    """An AdmissionReview request (admission.k8s.io/v1) as the API server sends it."""
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    plural = f"{str(obj['kind']).lower()}s"
    metadata = obj.get("metadata", {})
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": obj["kind"]},
            "resource": {"group": group, "version": version, "resource": plural},
            "requestKind": {"group": group, "version": version, "kind": obj["kind"]},
            "requestResource": {"group": group, "version": version, "resource": plural},
            "name": metadata.get("name", ""),
            "namespace": metadata.get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": user, "groups": list(groups)},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def post_review(
    server: WebhookServer, path: str, review: Mapping[str, Any],
    context: ssl.SSLContext | None = None, timeout: float = 10.0,
) -> tuple[dict[str, Any], float]:
    """POST one AdmissionReview to `path` (Kopf serves each handler at /<handler id>); returns
    the response's `response` part and the seconds the round trip took (one new TLS
    connection per call, as the API server's client may open)."""
    body = json.dumps(review).encode()
    request = urllib.request.Request(
        f"{server.url}/{path.lstrip('/')}", data=body,
        headers={"Content-Type": "application/json"}, method="POST",
    )
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=context or server.context()),
    )
    started = time.perf_counter()
    with opener.open(request, timeout=timeout) as answer:
        payload = answer.read()
    elapsed = time.perf_counter() - started
    return dict(json.loads(payload)["response"]), elapsed
