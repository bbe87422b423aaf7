"""`rolekeeper import` offline: manifests from a hand-built account snapshot.

Covers:
- the round trip: planning the imported manifests against the same snapshot makes no change
  but the claim `adopt: true` makes (one Tag* call of our ownership tags), and once claimed,
  none at all — over varied roles (service, OIDC, SAML, cross-account trusts; conditions;
  managed, inline and boundary policies; paths; tags; instance profiles) and users (groups,
  paths, boundaries), and over examples/ taken as the AWS state;
- the manifest a person would write: AWS defaults left out, canonical documents, sorted sets,
  aws: and rolekeeper.dev/ tags left out, instanceProfile only for a same-named profile, the
  examples' key order and YAML style (block, no aliases, double quotes only where needed);
- selection by name, glob, path prefix, tag and kind, and how they combine;
- object names: DNS-1123 labels, cut to 63 with a hash, unique and stable; owned entities
  skipped (another namespace) or written as their object (this namespace);
- the CLI from a snapshot file: output, notes, bad arguments.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import cli
from controller.core.actions import OWNER_TAG, UID_TAG
from controller.engine import references
from controller.kinds import registry
from controller.kinds import snapshot as account
from controller.kinds.base import Entity
from controller.kinds.role import Role
from controller.kinds.snapshot import AccountSnapshot
from controller.kinds.user import User
from controller.review import compute, importer, manifests
from tests.helpers import (
    ACCOUNT,
    BOUNDARY,
    DYNAMO_READ,
    S3_READ,
    adoption_guardrail,
    as_managed,
    only_claims,
    with_trust,
)

ROOT = Path(__file__).resolve().parents[2]
NS = "imported"
PROVIDER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
CUSTOMER = f"arn:aws:iam::{ACCOUNT}:policy/team/deploy-boundary"


def trust(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(**rest: Any) -> dict[str, Any]:
    return {"Effect": "Allow", **rest}


def role(name: str, trust_doc: dict[str, Any], path: str = "/", **rest: Any) -> Role:
    return Role(
        name=name, assume_role_policy=trust_doc, path=path,
        arn=f"arn:aws:iam::{ACCOUNT}:role{path}{name}", role_id=f"AROA{name.upper()[:12]}", **rest,
    )


def user(name: str, path: str = "/", **rest: Any) -> User:
    return User(name=name, path=path, arn=f"arn:aws:iam::{ACCOUNT}:user{path}{name}",
                user_id=f"AIDA{name.upper()[:12]}", **rest)


# Documents in the forms AWS returns them: lists where the writer used lists, root ARNs.
EC2 = trust(allow(Principal={"Service": "ec2.amazonaws.com"}, Action="sts:AssumeRole"))
LOGS = {"Version": "2012-10-17", "Statement": [allow(Action=["logs:PutLogEvents", "logs:CreateLogStream"], Resource=["*"])]}
VARIED: list[Entity] = [
    role("web-ec2", EC2, "/apps/", description="Web tier", max_session_duration=7200,
         managed_policies=frozenset({S3_READ, DYNAMO_READ}), instance_profiles=frozenset({"web-ec2"}),
         tags={"team": "a", "aws:cloudformation:stack-name": "web", "Cost Center": "42"}),
    role("Lambda_Thumbnailer.v2", trust(allow(Principal={"Service": ["lambda.amazonaws.com"]}, Action=["sts:AssumeRole"])),
         "/lambda/", permissions_boundary=BOUNDARY, inline_policies={"logs": LOGS, "read": {
             "Version": "2012-10-17", "Statement": [
                 {"Sid": "Read", "Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/t"},
                 {"Effect": "Deny", "NotAction": ["iam:*"], "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
             ]}}),
    role("uploader-irsa", trust(allow(
        Principal={"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}"},
        Action="sts:AssumeRoleWithWebIdentity",
        Condition={"StringEquals": {f"{PROVIDER}:sub": "system:serviceaccount:team-a:uploader", f"{PROVIDER}:aud": "sts.amazonaws.com"}},
    )), inline_policies={"put": {"Version": "2012-10-17", "Statement": [allow(Action=["s3:PutObject"], Resource="arn:aws:s3:::b/*")]}}),
    role("SSO-Admins", trust(allow(
        Principal={"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/Okta"},
        Action=["sts:AssumeRoleWithSAML", "sts:TagSession"],
        Condition={"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
    )), max_session_duration=43200, managed_policies=frozenset({"arn:aws:iam::aws:policy/AdministratorAccess"})),
    role("partner-audit", trust(allow(
        Principal={"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:role/auditor"]},
        Action="sts:AssumeRole",
        Condition={"StringEquals": {"sts:ExternalId": "x-7f3c"}, "Bool": {"aws:MultiFactorAuthPresent": "true"},
                   "NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}},
    ), allow(Principal={"Service": "ec2.amazonaws.com"}, Action="sts:AssumeRole")),
         "/partners/", description="Read-only for the audit partner\n(ticket SEC-1)",
         managed_policies=frozenset({"arn:aws:iam::aws:policy/ReadOnlyAccess"}), permissions_boundary=CUSTOMER,
         tags={"partner": "audit", "rolekeeper.dev/uid": "left-over"}),
    # In a profile of another name only: the spec cannot say that, and a plan leaves it alone.
    role("batch", EC2, instance_profiles=frozenset({"batch-profile"})),
    user("ci-deployer", "/ci/", groups=frozenset({"deployers", "artifacts"}), managed_policies=frozenset({S3_READ}),
         inline_policies={"logs": LOGS}, tags={"team": "a"}),
    user("Alice.Smith@example.com", "/people/", permissions_boundary=CUSTOMER, groups=frozenset({"admins"})),
    user("bare"),
]


def snapshot_of(entities: list[Entity], kinds: list[str] | None = None) -> AccountSnapshot:
    """A snapshot holding `entities` (roles and users; give `kinds` for anything else)."""
    table: dict[str, dict[str, Entity]] = {name: {} for name in registry.KIND_NAMES}
    for i, entity in enumerate(entities):
        kind = kinds[i] if kinds else "IAMRole" if isinstance(entity, Role) else "IAMUser"
        table[kind][entity.name] = entity
    return AccountSnapshot(entities=table)


def plan(text: str, snapshot: AccountSnapshot, tmp_path: Path) -> compute.Review:
    """The plan of the imported objects, with the guardrail that allows their adoption."""
    path = tmp_path / "imported.yaml"
    path.write_text(as_managed(text) + "---\n" + yaml.safe_dump(adoption_guardrail(text)))
    found = manifests.load([str(path)])
    assert not found.problems
    return compute.compute(found, compute.World(snapshot=snapshot))


def claimed(snapshot: AccountSnapshot, review: compute.Review) -> AccountSnapshot:
    """The account once each object's claim ran: its entity carries the tags the claim sets."""
    entities = {kind: dict(table) for kind, table in snapshot.entities.items()}
    for change in review.changes:
        entity = entities[change.kind][change.aws_name]
        tags = {**entity.tags, **{t["Key"]: t["Value"] for c in change.calls for t in c.params["Tags"]}}
        entities[change.kind][change.aws_name] = dataclasses.replace(entity, tags=tags)
    return AccountSnapshot(entities=entities)


