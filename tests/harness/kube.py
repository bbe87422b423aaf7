"""Helpers over the real kubectl for the e2e tier, the demo and the benchmark: apply, delete,
list and get Rolekeeper objects, read their Ready condition and events, wait for them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from tests.harness.envtest import Cluster
from tests.harness.util import until

KINDS = "iamroles,iamusers"


def apply(cluster: Cluster, namespace: str, *objects: Mapping[str, Any], check: bool = True,
          timeout: float = 60.0) -> Any:
    """One `kubectl apply` of `objects` into `namespace`, in order (kubectl reports failures in
    that order)."""
    docs = [{**o, "metadata": {**o["metadata"], "namespace": namespace}} for o in objects]
    return cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=check,
                           timeout=timeout)


def apply_all(cluster: Cluster, namespace: str, objects: Iterable[Mapping[str, Any]],
              check: bool = True) -> Any:
    """`apply` for many objects at once, with a timeout that fits hundreds."""
    return apply(cluster, namespace, *objects, check=check, timeout=180)


def delete_all(cluster: Cluster, namespace: str, objects: Iterable[Mapping[str, Any]]) -> None:
    """Request deletion without waiting for finalizers (the operator is what we are testing)."""
    names = [f"{plural(o)}/{o['metadata']['name']}" for o in objects]
    if names:
        cluster.kubectl("delete", "-n", namespace, "--wait=false", "--ignore-not-found", *names,
                        timeout=120)


PLURALS = {"IAMRole": "iamroles", "IAMUser": "iamusers", "IAMPolicy": "iampolicies"}


def plural(obj: Mapping[str, Any]) -> str:
    return PLURALS[obj["kind"]]


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    return dict(json.loads(out))


def exists(cluster: Cluster, namespace: str, kind: str, name: str) -> bool:
    done = cluster.kubectl("get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name",
                           check=False)
    return bool(done.stdout.strip())


def list_objects(cluster: Cluster, namespace: str,
                 kinds: str = KINDS) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of `kinds` (IAMRoles and IAMUsers) in a namespace by (plural, name), in one
    kubectl call."""
    out = cluster.kubectl("get", kinds, "-n", namespace, "-o", "json").stdout
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for item in json.loads(out)["items"]:
        found[(plural(item), item["metadata"]["name"])] = item
    return found


def ready_condition(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object's Ready condition, or {} before the operator wrote one."""
    for condition in obj.get("status", {}).get("conditions", []):
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


def ready(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    """The Ready condition, or None before the operator wrote one."""
    return ready_condition(get(cluster, namespace, kind, name)) or None


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


# The reasons of the one Event per reconcile that lists its AWS calls, each as "... (CallName)".
APPLIED_REASONS = ("Created", "Updated", "DriftReverted", "Deleted")


def applied_calls(cluster: Cluster, namespace: str, name: str) -> set[str]:
    """The AWS calls the operator's Events say it made for an object, plus the Event reasons
    ("Created", "DriftReverted", ...): what a reader of `kubectl describe` learns."""
    found: set[str] = set()
    for event in events(cluster, namespace, name):
        found.add(event["reason"])
        if event["reason"] in APPLIED_REASONS:
            found.update(re.findall(r"\(([A-Z][A-Za-z]+)\)(?:;|$)", event["message"]))
    return found


def apply_as(cluster: Cluster, namespace: str, user: str, groups: Iterable[str],
             *objects: Mapping[str, Any], check: bool = True, dry_run: bool = False) -> Any:
    """`apply` impersonating `user` in `groups` (the cluster's admin may impersonate), so RBAC
    and admission see a tenant, not the admin. kubectl reports each refused object in stderr,
    in the order of `objects`; `dry_run` asks the server to admit without storing."""
    docs = [{**o, "metadata": {**o["metadata"], "namespace": namespace}} for o in objects]
    who = [f"--as={user}", *(f"--as-group={g}" for g in groups)]
    extra = ["--dry-run=server"] if dry_run else []
    return cluster.kubectl("apply", *who, *extra, "-f", "-", input=yaml.safe_dump_all(docs),
                           check=check, timeout=120)


def admission_errors(stderr: str) -> list[str]:
    """kubectl's "Error from server ..." reports, one per refused object, in order."""
    parts = stderr.split("Error from server")[1:]
    return [" ".join(("Error from server" + part).split()) for part in parts]


def wait_established(cluster: Cluster, *crds: str, timeout: float = 60) -> None:
    """Wait until each CRD (by name) is Established. Unlike `kubectl wait
    --for=condition=Established` right after `kubectl apply`, this does not fail when the API
    server has not written the CRD's status.conditions yet (kubectl 1.34 errors with
    ".status.conditions accessor error: <nil>" instead of waiting)."""

    def established() -> bool:
        done = cluster.kubectl("get", "crd", *crds, "-o", "json", check=False)
        if done.returncode != 0:
            return False
        found = json.loads(done.stdout)
        items = found.get("items", [found]) if found.get("kind") == "List" else [found]
        return len(items) == len(crds) and all(
            any(c.get("type") == "Established" and c.get("status") == "True"
                for c in item.get("status", {}).get("conditions") or ())
            for item in items
        )

    until(established, timeout, f"CRDs {', '.join(crds)} Established")
