"""Guardrails in `rolekeeper plan`, offline: the same judgement the operator makes, per change.

Covers: a denied object is `denied` with the guardrail and rule named (exit 1) and no calls;
guardrails come from the input or from --guardrails, selected by the input's Namespace labels;
adoption is refused unless a guardrail allows that name (and then planned); warn enforcement
plans the calls and says why in the message; an unreadable guardrail is an input problem; the
cluster id fills the ownership tag of a create; `rolekeeper aws-policy` prints a valid policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import cli
from controller.core import policy
from controller.core.actions import CLUSTER_TAG, OWNER_TAG, UID_TAG
from controller.kinds.role import Role
from controller.kinds.snapshot import AccountSnapshot
from controller.review import compute, manifests
from tests.helpers import ACCOUNT, EC2_TRUST, manifest

TENANT_NS = {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "team-a", "labels": {"rolekeeper.dev/tenant": "true"}}}


def guardrail(enforcement: str = "deny", **spec: Any) -> dict[str, Any]:
    body = {"namespaceSelector": {"matchLabels": {"rolekeeper.dev/tenant": "true"}},
            "enforcement": enforcement, **spec}
    return {"apiVersion": "iam.rolekeeper.dev/v1alpha1", "kind": "IAMGuardrail",
            "metadata": {"name": "tenants"}, "spec": body}


def role(name: str, **spec: Any) -> dict[str, Any]:
    return manifest("IAMRole", name, {"roleName": f"team-a.{name}", "assumeRolePolicy": EC2_TRUST, **spec})


WILDCARD_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}]}


def plan(tmp_path: Path, *objects: dict[str, Any], snapshot: AccountSnapshot | None = None,
         guardrails: list[dict[str, Any]] | None = None, cluster_id: str = "") -> compute.Review:
    path = tmp_path / "in.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    found = manifests.load([str(path)])
    if guardrails is not None:
        extra = tmp_path / "guardrails.yaml"
        extra.write_text(yaml.safe_dump_all(guardrails))
        cli._add_guardrails(found, [str(extra)])
    world = compute.World(snapshot=snapshot or AccountSnapshot(), account_id=ACCOUNT)
    return compute.compute(found, world, cluster_id=cluster_id)


def test_a_denied_object_names_the_guardrail_and_rule_and_makes_no_call(tmp_path: Path) -> None:
    review = plan(tmp_path, TENANT_NS, guardrail(roles={"trust": {"services": ["ec2.amazonaws.com"]}}),
                  role("web", assumeRolePolicy=WILDCARD_TRUST))
    [change] = review.changes
    assert change.action == "denied" and change.calls == ()
    assert "IAMGuardrail 'tenants'" in change.message and "roles.trust" in change.message
    assert review.exit_code(detailed=False) == 1


def test_guardrails_may_come_from_the_cluster_side(tmp_path: Path) -> None:
    review = plan(tmp_path, role("web", managedPolicies=["arn:aws:iam::aws:policy/AdministratorAccess"]),
                  guardrails=[TENANT_NS, guardrail(managedPolicies={"denied": ["arn:aws:iam::aws:policy/AdministratorAccess"]})])
    assert [c.action for c in review.changes] == ["denied"]


def test_a_guardrail_selects_by_namespace_labels(tmp_path: Path) -> None:
    unlabelled = {**TENANT_NS, "metadata": {"name": "team-a"}}
    review = plan(tmp_path, unlabelled, guardrail(roles={"trust": {"services": ["ec2.amazonaws.com"]}}),
                  role("web", assumeRolePolicy=WILDCARD_TRUST))
    assert [c.action for c in review.changes] == ["create"]


def existing(name: str) -> AccountSnapshot:
    found = Role(name=name, assume_role_policy=EC2_TRUST, arn=f"arn:aws:iam::{ACCOUNT}:role/{name}", role_id="AROAX")
    return AccountSnapshot(entities={"IAMRole": {name: found}})


def test_adoption_is_refused_unless_a_guardrail_allows_it(tmp_path: Path) -> None:
    review = plan(tmp_path, role("legacy", adopt=True), snapshot=existing("team-a.legacy"))
    [change] = review.changes
    assert change.action == "denied" and "adoption" in change.message


def test_adoption_allowed_by_a_guardrail_is_planned(tmp_path: Path) -> None:
    allow = guardrail(adoption={"roles": {"names": ["{namespace}.legacy"]}})
    review = plan(tmp_path, TENANT_NS, allow, role("legacy", adopt=True), snapshot=existing("team-a.legacy"))
    [change] = review.changes
    assert change.action == "update" and change.calls[0].api == "TagRole"


def test_warn_enforcement_plans_the_calls_and_says_why(tmp_path: Path) -> None:
    review = plan(tmp_path, TENANT_NS, guardrail("warn", roles={"maxSessionDuration": 3600}),
                  role("web", maxSessionDuration=7200))
    [change] = review.changes
    assert change.action == "create" and change.calls
    assert "guardrail warning" in change.message and "maxSessionDuration" in change.message


def test_an_unreadable_guardrail_is_an_input_problem(tmp_path: Path) -> None:
    broken = guardrail(roles={"nonsense": True})
    review = plan(tmp_path, TENANT_NS, broken, role("web"))
    assert any("IAMGuardrail" in str(p) for p in review.problems)
    assert review.exit_code(detailed=False) == 1


@pytest.mark.parametrize(("cluster_id", "expected"), [("c-1", "c-1"), ("", "<cluster-id>")])
def test_a_create_carries_the_cluster_tag(tmp_path: Path, cluster_id: str, expected: str) -> None:
    [change] = plan(tmp_path, role("web"), cluster_id=cluster_id).changes
    tags = {t["Key"]: t["Value"] for t in change.calls[0].params["Tags"]}
    assert tags[CLUSTER_TAG] == expected and tags[OWNER_TAG] == "team-a/web"


def test_an_owned_role_of_another_cluster_is_a_conflict(tmp_path: Path) -> None:
    theirs = Role(name="team-a.web", assume_role_policy=EC2_TRUST, arn=f"arn:aws:iam::{ACCOUNT}:role/team-a.web",
                  tags={OWNER_TAG: "team-a/web", UID_TAG: "u", CLUSTER_TAG: "other"})
    review = plan(tmp_path, role("web"), snapshot=AccountSnapshot(entities={"IAMRole": {"team-a.web": theirs}}),
                  cluster_id="mine")
    [change] = review.changes
    assert change.action == "conflict" and "another cluster" in change.message


def test_aws_policy_command_prints_a_valid_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(guardrail(permissionsBoundary={"required": ["arn:aws:iam::*:policy/tenant-boundary"]})))
    assert cli.main(["aws-policy", "--guardrails", str(path), "--account-id", ACCOUNT]) == 0
    document = json.loads(capsys.readouterr().out)
    assert policy.validate(document, "identity", "policy") == []
    assert "iam:PermissionsBoundary" in json.dumps(document)


def test_observe_only_is_not_judged_on_adoption(tmp_path: Path) -> None:
    # Observe writes nothing, so `adopt: true` (kept for the later flip) needs no guardrail yet.
    review = plan(tmp_path, role("legacy", adopt=True, managementPolicy="Observe"),
                  snapshot=existing("team-a.legacy"))
    [change] = review.changes
    assert change.action == "noop" and change.calls == ()
    flipped = plan(tmp_path, role("legacy", adopt=True), snapshot=existing("team-a.legacy"))
    assert [c.action for c in flipped.changes] == ["denied"]