def assert_round_trip(snapshot: AccountSnapshot, result: importer.Result, tmp_path: Path) -> None:
    # As imported (managementPolicy: Observe): no change at all for any entity.
    (tmp_path / "observed.yaml").write_text(result.yaml())
    observed = compute.compute(manifests.load([str(tmp_path / "observed.yaml")]),
                               compute.World(snapshot=snapshot))
    assert [(c.name, c.action, c.calls) for c in observed.changes] == [
        (o.name, "noop", ()) for o in result.objects]
    # The only thing Manage would change is the ownership claim (the spec matches AWS).
    claim_only = "these 1 call(s) would be made:\n  - Set tags rolekeeper.dev/cluster, rolekeeper.dev/owner, rolekeeper.dev/uid"
    assert all(claim_only in c.message for c in observed.changes), [c.message for c in observed.changes]
    # Flipped to Manage: adopt: true claims each entity (its only call), then nothing differs.
    review = plan(result.yaml(), snapshot, tmp_path)
    assert len(review.changes) == len(result.objects)
    for change in review.changes:
        # adopt: true claims the entity (its only call); nothing else differs.
        assert change.action == "update" and only_claims(change.calls), (change.name, change.calls, change.message)
    after = plan(result.yaml(), claimed(snapshot, review), tmp_path)
    assert [(c.name, c.action) for c in after.changes] == [(c.name, "noop") for c in review.changes]


# --- the round trip ---------------------------------------------------------------------------


def test_varied_entities_round_trip(tmp_path: Path) -> None:
    snapshot = snapshot_of(VARIED)
    result = importer.run(snapshot, importer.Selector(), NS)
    assert len(result.objects) == len(VARIED) == 9
    assert result.notes == ()
    assert_round_trip(snapshot, result, tmp_path)


