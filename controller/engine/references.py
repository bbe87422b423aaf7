"""Nothing half-made: check that what a decision attaches exists before anything is written.

A role created with part of its permissions (the policy ARN had a typo, the group was never
made) is worse than no role: the workload starts, then fails in ways nobody connects to the
spec. So every managed policy, boundary and group a decision's calls add is looked up first;
one missing reference and nothing is written. What exists is remembered for a while (AWS managed
policies almost never go away), so a thousand roles attaching one policy cost one lookup.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from controller.aws import calls as aws_calls
from controller.core.actions import Action
from controller.kinds.base import Desired, PolicyRef, resolve_references

# Parameters that name something a call attaches, and how to look it up.
LOOKUPS: dict[str, tuple[str, str, Callable[[Any, str], Any]]] = {
    "PolicyArn": ("policy", "GetPolicy", lambda c, v: c.get_policy(PolicyArn=v)),
    "PermissionsBoundary": ("policy", "GetPolicy", lambda c, v: c.get_policy(PolicyArn=v)),
    "GroupName": ("group", "GetGroup", lambda c, v: c.get_group(GroupName=v, MaxItems=1)),
}
# Which calls attach what their parameter names (CreatePolicyVersion's PolicyArn is the policy
# itself, not something it attaches): (call name prefix, parameter).
ATTACHING = (
    ("Attach", "PolicyArn"),
    ("Create", "PermissionsBoundary"),
    ("Put", "PermissionsBoundary"),
    ("AddUserToGroup", "GroupName"),
)


@dataclass
class KnownToExist:
    """References seen to exist, remembered for `ttl` seconds (shared by all reconciles)."""

    ttl: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _seen: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _inflight: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)

    def fresh(self, key: tuple[str, str]) -> bool:
        with self._lock:
            seen = self._seen.get(key)
            return seen is not None and self.clock() - seen < self.ttl

    def remember(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._seen[key] = self.clock()

    def check(self, key: tuple[str, str], lookup: Callable[[], bool]) -> bool:
        """Whether `key` exists: remembered, or looked up once however many reconciles ask at
        the same moment (a thousand roles created at once share one GetPolicy)."""
        if self.fresh(key):
            return True
        with self._lock:
            one = self._inflight.setdefault(key, threading.Lock())
        with one:
            if self.fresh(key):
                return True
            found = lookup()
            if found:
                self.remember(key)
            return found


def referenced(actions: Iterable[Action]) -> list[tuple[str, str]]:
    """(kind of reference, its name or ARN) for everything the calls attach, in order."""
    found: list[tuple[str, str]] = []
    for action in actions:
        for prefix, param in ATTACHING:
            value = action.params.get(param) if action.api.startswith(prefix) else None
            what = LOOKUPS[param][0]
            if isinstance(value, str) and (what, value) not in found:
                found.append((what, value))
    return found


def missing(client: Any, actions: Iterable[Action], known: KnownToExist) -> list[str]:
    """What the calls attach that AWS does not have, in words ([] when all exist)."""
    absent = []
    for what, value in referenced(actions):
        param = "GroupName" if what == "group" else "PolicyArn"
        _, operation, lookup = LOOKUPS[param]
        exists = partial(_exists, operation, partial(lookup, client, value))
        if not known.check((what, value), exists):
            absent.append(f"{what} {value} does not exist")
    return absent


# --- IAMPolicy references (managedPolicyRefs, permissionsBoundaryRef) -----------------------

# How an IAMPolicy object is found: (its ARN, "") when usable, else ("", why not).
PolicyLookup = Callable[[PolicyRef], tuple[str, str]]


def resolve(desired: Desired, lookup: PolicyLookup) -> tuple[Desired, list[str]]:
    """`desired` with its IAMPolicy references replaced by ARNs, or the reasons some cannot be
    (then nothing of the object is applied: a role never runs with part of its policies)."""
    if not desired.references:
        return desired, []
    arns: dict[PolicyRef, str] = {}
    missing = []
    for ref in desired.references:
        arn, why = lookup(ref)
        if arn:
            arns[ref] = arn
        else:
            missing.append(f"spec.{ref.field}: {ref} {why}")
    if missing:
        return desired, missing
    return resolve_references(desired, arns), []


SHARE_ANNOTATION = "iam.rolekeeper.dev/shared-with"


def shared_with(annotation: str, namespace: str) -> bool:
    """Whether a policy's shared-with annotation ("*" or namespaces, comma-separated) lets
    objects of `namespace` reference it (its own namespace always may)."""
    wanted = {part.strip() for part in annotation.split(",") if part.strip()}
    return "*" in wanted or namespace in wanted


def _exists(operation: str, call: Callable[[], Any]) -> bool:
    return aws_calls.get_or_none(operation, call) is not None
