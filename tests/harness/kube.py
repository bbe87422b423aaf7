"""Small helpers over the real kubectl for e2e assertions: apply, wait, read status and events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from tests.harness.envtest import Cluster

T = TypeVar("T")


def apply(cluster: Cluster, namespace: str, *objects: dict[str, Any], check: bool = True) -> Any:
    text = yaml.safe_dump_all([{**o, "metadata": {**o["metadata"], "namespace": namespace}}
                               for o in objects])
    return cluster.kubectl("apply", "-f", "-", input=text, check=check)


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    return dict(json.loads(out))


def exists(cluster: Cluster, namespace: str, kind: str, name: str) -> bool:
    done = cluster.kubectl("get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name",
                           check=False)
    return bool(done.stdout.strip())


def ready(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    """The Ready condition, or None before the operator wrote one."""
    for condition in get(cluster, namespace, kind, name).get("status", {}).get("conditions", []):
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def wait_ready(cluster: Cluster, namespace: str, kind: str, name: str, timeout: int = 60) -> None:
    cluster.kubectl("wait", f"{kind}/{name}", "-n", namespace, "--for=condition=Ready",
                    f"--timeout={timeout}s", timeout=timeout + 10)


def wait_reason(cluster: Cluster, namespace: str, kind: str, name: str, reason: str,
                timeout: float = 60) -> dict[str, Any]:
    return until(lambda: _with_reason(ready(cluster, namespace, kind, name), reason),
                 timeout, f"{kind}/{name} Ready reason {reason}")


def _with_reason(condition: dict[str, Any] | None, reason: str) -> dict[str, Any] | None:
    return condition if condition and condition.get("reason") == reason else None


def events(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "events", "-n", namespace, "-o", "json",
                          f"--field-selector=involvedObject.name={name}").stdout
    return list(json.loads(out)["items"])


def until(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.5) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