def examples() -> list[dict[str, Any]]:
    return [d for f in sorted((ROOT / "examples").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
            if d["kind"] in registry.KINDS]


def test_examples_round_trip(tmp_path: Path) -> None:
    """examples/ taken as what AWS holds (each spec as AWS stores it), imported, planned."""
    observed, arns = [], {}
    for obj in sorted(examples(), key=lambda o: o["kind"] != registry.REFERENCED.name):
        desired, missing = references.resolve(
            with_trust(registry.parse(obj)), lambda ref: (arns[(ref.namespace, ref.name)], "")
        )
        assert not missing
        entity = desired.entity
        arn = f"arn:aws:iam::{ACCOUNT}:{registry.get(obj['kind']).noun}{entity.path}{entity.name}"
        arns[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = arn
        observed.append((obj["kind"], dataclasses.replace(entity, arn=arn)))
    snapshot = snapshot_of([e for _, e in observed], [k for k, _ in observed])
    result = importer.run(snapshot, importer.Selector(), "team-a")
    assert len(result.objects) == len(examples()) == 6
    assert_round_trip(snapshot, result, tmp_path)
    # The same fields the example wrote, in the same order (tags sorted; documents canonical);
    # a reference comes back as the ARN it resolved to (AWS does not know the object).
    by_aws = {o.aws_name: o.obj for o in result.objects}
    for obj in examples():
        kind = registry.get(obj["kind"])
        imported = by_aws[obj["spec"][kind.name_field]]
        written = [k.removesuffix("Ref") if k == "permissionsBoundaryRef" else k for k in obj["spec"]
                   if k != "accessKey"]  # keys are the operator's business, not the user's shape
        # The trust generated for spec.serviceAccounts comes back as the document AWS holds.
        written = ["assumeRolePolicy" if k == "serviceAccounts" else k for k in written]
        assert [k for k in imported["spec"] if k not in ("managementPolicy", "adopt")] == written
        assert imported["spec"].get("tags") == (dict(sorted(obj["spec"]["tags"].items())) if "tags" in obj["spec"] else None)


def test_owned_in_this_namespace_is_written_as_its_object_and_plans_noop(tmp_path: Path) -> None:
    # Tagged as a claim by IAMRole imported/web tags it (whatever ownership tags the claim sets).
    untagged = snapshot_of([VARIED[0]])
    first = plan(importer.run(untagged, importer.Selector(), NS).yaml(), untagged, tmp_path)
    owned = claimed(untagged, first).entities["IAMRole"]["web-ec2"]
    snapshot = snapshot_of([dataclasses.replace(owned, tags={**owned.tags, OWNER_TAG: f"{NS}/web"})])
    result = importer.run(snapshot, importer.Selector(), NS)
    (imported,) = result.objects
    assert imported.name == "web" and "adopt" not in imported.obj["spec"]
    assert result.notes == (f"IAM role web-ec2: already managed by IAMRole {NS}/web: written as that object (no adoption needed)",)
    assert [c.action for c in plan(result.yaml(), snapshot, tmp_path).changes] == ["noop"]


def test_owned_by_another_namespace_is_skipped_with_a_note() -> None:
    owned = dataclasses.replace(VARIED[0], tags={OWNER_TAG: "team-b/web", UID_TAG: "u1"})
    result = importer.run(snapshot_of([owned, VARIED[-1]]), importer.Selector(), NS)
    assert [o.aws_name for o in result.objects] == ["bare"]
    assert result.notes == ("skipped IAM role web-ec2: already managed by IAMRole team-b/web (rolekeeper.dev/owner tag)",)


# --- the manifest -------------------------------------------------------------------------------


def test_yaml_is_written_as_the_examples_are() -> None:
    shared = {"Version": "2012-10-17", "Statement": [allow(Principal={"Service": ["ec2.amazonaws.com"]}, Action=["sts:AssumeRole"])]}
    # Two roles sharing one document object: PyYAML would write an anchor and an alias.
    twins = [role("twin-a", shared, tags={"Cost Center": "42", "true": "yes"}), role("twin-b", shared)]
    text = importer.run(snapshot_of([*twins, VARIED[1]]), importer.Selector(names=("twin-a", "twin-b")), NS).yaml()
    assert text == f"""\
# IAM role arn:aws:iam::{ACCOUNT}:role/twin-a
apiVersion: iam.rolekeeper.dev/v1alpha1
kind: IAMRole
metadata:
  name: twin-a
  namespace: {NS}
spec:
  roleName: twin-a
  assumeRolePolicy:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Principal:
          Service: ec2.amazonaws.com
        Action: sts:AssumeRole
  tags:
    Cost Center: "42"
    "true": "yes"
  managementPolicy: Observe
  adopt: true
---
# IAM role arn:aws:iam::{ACCOUNT}:role/twin-b
apiVersion: iam.rolekeeper.dev/v1alpha1
kind: IAMRole
metadata:
  name: twin-b
  namespace: {NS}
spec:
  roleName: twin-b
  assumeRolePolicy:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Principal:
          Service: ec2.amazonaws.com
        Action: sts:AssumeRole
  managementPolicy: Observe
  adopt: true
"""
    assert next(iter(yaml.safe_load_all(text)))["spec"]["tags"] == {"Cost Center": "42", "true": "yes"}


def test_every_field_in_order_defaults_left_out() -> None:
    objects = {o.aws_name: o.obj for o in importer.run(snapshot_of(VARIED), importer.Selector(), NS).objects}
    partner = objects["partner-audit"]["spec"]
    assert list(partner) == ["roleName", "path", "description", "assumeRolePolicy",  # 3600 s left out
                             "permissionsBoundary", "managedPolicies", "tags", "managementPolicy", "adopt"]
    assert objects["SSO-Admins"]["spec"]["maxSessionDuration"] == 43200
    assert partner["tags"] == {"partner": "audit"}  # rolekeeper.dev/uid left out
    assert objects["web-ec2"]["spec"]["tags"] == {"Cost Center": "42", "team": "a"}  # aws: left out
    assert objects["web-ec2"]["spec"]["managedPolicies"] == sorted([S3_READ, DYNAMO_READ])
    assert objects["web-ec2"]["spec"]["instanceProfile"] is True
    lam = objects["Lambda_Thumbnailer.v2"]["spec"]
    assert list(lam) == ["roleName", "path", "assumeRolePolicy", "permissionsBoundary", "inlinePolicies",
                         "managementPolicy", "adopt"]
    # Canonical: one-element lists as strings, statements in a stable order.
    assert lam["assumeRolePolicy"]["Statement"] == [allow(Principal={"Service": "lambda.amazonaws.com"}, Action="sts:AssumeRole")]
    assert lam["inlinePolicies"]["logs"]["Statement"][0]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert lam["inlinePolicies"]["logs"]["Statement"][0]["Resource"] == "*"
    batch = objects["batch"]["spec"]
    assert list(batch) == ["roleName", "assumeRolePolicy", "managementPolicy", "adopt"]  # path /, 3600, no profile
    assert list(objects["ci-deployer"]["spec"]) == ["userName", "path", "groups", "managedPolicies", "inlinePolicies",
                                                    "tags", "managementPolicy", "adopt"]
    assert objects["ci-deployer"]["spec"]["groups"] == ["artifacts", "deployers"]
    assert objects["bare"]["spec"] == {"userName": "bare", "managementPolicy": "Observe", "adopt": True}
    assert objects["SSO-Admins"]["metadata"] == {"name": "sso-admins", "namespace": NS}


# --- selection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("selector", "expected"), [
    (importer.Selector(), [e.name for e in VARIED if isinstance(e, Role)] + ["Alice.Smith@example.com", "bare", "ci-deployer"]),
    (importer.Selector(names=("batch", "bare", "nope")), ["batch", "bare"]),
    (importer.Selector(patterns=("*-ec2", "SSO-*")), ["SSO-Admins", "web-ec2"]),
    (importer.Selector(patterns=("sso-*",)), []),  # globs are case-sensitive, as IAM names are kept
    (importer.Selector(names=("bare",), patterns=("web-*",)), ["web-ec2", "bare"]),
    (importer.Selector(path_prefix="/p"), ["partner-audit", "Alice.Smith@example.com"]),
    (importer.Selector(tags=(("team", "a"),)), ["web-ec2", "ci-deployer"]),
    (importer.Selector(tags=(("TEAM", "a"), ("cost center", None))), ["web-ec2"]),  # keys ignore case
    (importer.Selector(tags=(("team", "b"),)), []),
    (importer.Selector(kinds=("IAMUser",), path_prefix="/ci/"), ["ci-deployer"]),
    (importer.Selector(patterns=("*",), kinds=("IAMRole",), path_prefix="/apps/"), ["web-ec2"]),
])
def test_selection(selector: importer.Selector, expected: list[str]) -> None:
    result = importer.run(snapshot_of(VARIED), selector, NS)
    roles = sorted(e.name for e in VARIED if isinstance(e, Role))
    want = sorted(n for n in expected if n in roles) + sorted(n for n in expected if n not in roles)
    assert [o.aws_name for o in result.objects] == want
    assert (result.notes == ("no entity matched the selection: nothing written",)) == (not expected)


