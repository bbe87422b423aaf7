"""References: what a decision attaches must exist first, and IAMPolicy objects by name.

Covers: managed policies attached, boundaries set on create or later, groups joined are
references; a policy's own version calls, detaches and removals are not; each is listed once.
managedPolicyRefs/permissionsBoundaryRef parse (namespace defaulted, errors named, the quota
counted with ARNs), resolve to ARNs or say what is missing; the shared-with annotation; plan
resolves a policy of the same input to its future ARN and refuses unshared or absent ones.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from controller.core.actions import act
from controller.core.errors import SpecError
from controller.engine.references import KnownToExist, referenced, resolve, shared_with
from controller.kinds import registry
from controller.kinds.base import PolicyRef
from controller.kinds.snapshot import AccountSnapshot
from controller.review import compute, manifests
from tests.helpers import ACCOUNT, LOGS_POLICY, manifest, role_object

P = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
B = "arn:aws:iam::123456789012:policy/boundary"


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (act("AttachRolePolicy", "", RoleName="r", PolicyArn=P), [("policy", P)]),
        (act("AttachUserPolicy", "", UserName="u", PolicyArn=P), [("policy", P)]),
        (act("CreateRole", "", RoleName="r", PermissionsBoundary=B), [("policy", B)]),
        (act("PutRolePermissionsBoundary", "", RoleName="r", PermissionsBoundary=B), [("policy", B)]),
        (act("AddUserToGroup", "", UserName="u", GroupName="g"), [("group", "g")]),
        (act("CreatePolicyVersion", "", PolicyArn=B, PolicyDocument="{}"), []),
        (act("SetDefaultPolicyVersion", "", PolicyArn=B, VersionId="v2"), []),
        (act("DetachRolePolicy", "", RoleName="r", PolicyArn=P), []),
        (act("RemoveUserFromGroup", "", UserName="u", GroupName="g"), []),
        (act("PutRolePolicy", "", RoleName="r", PolicyName="p", PolicyDocument="{}"), []),
    ],
    ids=lambda v: v.api if hasattr(v, "api") else None,
)
def test_referenced(action: object, expected: list[tuple[str, str]]) -> None:
    assert referenced([action]) == expected  # type: ignore[list-item]


def test_each_reference_is_listed_once() -> None:
    calls = [act("AttachRolePolicy", "", RoleName="r", PolicyArn=P)] * 2
    assert referenced(calls) == [("policy", P)]


# --- IAMPolicy references: parse, resolve, plan ------------------------------------------------



def test_references_parse_with_the_objects_namespace_by_default() -> None:
    desired = registry.parse(role_object("web", managedPolicyRefs=[{"name": "logs"}],
                                         permissionsBoundaryRef={"namespace": "platform", "name": "boundary"}))
    assert desired.references == (
        PolicyRef("managedPolicyRefs", "team-a", "logs"),
        PolicyRef("permissionsBoundaryRef", "platform", "boundary"),
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"managedPolicyRefs": [{"nam": "x"}]}, "spec.managedPolicyRefs[0]: must be {name"),
        ({"managedPolicyRefs": [{"name": "x"}, {"name": "x"}]}, "listed more than once"),
        ({"permissionsBoundary": B, "permissionsBoundaryRef": {"name": "b"}}, "not both"),
        ({"managedPolicies": [P], "managedPolicyRefs": [{"name": f"p{i}"} for i in range(10)]}, "11 policies"),
    ],
    ids=["no-name", "twice", "boundary-twice", "quota"],
)
def test_bad_references_are_spec_errors(spec: dict[str, object], fragment: str) -> None:
    with pytest.raises(SpecError) as refused:
        registry.parse(role_object("web", **spec))
    assert any(fragment in e for e in refused.value.errors)


def test_resolve_replaces_references_by_arns_or_says_what_is_missing() -> None:
    desired = registry.parse(role_object("web", managedPolicies=[P], managedPolicyRefs=[{"name": "logs"}],
                                         permissionsBoundaryRef={"name": "boundary"}))
    found = {"logs": "arn:aws:iam::123456789012:policy/logs", "boundary": B}
    resolved, missing = resolve(desired, lambda ref: (found[ref.name], ""))
    assert missing == [] and resolved.references == ()
    assert resolved.entity.managed_policies == {P, found["logs"]}  # type: ignore[attr-defined]
    assert resolved.entity.permissions_boundary == B  # type: ignore[attr-defined]
    same, missing = resolve(desired, lambda ref: ("", "is not Ready yet"))
    assert same is desired
    assert missing[0] == "spec.managedPolicyRefs: IAMPolicy team-a/logs is not Ready yet"


@pytest.mark.parametrize(("annotation", "namespace", "allowed"), [
    ("*", "team-a", True), ("team-a, team-b", "team-b", True), ("team-a", "team-b", False), ("", "team-a", False)])
def test_shared_with(annotation: str, namespace: str, allowed: bool) -> None:
    assert shared_with(annotation, namespace) is allowed


def boundary_policy(share: str | None) -> dict[str, object]:
    obj = manifest("IAMPolicy", "tenant-boundary", {"policyName": "tenant-boundary", "path": "/platform/", "document": LOGS_POLICY}, "platform")
    if share is not None:
        obj["metadata"]["annotations"] = {"iam.rolekeeper.dev/shared-with": share}  # type: ignore[index]
    return obj


def plan(tmp_path: Path, *objects: dict[str, object]) -> compute.Review:
    (tmp_path / "in.yaml").write_text(yaml.safe_dump_all(objects))
    world = compute.World(snapshot=AccountSnapshot(), account_id=ACCOUNT)
    return compute.compute(manifests.load([str(tmp_path / "in.yaml")]), world)


def test_plan_resolves_a_policy_of_the_same_input_to_its_future_arn(tmp_path: Path) -> None:
    review = plan(tmp_path, boundary_policy("*"), role_object("web", permissionsBoundaryRef={"namespace": "platform", "name": "tenant-boundary"}))
    created = {c.kind: c for c in review.changes}["IAMRole"]
    assert created.action == "create"
    assert created.calls[0].params["PermissionsBoundary"] == f"arn:aws:iam::{ACCOUNT}:policy/platform/tenant-boundary"


def test_plan_refuses_a_policy_not_shared_with_the_namespace(tmp_path: Path) -> None:
    review = plan(tmp_path, boundary_policy(None), role_object("web", permissionsBoundaryRef={"namespace": "platform", "name": "tenant-boundary"}))
    refused = {c.kind: c for c in review.changes}["IAMRole"]
    assert refused.action == "invalid" and "not shared with namespace team-a" in refused.message


def test_plan_says_when_a_referenced_policy_is_nowhere(tmp_path: Path) -> None:
    [change] = plan(tmp_path, role_object("web", managedPolicyRefs=[{"name": "ghost"}])).changes
    assert change.action == "invalid" and "IAMPolicy team-a/ghost is neither in the input" in change.message


def test_concurrent_checks_of_one_reference_look_it_up_once() -> None:
    known, lookups = KnownToExist(), []

    def slow_lookup() -> bool:
        lookups.append(1)
        time.sleep(0.05)  # a GetPolicy in flight while the others ask
        return True

    threads = [threading.Thread(target=known.check, args=(("policy", P), slow_lookup)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lookups) == 1


def test_a_missing_reference_is_asked_again_next_time() -> None:
    known, lookups = KnownToExist(), []
    assert not known.check(("group", "g"), lambda: lookups.append(1) or False)
    assert not known.check(("group", "g"), lambda: lookups.append(1) or False)
    assert len(lookups) == 2
