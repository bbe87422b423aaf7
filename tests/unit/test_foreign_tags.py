"""Tags others own (`spec.ignoreTags`, `--ignore-tags`): parsed, validated and honoured by every plan.

Covers:
- patterns: a key or a prefix ending in *, matched ignoring case; refused when empty, too long,
  with a * elsewhere, with characters IAM refuses, or able to match a rolekeeper.dev/ ownership
  key (`*`, `r*`, `rolekeeper.dev*`, `RoleKeeper.dev/owner`); ownership keys are never ignored
  even by a pattern built around the parser; aws: keys always are;
- the command-line form (comma-separated, repeatable, deduplicated) and its clean errors;
- parse: every kind with tags (IAMRole, IAMUser, IAMPolicy) takes spec.ignoreTags; the operator's
  patterns are added; a spec tag an ignore pattern names is InvalidSpec, saying which source;
- plans (role, user, policy, through the one `decide`): foreign tags an ignore pattern names
  cost no Tag/Untag call, whatever their value; a foreign tag not named is removed as before;
  a spec tag change next to ignored tags sets only the spec's key; the 50-tag quota counts the
  tags others own (InvalidSpec before any call) and makes room (untag first) when adding would
  pass it; observe-only reports no difference for ignored tags;
- `rolekeeper plan --ignore-tags` against a snapshot file: noop with the flag, an Untag without;
- `rolekeeper import --ignore-tags` leaves the tags others own out of spec.tags (the operator
  would refuse them), and the imported object plans as noop under the same patterns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import cli
from controller.core.actions import CLUSTER_TAG, OWNER_TAG, UID_TAG
from controller.core.errors import SpecError
from controller.core.foreigntags import ForeignTags, matches, parse_patterns, pattern_problem
from controller.engine.reconcile import Verb, decide
from controller.kinds import registry
from controller.kinds import snapshot as account
from controller.kinds.base import Desired
from controller.kinds.policy import Policy
from controller.kinds.role import Role
from controller.kinds.user import User
from controller.settings import DEFAULT_LIMITS, Limits
from tests.helpers import ACCOUNT, EC2_TRUST, LOGS_POLICY, manifest, role_object, user_object

OWNED = {OWNER_TAG: "team-a/web", UID_TAG: "uid-1", CLUSTER_TAG: "c1"}
ORG = {"org:team": "payments", "org:cost-center": "1234", "CostCenter": "42"}


# --- patterns ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", [
    "CostCenter", "org:*", "aws-cost-*", "kubernetes.io/cluster/*", "k" * 128, "k" * 128 + "*",
    "Équipe", "rolekeeper.dev", "rolekeeper.de", "rolekeeper.dev-x*", "a b",
])
def test_valid_patterns(pattern: str) -> None:
    assert pattern_problem(pattern) is None


@pytest.mark.parametrize(("pattern", "fragment"), [
    ("", "empty"),
    ("*", "ownership"),
    ("r*", "ownership"),
    ("rolekeeper*", "ownership"),
    ("rolekeeper.dev*", "ownership"),
    ("RoleKeeper.dev/*", "ownership"),
    ("rolekeeper.dev/owner", "ownership"),
    ("ROLEKEEPER.DEV/UID", "ownership"),
    ("rolekeeper.dev/ow*", "ownership"),
    ("org:*:x", "only at the end"),
    ("**", "only at the end"),
    ("a,b", "may only contain"),
    ("tab\there", "may only contain"),
    ("k" * 129, "longer than a tag key"),
    (7, "must be a string"),
])
def test_refused_patterns(pattern: Any, fragment: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(("pattern", "key", "hit"), [
    ("org:*", "org:team", True),
    ("org:*", "ORG:Team", True),
    ("org:*", "org:", True),
    ("org:*", "org", False),
    ("org:*", "xorg:team", False),
    ("CostCenter", "costcenter", True),
    ("CostCenter", "CostCenter2", False),
])
def test_matching_ignores_case_like_iam(pattern: str, key: str, hit: bool) -> None:
    assert matches(pattern, key) is hit


def test_ownership_keys_are_never_ignored_and_aws_keys_always_are() -> None:
    forged = ForeignTags(("*", "rolekeeper.dev/*"))  # built around the parser: still refused
    assert not any(forged.ignores(k) for k in OWNED)
    assert forged.ignores("anything")
    none = ForeignTags()
    assert none.ignores("aws:cloudformation:stack-name") and none.ignores("AWS:x")
    assert not none.ignores("team")
    assert none.ours({**OWNED, "aws:x": "1", "team": "a"}) == {**OWNED, "team": "a"}


def test_command_line_patterns() -> None:
    assert parse_patterns(["org:*, aws-cost-*", "CostCenter", "org:*"]) == (
        "org:*", "aws-cost-*", "CostCenter")
    assert parse_patterns([]) == ()
    with pytest.raises(ValueError, match=r"rolekeeper\.dev.*ownership") as error:
        parse_patterns(["org:*,rolekeeper.dev/*,a*b"])
    assert "only at the end" in str(error.value)


@pytest.mark.parametrize("value", ["rolekeeper.dev/*", "r*", "a*b"])
def test_a_bad_operator_pattern_is_a_clean_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plan", "--ignore-tags", value, "x.yaml"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--ignore-tags" in err and "Traceback" not in err


# --- parse ------------------------------------------------------------------------------------

def policy_object(name: str, **spec: Any) -> dict[str, Any]:
    return manifest("IAMPolicy", name, {"policyName": name, "document": LOGS_POLICY, **spec},
                    uid="uid-p", generation=1)


OBJECTS = {"IAMRole": role_object, "IAMUser": user_object, "IAMPolicy": policy_object}


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_every_kind_with_tags_takes_ignore_tags(kind: str) -> None:
    obj = OBJECTS[kind]("web", ignoreTags=["org:*", "CostCenter"], tags={"team": "a"})
    desired = registry.parse(obj, Limits(ignore_tags=("aws-cost-*",), tag_count=40))
    assert desired.foreign_tags == ForeignTags(("aws-cost-*", "org:*", "CostCenter"), quota=40)
    assert registry.parse(OBJECTS[kind]("web")).foreign_tags == ForeignTags()


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_a_spec_tag_an_ignore_pattern_names_is_invalid(kind: str) -> None:
    obj = OBJECTS[kind]("web", ignoreTags=["org:*"], tags={"ORG:team": "a", "CostCenter": "1"})
    with pytest.raises(SpecError) as error:
        registry.parse(obj, Limits(ignore_tags=("costcenter",)))
    assert error.value.errors == [
        "spec.tags.ORG:team: matches 'org:*' of spec.ignoreTags; a tag is either set by this spec "
        "or left to others: remove it from one of the two",
        "spec.tags.CostCenter: matches 'costcenter', a tag the operator leaves to others "
        "(rolekeeper run --ignore-tags); remove it from spec.tags",
    ]


@pytest.mark.parametrize(("value", "fragment"), [
    ("org:*", "spec.ignoreTags: must be a list"),
    (["rolekeeper.dev/*"], "spec.ignoreTags[0]: 'rolekeeper.dev/*' would match Rolekeeper's ownership"),
    (["org:*", "org:*"], "spec.ignoreTags[1]: 'org:*' is listed more than once"),
    ([f"k{i}" for i in range(51)], "spec.ignoreTags: 51 patterns exceeds the limit 50"),
    ([None], "spec.ignoreTags[0]: must be a string"),
])
def test_bad_ignore_tags_are_invalid_spec(value: Any, fragment: str) -> None:
    with pytest.raises(SpecError) as error:
        registry.parse(role_object("web", ignoreTags=value))
    assert any(fragment in e for e in error.value.errors), error.value.errors


# --- plans ------------------------------------------------------------------------------------

def desired_role(limits: Limits = DEFAULT_LIMITS, **spec: Any) -> Desired:
    obj = role_object("web", namespace="team-a", uid="uid-1", **spec)
    return registry.parse(obj, limits).in_cluster("c1")


def seen_role(tags: dict[str, str]) -> Role:
    return Role(name="web", assume_role_policy=EC2_TRUST, tags=tags,
                arn=f"arn:aws:iam::{ACCOUNT}:role/web", role_id="AROA1")


def calls(desired: Desired, observed: Any) -> list[tuple[str, dict[str, Any]]]:
    decision = decide(registry.of(desired), desired, observed)
    assert decision.allowed, decision.errors
    return [(c.api, dict(c.params)) for c in decision.calls]


def test_ignored_foreign_tags_cost_no_call() -> None:
    desired = desired_role(ignoreTags=["org:*", "CostCenter"], tags={"team": "a"})
    assert calls(desired, seen_role({**OWNED, "team": "a", **ORG})) == []
    # whatever value another principal gives them later
    changed = {"org:team": "other", "org:new": "x", "costcenter": "7"}
    assert calls(desired, seen_role({**OWNED, "team": "a", **changed})) == []


def test_the_operator_patterns_alone_are_enough() -> None:
    desired = desired_role(Limits(ignore_tags=("org:*", "CostCenter")), tags={"team": "a"})
    assert calls(desired, seen_role({**OWNED, "team": "a", **ORG})) == []


def test_a_foreign_tag_not_ignored_is_still_removed() -> None:
    desired = desired_role(ignoreTags=["org:*"], tags={"team": "a"})
    assert calls(desired, seen_role({**OWNED, "team": "a", **ORG})) == [
        ("UntagRole", {"RoleName": "web", "TagKeys": ["CostCenter"]})]
    without = desired_role(tags={"team": "a"})  # no pattern: every foreign tag goes, as before
    assert calls(without, seen_role({**OWNED, "team": "a", **ORG})) == [
        ("UntagRole", {"RoleName": "web", "TagKeys": ["CostCenter", "org:cost-center", "org:team"]})]


def test_a_spec_change_beside_ignored_tags_sets_only_the_spec() -> None:
    desired = desired_role(ignoreTags=["org:*"], tags={"team": "b", "tier": "web"})
    assert calls(desired, seen_role({**OWNED, "team": "a", "old": "x", "org:team": "p"})) == [
        ("TagRole", {"RoleName": "web", "Tags": [{"Key": "team", "Value": "b"},
                                                 {"Key": "tier", "Value": "web"}]}),
        ("UntagRole", {"RoleName": "web", "TagKeys": ["old"]}),
    ]


def test_observe_only_sees_no_difference_in_ignored_tags() -> None:
    desired = desired_role(ignoreTags=["org:*"], tags={"team": "a"}, managementPolicy="Observe")
    decision = decide(registry.of(desired), desired, seen_role({**OWNED, "team": "a", "org:x": "1"}))
    assert decision.verb is Verb.NOOP


def test_a_create_never_sends_an_ignored_key() -> None:
    desired = desired_role(Limits(ignore_tags=("org:*",)), tags={"team": "a"})
    [(api, params), *_] = calls(desired, None)
    assert api == "CreateRole"
    assert {t["Key"] for t in params["Tags"]} == {"team", *OWNED}


def test_the_quota_counts_the_tags_others_own() -> None:
    spec_tags = {f"k{i}": "v" for i in range(45)}  # + 3 ownership = 48 of 50
    desired = desired_role(ignoreTags=["org:*"], tags=spec_tags)
    assert calls(desired, seen_role({**OWNED, **spec_tags, "org:a": "1", "org:b": "2"})) == []
    more = desired_role(ignoreTags=["org:*"], tags={**spec_tags, "k45": "v"})  # 49 + 2 = 51
    decision = decide(registry.of(more), more, seen_role({**OWNED, **spec_tags, "org:a": "1", "org:b": "2"}))
    assert decision.verb is Verb.INVALID and decision.calls == ()
    assert decision.errors == (
        "spec.tags: this object's 49 tags (ownership tags included) and the 2 tags others own on "
        "IAM role 'web' (org:a, org:b) make 51, over IAM's limit of 50 tags: remove tags from "
        "spec.tags or from the entity",)


def test_untag_goes_first_when_adding_would_pass_the_quota() -> None:
    spec_tags = {f"k{i}": "v" for i in range(44)}
    have = {**OWNED, **spec_tags, "old": "x", "org:a": "1", "org:b": "2"}  # 50: full
    desired = desired_role(ignoreTags=["org:*"], tags={**spec_tags, "new": "y"})  # 48 + 2 = 50
    assert [api for api, _ in calls(desired, seen_role(have))] == ["UntagRole", "TagRole"]
    roomy = {k: v for k, v in have.items() if k != "org:b"}  # 49: tagging first fits
    assert [api for api, _ in calls(desired, seen_role(roomy))] == ["TagRole", "UntagRole"]


def test_users_honour_ignored_tags() -> None:
    desired = registry.parse(user_object("ci", uid="uid-u", tags={"team": "a"}, ignoreTags=["org:*"]),
                             Limits(ignore_tags=("CostCenter",))).in_cluster("c1")
    owned = {OWNER_TAG: "team-a/ci", UID_TAG: "uid-u", CLUSTER_TAG: "c1"}
    seen = User(name="ci", tags={**owned, "team": "a", **ORG, "stray": "1"},
                arn=f"arn:aws:iam::{ACCOUNT}:user/ci", user_id="AIDA1")
    assert calls(desired, seen) == [("UntagUser", {"UserName": "ci", "TagKeys": ["stray"]})]


def test_policies_honour_ignored_tags() -> None:
    desired = registry.parse(policy_object("logs", tags={"team": "a"}, ignoreTags=["org:*"]))
    desired = desired.in_cluster("c1")
    owned = {OWNER_TAG: "team-a/logs", UID_TAG: "uid-p", CLUSTER_TAG: "c1"}
    arn = f"arn:aws:iam::{ACCOUNT}:policy/logs"
    seen = Policy(name="logs", document=LOGS_POLICY, arn=arn, policy_id="ANPA1",
                  tags={**owned, "team": "b", "org:x": "1", "stray": "1"})
    assert calls(desired, seen) == [
        ("TagPolicy", {"PolicyArn": arn, "Tags": [{"Key": "team", "Value": "a"}]}),
        ("UntagPolicy", {"PolicyArn": arn, "TagKeys": ["stray"]}),
    ]


# --- rolekeeper plan --------------------------------------------------------------------------

def test_plan_honours_ignore_tags_like_the_operator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = seen_role({**OWNED, "team": "a", **ORG})
    snap = tmp_path / "account.json"
    snap.write_text(json.dumps(account.file_json(
        account.AccountSnapshot(entities={"IAMRole": {"web": seen}}), ACCOUNT)))
    objects = tmp_path / "roles.yaml"
    obj = role_object("web", tags={"team": "a"}, ignoreTags=["org:*"])
    del obj["metadata"]["uid"]
    objects.write_text(yaml.safe_dump(obj))
    args = ["plan", "--snapshot", str(snap), "--format", "json", "--detailed-exitcode", str(objects)]

    assert cli.main([*args, "--ignore-tags", "CostCenter"]) == 0
    [change] = json.loads(capsys.readouterr().out)["changes"]
    assert change["action"] == "noop"

    assert cli.main(args) == 2
    [change] = json.loads(capsys.readouterr().out)["changes"]
    assert [(c["api"], c["params"]["TagKeys"]) for c in change["calls"]] == [
        ("UntagRole", ["CostCenter"])]


# --- rolekeeper import ------------------------------------------------------------------------

def test_import_leaves_the_tags_others_own_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    org_only = Role(name="org-only", assume_role_policy=EC2_TRUST, tags={"org:team": "p"},
                    arn=f"arn:aws:iam::{ACCOUNT}:role/org-only", role_id="AROA2")
    snapshot = account.AccountSnapshot(entities={"IAMRole": {
        "web": seen_role({"team": "a", **ORG}), "org-only": org_only}})
    snap = tmp_path / "account.json"
    snap.write_text(json.dumps(account.file_json(snapshot, ACCOUNT)))
    assert cli.main(["import", "--snapshot", str(snap), "-n", "team-a",
                     "--ignore-tags", "org:*", "--ignore-tags", "CostCenter"]) == 0
    objects = {o["spec"]["roleName"]: o for o in yaml.safe_load_all(capsys.readouterr().out)}
    assert objects["web"]["spec"]["tags"] == {"team": "a"}
    assert "tags" not in objects["org-only"]["spec"]
    # ... and what was written plans as noop under the same patterns (the claim aside)
    obj = objects["web"]
    obj["spec"].pop("managementPolicy")
    obj["spec"].pop("adopt")
    obj["metadata"]["uid"] = "uid-1"
    limits = Limits(ignore_tags=("org:*", "CostCenter"))
    desired = registry.parse(obj, limits).in_cluster("c1")
    assert calls(desired, seen_role({**OWNED, "team": "a", **ORG})) == []
