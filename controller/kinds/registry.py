"""The kinds Rolekeeper serves, by Kubernetes kind name: the only place that lists them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.core.actions import Action
from controller.core.errors import SpecError
from controller.core.view import EntityView
from controller.kinds import policy, role, user
from controller.kinds.base import DEFAULT_LIMITS, Desired, Entity, Kind, Limits

GROUP = "iam.rolekeeper.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

KINDS: Mapping[str, Kind] = {k.name: k for k in (role.KIND, user.KIND, policy.KIND)}
KIND_NAMES = tuple(KINDS)
# The kind that managedPolicyRefs and permissionsBoundaryRef name.
REFERENCED: Kind = policy.KIND
# CloudTrail request parameter -> the kinds whose entities it names (`Kind.cloudtrail_keys`):
# what an IAM event must be checked against (core/cloudtrail.py, operator/events.py).
CLOUDTRAIL_KEYS: Mapping[str, tuple[str, ...]] = {
    key: tuple(k.name for k in KINDS.values() if key in k.cloudtrail_keys)
    for key in sorted({key for k in KINDS.values() for key in k.cloudtrail_keys})
}


def get(name: str) -> Kind:
    """The kind called `name` ("IAMRole"); SpecError for anything else."""
    found = KINDS.get(name)
    if found is None:
        expected = ", ".join(KIND_NAMES)
        raise SpecError([f"kind: expected one of {expected}, got {name!r}"])
    return found


def of(desired: Desired) -> Kind:
    """The kind a parsed object belongs to."""
    return KINDS[desired.ref.kind]


def parse(obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Desired:
    """Parse any Rolekeeper object by its `kind`; raises SpecError."""
    return get(str(obj.get("kind"))).parse(obj, limits)


def view_of(obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> EntityView:
    """The guardrail/findings view of a raw object; raises SpecError."""
    desired = parse(obj, limits)
    return of(desired).view(desired)


def document_field(action: Action) -> str | None:
    """The spec field whose policy document a call sends, whichever kind plans it."""
    for kind in KINDS.values():
        found = kind.document_field(action)
        if found is not None:
            return found
    return None


def find(snapshot_entities: Mapping[str, Mapping[str, Entity]], desired: Desired) -> Entity | None:
    """The entity a snapshot holds for an object (None when absent)."""
    return snapshot_entities.get(desired.ref.kind, {}).get(desired.aws_name)