def test_bad_selection_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind IAMGroup: expected IAMRole"):
        importer.Selector(kinds=("IAMGroup",))
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        importer.parse_tag("=v")
    assert importer.parse_tag("k=v=w") == ("k", "v=w")
    assert importer.parse_tag("k=") == ("k", "")
    assert importer.parse_tag("k") == ("k", None)
    with pytest.raises(ValueError, match="not a Kubernetes namespace name"):
        importer.run(snapshot_of([]), importer.Selector(), "Team_A")


# --- object names -------------------------------------------------------------------------------


def names(*aws_names: str, kind: str = "IAMUser") -> dict[str, str]:
    entities = [user(n) if kind == "IAMUser" else role(n, EC2) for n in aws_names]
    return {o.aws_name: o.name for o in importer.run(snapshot_of(entities), importer.Selector(), NS).objects}


def test_object_names_are_dns_labels_unique_and_stable() -> None:
    long = "A" * 30 + "_" + "b" * 33  # 64 characters, IAM's maximum
    found = names("web", "My_Role.v2", "a--b", "Alice.Smith@example.com", "+=,.@_-", long,
                  "my-role", "my_role", "my.role", "X_Y", "x.y")
    for aws_name, name in found.items():
        assert importer.LABEL.fullmatch(name) and len(name) <= 63, (aws_name, name)
    assert len(set(found.values())) == len(found)
    assert found["web"] == "web" and found["a--b"] == "a--b" and found["my-role"] == "my-role"
    assert found["My_Role.v2"] == "my-role-v2"
    assert found["Alice.Smith@example.com"] == "alice-smith-example-com"
    assert found["my_role"].startswith("my-role-") and found["my.role"].startswith("my-role-")
    assert found["X_Y"].startswith("x-y-") and found["x.y"].startswith("x-y-")
    assert len(found[long]) == 63 and found[long].startswith("a" * 30 + "-bbb")
    assert len(found["+=,.@_-"]) == 8  # nothing left of the name but its hash
    # The same names whatever else is imported alongside (as long as it does not collide).
    assert names("My_Role.v2", long, "my_role", "my.role") == {k: found[k] for k in ("My_Role.v2", long, "my_role", "my.role")}
    # Per kind: a role and a user may share a name.
    assert names("web", kind="IAMRole") == {"web": "web"}


