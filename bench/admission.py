"""Admission latency (DESIGN §6: webhook p99 ≤ 50 ms for a 10 KB policy).

The operator serves its validating webhook over TLS (a self-signed certificate for 127.0.0.1);
the benchmark POSTs AdmissionReview requests for an IAMRole carrying a 10 KB inline policy
straight to it — no kubectl, no API server in between, so the figure is the webhook's own:
TLS, Kopf's admission machinery, parsing the object and judging it against a guardrail that
selects its namespace (docs/guardrails.md's, every rule on). Requests go one at a time on one
kept-alive connection, as the API server's client keeps its connections; a second run opens a
new TLS connection per request, the worst case. The same parse + judgement in-process gives
the share of the time that is Rolekeeper's checks rather than HTTP, TLS and Kopf.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench import motoserver
from controller.core.guardrails import parse_guardrail
from controller.engine.gate import Gate
from controller.engine.reconcile import refuse_early
from controller.kinds import registry
from tests.harness.envtest import ControlPlane, ensure_binaries
from tests.harness.operator import Operator
from tests.harness.util import until
from tests.harness.webhook import WebhookServer, admission_review, post_review
from tests.helpers import ACCOUNT, EC2_TRUST, S3_READ, manifest

POLICY_CHARS = 10_000  # minified; IAM allows 10,240 for all of a role's inline policies
WARMUP = 20
LABEL = "rolekeeper.dev/bench-tenant"
PATH = "iamroles.iam.rolekeeper.dev"  # the webhook's URL path (controller.operator.webhook)


def big_policy(chars: int = POLICY_CHARS) -> dict[str, Any]:
    """An identity policy of about `chars` minified characters: many statements with distinct
    actions and resource ARNs, so matching has real work (none is a denied action)."""
    statements: list[dict[str, Any]] = []
    index = 0
    while len(json.dumps({"Version": "2012-10-17", "Statement": statements},
                         separators=(",", ":"))) < chars - 220:
        statements.append({
            "Sid": f"Read{index}",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket", f"dynamodb:Get{'Item' if index % 2 else 'Records'}"],
            "Resource": [f"arn:aws:s3:::bench-bucket-{index}", f"arn:aws:s3:::bench-bucket-{index}/*"],
        })
        index += 1
    return {"Version": "2012-10-17", "Statement": statements}


def guardrail(boundary: str) -> dict[str, Any]:
    return {
        "apiVersion": "iam.rolekeeper.dev/v1alpha1", "kind": "IAMGuardrail",
        "metadata": {"name": "bench-admission"},
        "spec": {
            "namespaceSelector": {"matchLabels": {LABEL: "true"}},
            "roles": {"names": ["{namespace}.*"], "paths": ["/tenants/{namespace}/"],
                      "maxSessionDuration": 7200,
                      "trust": {"services": ["ec2.amazonaws.com"], "accounts": ["self"]}},
            "permissionsBoundary": {"required": [boundary]},
            "managedPolicies": {"allowed": [S3_READ],
                                "denied": ["arn:aws:iam::aws:policy/AdministratorAccess"]},
            "actions": {"denied": ["iam:*", "organizations:*", "sts:AssumeRole"],
                        "deniedOnWildcardResource": ["s3:Delete*", "s3:Put*"]},
            "limits": {"roles": 50},
        },
    }


def role(namespace: str, boundary: str, name: str = "web", **spec: Any) -> dict[str, Any]:
    body = {
        "roleName": f"{namespace}.{name}", "path": f"/tenants/{namespace}/",
        "assumeRolePolicy": EC2_TRUST, "permissionsBoundary": boundary,
        "managedPolicies": [S3_READ], "inlinePolicies": {"big": big_policy()}, **spec,
    }
    obj = manifest("IAMRole", name, body, namespace)
    obj["metadata"]["uid"] = f"bench-{name}"
    return obj


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"p50_ms": round(1000 * statistics.median(ordered), 2),
            "p99_ms": round(1000 * p99, 2), "max_ms": round(1000 * ordered[-1], 2)}


def keep_alive_post(server: WebhookServer) -> tuple[Callable[[Mapping[str, Any]], dict[str, Any]],
                                                     Callable[[], None]]:
    """POST on one persistent TLS connection (reconnecting if the server closes it)."""
    context = server.context()
    connection = http.client.HTTPSConnection(server.tls.host, server.port, context=context,
                                             timeout=10)

    def post(review: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(review).encode()
        connection.request("POST", f"/{PATH}", body=body,
                           headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        return dict(json.loads(answer.read())["response"])

    return post, connection.close


def in_process(obj: Mapping[str, Any], rule: Mapping[str, Any], namespace: str,
               requests: int) -> list[float]:
    """The webhook's own work without HTTP or Kopf: parse, build the Gate, judge."""
    parsed = parse_guardrail(rule)
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        desired = registry.parse(obj)
        gate = Gate(guardrails=(parsed,), labels={namespace: {LABEL: "true"}}, preceding={},
                    account_id=ACCOUNT)
        decision = refuse_early(registry.of(desired), desired, gate=gate)
        timings.append(time.perf_counter() - started)
        assert decision is None, decision
    return timings


