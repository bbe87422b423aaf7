"""No disclosure by default in `rolekeeper plan` (issue 14): a pull request sees the current
settings only of the entities its objects own or a guardrail lets them adopt.

Covers, offline with `compute.compute` and an AccountSnapshot of one foreign role whose trust
holds an `sts:ExternalId` secret and whose inline policy names secret ARNs: a conflict (owned by
another object), a refusal (untagged), observe-only objects naming it (matching and not), and
an adoption no guardrail allows print none of its owner, tags, path, description, ARN, id,
documents or policy names, in text, Markdown or JSON; `--show-foreign` (World.show_foreign, and
the CLI flag with a snapshot file) brings today's detail back. Positive controls: the object that
owns the role, and an adoption a guardrail allows, do see what they replace (the check would
catch a leak).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import cli
from controller.core.actions import CLUSTER_TAG, OWNER_TAG, UID_TAG
from controller.kinds import snapshot as account
from controller.kinds.role import Role
from controller.kinds.snapshot import AccountSnapshot
from controller.review import compute, manifests, render
from tests.helpers import ACCOUNT, EC2_TRUST, manifest

EXTERNAL_ID = "xid-7f3a9c0e-secret"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/db-password-AbCdEf"
PRIVATE_POLICY = f"arn:aws:iam::{ACCOUNT}:policy/team-b-private-access"
PARTNER = "arn:aws:iam::999988887777:root"
PATH = "/team-b/hidden/"
NAME = "payments-db"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role{PATH}{NAME}"

TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": PARTNER}, "Action": "sts:AssumeRole",
    "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]}
INLINE = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": SECRET_ARN}]}
OTHER_OWNER = "team-b/payments"
TAGS = {"cost-centre": "cc-90210-payments"}

# Everything of the foreign role a stranger's plan must not print (the name is allowed).
SECRETS = (
    EXTERNAL_ID, SECRET_ARN, PRIVATE_POLICY, PARTNER, "999988887777", PATH, ROLE_ARN,
    "AROAFOREIGN0001", "read-the-vault", "the payments database role", OTHER_OWNER,
    "cc-90210-payments", "cluster-b-7",
)


def foreign_role(tags: dict[str, str]) -> Role:
    return Role(
        name=NAME, assume_role_policy=TRUST, path=PATH, description="the payments database role",
        managed_policies=frozenset({PRIVATE_POLICY}), inline_policies={"read-the-vault": INLINE},
        tags=tags, arn=ROLE_ARN, role_id="AROAFOREIGN0001",
    )


OWNED_BY_B = {**TAGS, OWNER_TAG: OTHER_OWNER, UID_TAG: "uid-b", CLUSTER_TAG: "cluster-b-7"}


def role(name: str, **spec: Any) -> dict[str, Any]:
    return manifest("IAMRole", name, {"roleName": NAME, "assumeRolePolicy": EC2_TRUST, **spec})


ALLOW_ADOPTING = {
    "apiVersion": "iam.rolekeeper.dev/v1alpha1", "kind": "IAMGuardrail",
    "metadata": {"name": "adopt-payments"},
    "spec": {"namespaceSelector": {}, "adoption": {"roles": {"names": [NAME]}}},
}

# (objects of the input, the role's tags, action, what --show-foreign shows that is withheld)
FOREIGN: dict[str, tuple[list[dict[str, Any]], dict[str, str], str, str]] = {
    "conflict": ([role("payments")], OWNED_BY_B, "conflict", OTHER_OWNER),
    "refused": ([role("payments")], TAGS, "refused", ""),
    "observe-owned-by-another": (
        [role("watch", path=PATH, managementPolicy="Observe")], OWNED_BY_B, "noop", "call(s)"),
    "observe-untagged": (
        [role("watch", path=PATH, managementPolicy="Observe")], TAGS, "noop", "call(s)"),
    "observe-wrong-path": (
        [role("watch", managementPolicy="Observe")], OWNED_BY_B, "invalid", PATH),
    "adopt-without-guardrail": ([role("grab", adopt=True)], TAGS, "denied", ""),
    "adopt-owned-by-another": (
        [ALLOW_ADOPTING, role("grab", adopt=True)], OWNED_BY_B, "conflict", OTHER_OWNER),
}


def plan(tmp_path: Path, objects: list[dict[str, Any]], tags: dict[str, str],
         show_foreign: bool = False) -> compute.Review:
    path = tmp_path / "pr.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    snapshot = AccountSnapshot(entities={"IAMRole": {NAME: foreign_role(tags)}})
    world = compute.World(snapshot=snapshot, account_id=ACCOUNT, show_foreign=show_foreign)
    return compute.compute(manifests.load([str(path)]), world, cluster_id="cluster-a")


def outputs(review: compute.Review) -> dict[str, str]:
    return {"text": render.text(review), "markdown": render.markdown(review),
            "json": render.json_text(review)}


def leaked(text: str) -> list[str]:
    # JSON escapes "/" nowhere, but be sure a secret is not hiding behind an escape.
    return [s for s in SECRETS if s in text or json.dumps(s)[1:-1] in text]


@pytest.mark.parametrize("case", FOREIGN)
def test_a_foreign_entity_is_named_and_nothing_more(tmp_path: Path, case: str) -> None:
    objects, tags, action, _ = FOREIGN[case]
    review = plan(tmp_path, objects, tags)
    [change] = review.changes
    assert change.action == action
    assert change.calls == () and change.diff == ()
    for fmt, out in outputs(review).items():
        assert leaked(out) == [], (fmt, out)
    assert NAME in outputs(review)["json"]  # it says which entity exists
    if action in ("conflict", "noop", "invalid"):
        assert "not managed by this object" in change.message
        assert "--show-foreign" in change.message
    assert review.exit_code(detailed=False) == (0 if action == "noop" else 1)


@pytest.mark.parametrize("case", [c for c, v in FOREIGN.items() if v[3]])
def test_show_foreign_restores_the_detail(tmp_path: Path, case: str) -> None:
    objects, tags, _, detail = FOREIGN[case]
    hidden = plan(tmp_path, objects, tags)
    shown = plan(tmp_path, objects, tags, show_foreign=True)
    [change] = shown.changes
    assert detail in change.message and detail not in hidden.changes[0].message
    assert "--show-foreign" not in change.message
    assert [c.action for c in shown.changes] == [c.action for c in hidden.changes]
    assert shown.exit_code(detailed=False) == hidden.exit_code(detailed=False)


def test_the_owner_sees_its_own_entity_in_full(tmp_path: Path) -> None:
    """Positive control: the object the owner tag names gets the diff, secret included."""
    mine = {**TAGS, OWNER_TAG: "team-a/payments", UID_TAG: "uid-a", CLUSTER_TAG: "cluster-a"}
    review = plan(tmp_path, [role("payments", path=PATH)], mine)
    [change] = review.changes
    assert change.action == "update"
    for fmt, out in outputs(review).items():
        assert EXTERNAL_ID in out and PRIVATE_POLICY in out and "read-the-vault" in out, fmt


def test_an_adoption_a_guardrail_allows_shows_what_it_replaces(tmp_path: Path) -> None:
    """By design: the guardrail made the entity the object's to take (docs/untrusted-input.md)."""
    review = plan(tmp_path, [ALLOW_ADOPTING, role("grab", adopt=True, path=PATH)], TAGS)
    [change] = review.changes
    assert change.action == "update" and "adopts" in change.message
    assert EXTERNAL_ID in render.text(review) and "cost-centre" in render.text(review)


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_the_cli_withholds_unless_show_foreign(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    snapshot = AccountSnapshot(entities={"IAMRole": {NAME: foreign_role(OWNED_BY_B)}})
    snap = tmp_path / "account.snap.json"
    snap.write_text(json.dumps(account.file_json(snapshot, ACCOUNT)))
    pr = tmp_path / "pr"
    pr.mkdir()
    (pr / "roles.yaml").write_text(yaml.safe_dump(role("payments")))
    args = ["plan", "--snapshot", str(snap), "--format", fmt, str(pr)]

    assert cli.main(args) == 1
    out, err = capsys.readouterr()
    assert leaked(out) == [] and leaked(err) == [], (out, err)

    assert cli.main([*args, "--show-foreign"]) == 1
    out, err = capsys.readouterr()
    assert OTHER_OWNER in out
