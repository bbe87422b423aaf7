"""What the benchmark asks the API server: how many IAMRoles are Ready, and how many writes it served.

Readiness is polled as a server-side Table (the CRD's printer columns) over one HTTPS connection
per poll: listing 1,000 full objects through `kubectl -o json` every second would cost the
2-core machine more CPU than the operator under test. Writes are read from the API server's own
`apiserver_request_total`, so they count whatever any client did, the operator included.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.harness.envtest import ControlPlane
from tests.harness.util import Timeout, until
from tests.helpers import API_VERSION

GROUP, VERSION = API_VERSION.split("/")
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
WRITE_VERBS = frozenset({"POST", "CREATE", "PATCH", "APPLY", "PUT", "UPDATE", "DELETE"})
COUNTED_RESOURCES = frozenset({"iamroles", "events"})
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Convergence:
    """Seconds from the start of `kubectl apply` until each share of the objects was Ready."""

    seconds: float | None = None  # all Ready; None when the timeout expired first
    apply_seconds: float = 0.0
    half_seconds: float | None = None
    ready: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)


class Api:
    """Reads against one ControlPlane with its admin token."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        # The apiserver's self-signed cert lacks extensions X509_STRICT (Python 3.13+) demands.
        context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        # An empty ProxyHandler: requests to 127.0.0.1 must never go to an HTTP(S)_PROXY.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )

    def ready_count(self, namespace: str) -> tuple[int, int]:
        """(objects with Ready=True, objects) in `namespace`."""
        url = f"{self.plane.server}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/iamroles"
        request = urllib.request.Request(
            url,
            headers={"Authorization": f"Bearer {self.plane.admin_token}", "Accept": TABLE},
        )
        with self._opener.open(request, timeout=30) as response:
            table: dict[str, Any] = json.load(response)
        names = [column["name"] for column in table["columnDefinitions"]]
        ready = names.index("Ready")
        rows = table.get("rows") or []
        return sum(1 for row in rows if row["cells"][ready] == "True"), len(rows)

    def apply_and_wait(
        self, manifest: dict[str, Any], namespace: str, timeout: float, every: float
    ) -> Convergence:
        """`kubectl apply --server-side -f -` every object at once, then poll until all are Ready.

        Server-side apply is one request per object (client-side apply reads each object first
        and is 2.5x slower here), and it is how GitOps tools apply today.
        """
        expected = len(manifest["items"])
        result = Convergence()
        started = time.monotonic()
        self.plane.kubectl(
            "apply", "--server-side", "--field-manager=bench", "-f", "-",
            input=json.dumps(manifest), timeout=timeout,
        )
        result.apply_seconds = time.monotonic() - started

        def all_ready() -> bool:
            ready, _ = self.ready_count(namespace)
            elapsed = time.monotonic() - started
            result.samples.append((round(elapsed, 2), ready))
            result.ready = ready
            if result.half_seconds is None and ready * 2 >= expected:
                result.half_seconds = elapsed
            if ready >= expected:
                result.seconds = elapsed
            return result.seconds is not None

        with contextlib.suppress(Timeout):  # result.seconds stays None
            until(all_ready, started + timeout - time.monotonic(), "all Ready", every)
        return result

    def writes(self) -> Counter[str]:
        """Cumulative write requests by "resource verb" for IAMRoles and Events, from /metrics."""
        text = self.plane.kubectl("get", "--raw", "/metrics", timeout=60).stdout
        counts: Counter[str] = Counter()
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if not match:
                continue
            labels = dict(_LABEL.findall(match["labels"]))
            resource, verb = labels.get("resource", ""), labels.get("verb", "")
            if resource in COUNTED_RESOURCES and verb in WRITE_VERBS:
                name = resource + ("/" + labels["subresource"] if labels.get("subresource") else "")
                counts[f"{name} {verb}"] += int(float(match["value"]))
        return counts


def delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    """Non-zero differences between two `writes()` readings."""
    return {key: after[key] - before[key] for key in sorted(after) if after[key] != before[key]}