def measure(plane: ControlPlane, aws_env: Mapping[str, str], requests: int,
            say: Callable[[str], None]) -> dict[str, Any]:
    namespace = plane.create_namespace("bench-admission")
    plane.kubectl("label", "namespace", namespace, f"{LABEL}=true")
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/tenant-boundary"
    rule = guardrail(boundary)
    plane.kubectl("apply", "-f", "-", input=json.dumps(rule))
    obj = role(namespace, boundary)
    size = len(json.dumps(obj["spec"]["inlinePolicies"]["big"], separators=(",", ":")))
    denied = role(namespace, boundary, name="denied", maxSessionDuration=43200)
    with tempfile.TemporaryDirectory(prefix="rk-bench-tls-") as tmp:
        server = WebhookServer.for_test(Path(tmp))
        operator = Operator(plane.kubeconfig, aws_env, namespaces=[namespace],
                            drift_interval=600, extra_args=server.args())
        operator.start()
        try:
            # Ready once the guardrail index is loaded: the denied object is refused.
            until(lambda: not post_review(server, PATH, admission_review(denied))[0]["allowed"],
                  30, "the webhook to judge with the guardrail", every=0.2)
            post, close = keep_alive_post(server)
            try:
                for _ in range(WARMUP):
                    post(admission_review(obj))
                kept: list[float] = []
                for _ in range(requests):
                    review = admission_review(obj)
                    started = time.perf_counter()
                    answer = post(review)
                    kept.append(time.perf_counter() - started)
                    assert answer["allowed"], answer
            finally:
                close()
            fresh = []
            for _ in range(requests):
                answer, seconds = post_review(server, PATH, admission_review(obj))
                fresh.append(seconds)
                assert answer["allowed"], answer
            refused = post_review(server, PATH, admission_review(denied))[0]
            assert not refused["allowed"] and "roles.maxSessionDuration" in refused["status"][
                "message"], refused
            rss_mib = operator.rss_kib() / 1024
        except BaseException:
            say(f"operator log tail ({operator.log_path}):\n{operator.log_tail(40)}")
            raise
        finally:
            operator.stop()
    plane.kubectl("delete", "iamguardrail", "bench-admission", "--ignore-not-found")
    local = in_process(obj, rule, namespace, requests)
    return {
        "requests": requests,
        "policy_chars": size,
        "keep_alive": percentiles(kept),
        "new_connection": percentiles(fresh),
        "in_process": percentiles(local),
        "operator_rss_mib": round(rss_mib, 1),
    }


def render(result: Mapping[str, Any]) -> list[str]:
    """Lines appended to `make bench`'s table."""
    kept, fresh, local = result["keep_alive"], result["new_connection"], result["in_process"]
    target = 50.0
    met = "yes" if kept["p99_ms"] <= target else "**no**"
    return [
        "",
        f"Admission webhook, IAMRole with a {result['policy_chars']:,}-character inline policy, "
        f"{result['requests']} sequential AdmissionReview POSTs over TLS (no API server):",
        "",
        "| Figure | p50 ms | p99 ms | max ms | Target (DESIGN §6) | Met |",
        "|---|---|---|---|---|---|",
        f"| webhook, kept-alive connection | {kept['p50_ms']:.1f} | {kept['p99_ms']:.1f} | "
        f"{kept['max_ms']:.1f} | p99 ≤ 50 ms | {met} ({kept['p99_ms'] / target:.2f}x target) |",
        f"| webhook, new TLS connection each | {fresh['p50_ms']:.1f} | {fresh['p99_ms']:.1f} | "
        f"{fresh['max_ms']:.1f} | | |",
        f"| the same checks in-process | {local['p50_ms']:.1f} | {local['p99_ms']:.1f} | "
        f"{local['max_ms']:.1f} | | |",
        "",
        f"Checks are {local['p50_ms'] / kept['p50_ms']:.0%} of the webhook's median; the rest is "
        "HTTP, TLS and Kopf.",
    ]


def main() -> int:
    """`python -m bench.admission`: this measurement alone (BENCH_ADMISSION_REQUESTS [200])."""
    requests = int(os.environ.get("BENCH_ADMISSION_REQUESTS", "200"))
    with ControlPlane(ensure_binaries()) as plane, motoserver.running() as server:
        plane.kubectl("apply", "-f", str(Path(__file__).resolve().parents[1] / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                      "crd/iamguardrails.iam.rolekeeper.dev", "crd/iamroles.iam.rolekeeper.dev")
        result = measure(plane, server.env, requests, lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=2))
    print("\n".join(render(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