# --- the command --------------------------------------------------------------------------------


def test_cli_from_a_snapshot_file(tmp_path: Path, capsys: Any) -> None:
    owned = dataclasses.replace(VARIED[5], name="other", tags={OWNER_TAG: "team-b/other", UID_TAG: "u"})
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(account.file_json(snapshot_of([*VARIED, owned]), ACCOUNT, "aws", "2025-01-01T00:00:00+00:00")))
    out = tmp_path / "out.yaml"
    code = cli.main(["import", "--snapshot", str(path), "-n", NS, "--kind", "IAMRole", "--tag", "team=a",
                     "--name-pattern", "*", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"reading the snapshot {path} (account {ACCOUNT}, taken 2025-01-01T00:00:00+00:00)" in err
    assert "wrote 1 object(s)" in err
    assert [d["spec"]["roleName"] for d in yaml.safe_load_all(out.read_text())] == ["web-ec2"]
    assert cli.main(["import", "--snapshot", str(path), "--namespace", NS, "--name", "other", "--name", "bare"]) == 0
    printed = capsys.readouterr()
    assert "skipped IAM role other: already managed by IAMRole team-b/other" in printed.err
    assert [d["spec"].get("userName") for d in yaml.safe_load_all(printed.out)] == ["bare"]


@pytest.mark.parametrize(("args", "message"), [
    (["--kind", "IAMGroup"], "unknown kind IAMGroup"),
    (["--tag", "=x"], "expected KEY=VALUE or KEY"),
    (["--namespace", "Bad_NS"], "not a Kubernetes namespace name"),
])
def test_cli_refuses_bad_arguments(tmp_path: Path, capsys: Any, args: list[str], message: str) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(account.file_json(snapshot_of(VARIED))))
    assert cli.main(["import", "--snapshot", str(path), "-n", NS, *args]) == 1
    assert message in capsys.readouterr().err
