"""`rolekeeper import` against moto servers: the round trip over real IAM answers.

Covers:
- a varied account made with boto3 as a person would (service, OIDC, SAML and cross-account
  trusts with conditions, JSON booleans and numbers; AWS and customer managed policies; inline
  policies; AWS and customer boundaries; paths; tags; a same-named and an other-named instance
  profile; users in groups; names that are not DNS labels; an entity another object owns):
  `rolekeeper import` (the CLI, live) equals the import of a snapshot; planning the output
  (snapshot + live reads, and live reads alone) claims each entity and changes nothing else; the
  operator's reconcile of each object then writes exactly that claim; afterwards the plan is
  noop for every object, and a second import writes the same objects without `adopt`;
- examples/ reconciled into a fresh account: imported back (owned: written as the example's own
  objects) plans noop; released (deletionPolicy: Retain's untag) and imported, plans the claim
  only, then noop.
spec.managementPolicy is stripped before planning until observe-only mode lands
(`tests.helpers.as_managed`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from controller import cli
from controller.aws import clients as aws
from controller.aws.clients import Clients
from controller.core.actions import RESERVED_TAG_PREFIX
from controller.core.guardrails import parse_guardrail
from controller.engine import references
from controller.engine.gate import Gate
from controller.engine.reconcile import reconcile
from controller.kinds import registry
from controller.kinds import snapshot as account
from controller.review import compute, importer, manifests
from tests.harness import moto
from tests.helpers import (
    BOUNDARY,
    DYNAMO_READ,
    S3_READ,
    adoption_guardrail,
    as_managed,
    only_claims,
    with_trust,
)

pytestmark = pytest.mark.aws

ROOT = Path(__file__).resolve().parents[2]
NS = "imported"
CLUSTER = "cluster-under-test"  # the operator's cluster identity (rolekeeper.dev/cluster)


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def build_account(iam: Any, p: str) -> set[str]:
    """A varied set of entities named `p-...`, made as by hand; returns the AWS names of the
    roles and users an import should write (the one another object owns is not among them)."""
    host = f"oidc.eks.eu-west-1.amazonaws.com/id/{p.upper().replace('-', '')}"
    oidc = iam.create_open_id_connect_provider(
        Url=f"https://{host}", ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
    )["OpenIDConnectProviderArn"]
    saml = iam.create_saml_provider(Name=f"{p}-okta", SAMLMetadataDocument="<EntityDescriptor>" + "x" * 1000 + "</EntityDescriptor>")["SAMLProviderArn"]
    # Named outside the `p-*` pattern: IAMPolicy's import is that kind's own work.
    customer = iam.create_policy(PolicyName=f"boundary-{p}", Path="/boundaries/", PolicyDocument=doc(
        {"Effect": "Allow", "Action": ["s3:*", "logs:*"], "Resource": "*"}))["Policy"]["Arn"]
    for group in ("deployers", "artifacts"):
        iam.create_group(GroupName=f"{p}-{group}")
    ec2 = doc({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})

    web = f"{p}-web-ec2"
    iam.create_role(RoleName=web, Path="/apps/", Description="Web tier EC2 instances", MaxSessionDuration=7200,
                    AssumeRolePolicyDocument=ec2, Tags=[{"Key": "team", "Value": "a"}, {"Key": "Cost Center", "Value": "42"}])
    for arn in (S3_READ, DYNAMO_READ, customer):
        iam.attach_role_policy(RoleName=web, PolicyArn=arn)
    iam.create_instance_profile(InstanceProfileName=web, Path="/apps/")
    iam.add_role_to_instance_profile(InstanceProfileName=web, RoleName=web)

    irsa = f"{p}-Uploader_IRSA"
    iam.create_role(RoleName=irsa, AssumeRolePolicyDocument=doc({
        "Effect": "Allow", "Principal": {"Federated": oidc}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:aud": "sts.amazonaws.com"},
                      "StringLike": {f"{host}:sub": ["system:serviceaccount:team-a:uploader-*", "system:serviceaccount:team-a:web"]}},
    }))
    iam.put_role_policy(RoleName=irsa, PolicyName="put-uploads", PolicyDocument=doc(
        {"Sid": "PutUploads", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"], "Resource": ["arn:aws:s3:::uploads/incoming/*"]}))

    sso = f"{p}-SSO.Admins"
    iam.create_role(RoleName=sso, MaxSessionDuration=43200, AssumeRolePolicyDocument=doc({
        "Effect": "Allow", "Principal": {"Federated": saml}, "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
        "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}},
    }))
    iam.attach_role_policy(RoleName=sso, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")

    partner = f"{p}-partner-audit"
    iam.create_role(RoleName=partner, Path="/partners/", Description="Read-only for the audit partner\n(ticket SEC-1)",
                    PermissionsBoundary=customer, Tags=[{"Key": "partner", "Value": "audit"}], AssumeRolePolicyDocument=doc(
        {"Effect": "Allow", "Principal": {"AWS": ["111122223333", "arn:aws:iam::444455556666:role/auditor"]}, "Action": "sts:AssumeRole",
         # JSON true and 3600: IAM compares them as strings; so must the import's YAML.
         "Condition": {"StringEquals": {"sts:ExternalId": "audit-7f3c"}, "Bool": {"aws:MultiFactorAuthPresent": True},
                       "NumericLessThan": {"aws:MultiFactorAuthAge": 3600}}},
        {"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com"]}, "Action": ["sts:AssumeRole"]},
    ))
    iam.attach_role_policy(RoleName=partner, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")

    lam = f"{p}-thumbnailer"
    iam.create_role(RoleName=lam, Path="/lambda/", PermissionsBoundary=BOUNDARY, AssumeRolePolicyDocument=doc(
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}))
    iam.put_role_policy(RoleName=lam, PolicyName="write-logs", PolicyDocument=doc(
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}))
    iam.put_role_policy(RoleName=lam, PolicyName="deny-insecure", PolicyDocument=doc(
        {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}))

    batch = f"{p}-batch"  # in a profile of another name only: the spec cannot say so, and must not touch it
    iam.create_role(RoleName=batch, AssumeRolePolicyDocument=ec2)
    iam.create_instance_profile(InstanceProfileName=f"{p}-batch-profile")
    iam.add_role_to_instance_profile(InstanceProfileName=f"{p}-batch-profile", RoleName=batch)

    iam.create_role(RoleName=f"{p}-owned", AssumeRolePolicyDocument=ec2,
                    Tags=[{"Key": "rolekeeper.dev/owner", "Value": "elsewhere/owned"}, {"Key": "rolekeeper.dev/uid", "Value": "u"}])

    ci = f"{p}-ci-deployer"
    iam.create_user(UserName=ci, Path="/ci/", Tags=[{"Key": "team", "Value": "a"}, {"Key": "purpose", "Value": "ci"}])
    for group in ("deployers", "artifacts"):
        iam.add_user_to_group(GroupName=f"{p}-{group}", UserName=ci)
    iam.attach_user_policy(UserName=ci, PolicyArn=S3_READ)
    iam.put_user_policy(UserName=ci, PolicyName="publish", PolicyDocument=doc(
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::artifacts/*"},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::artifacts"}))
    alice = f"{p}-Alice.Smith@example.com"
    iam.create_user(UserName=alice, Path="/people/", PermissionsBoundary=customer)
    iam.add_user_to_group(GroupName=f"{p}-deployers", UserName=alice)
    iam.create_access_key(UserName=alice)  # credentials are never part of a manifest
    iam.create_user(UserName=f"{p}-bare")
    return {web, irsa, sso, partner, lam, batch, ci, alice, f"{p}-bare"}


def plan(text: str, world: compute.World, tmp_path: Path) -> compute.Review:
    """The plan of the imported objects, with the guardrail that allows their adoption."""
    path = tmp_path / "imported.yaml"
    path.write_text(as_managed(text) + "---\n" + yaml.safe_dump(adoption_guardrail(text)))
    found = manifests.load([str(path)])
    assert not found.problems
    return compute.compute(found, world)


def live(clients: Clients, snapshot: account.AccountSnapshot | None = None) -> compute.World:
    return compute.World(clients=clients, snapshot=snapshot, partition=clients.partition, account_id=clients.account_id)


def assert_claims_only(review: compute.Review) -> None:
    for change in review.changes:
        assert change.action == "update" and only_claims(change.calls), (change.name, change.calls, change.message)


def flip_to_manage(clients: Clients, text: str) -> None:
    """The operator reconciling each imported object (as applied: with a uid, in its cluster):
    it writes only the claim."""
    gate = Gate(guardrails=(parse_guardrail(adoption_guardrail(text)),), account_id=clients.account_id)
    for obj in yaml.safe_load_all(as_managed(text)):
        obj["metadata"]["uid"] = f"uid-{obj['metadata']['name']}"
        outcome = reconcile(clients, registry.parse(obj).in_cluster(CLUSTER), gate=gate)
        assert outcome.ready and only_claims(outcome.applied), (obj["metadata"]["name"], outcome)


def test_varied_account_round_trip(clients: Clients, iam: Any, unique: Any, tmp_path: Path, capsys: Any) -> None:
    p = unique("imp")
    expected = build_account(iam, p)
    selector = importer.Selector(patterns=(f"{p}-*",))
    snapshot = account.take(clients.iam)
    result = importer.run(snapshot, selector, NS)
    assert {o.aws_name for o in result.objects} == expected
    assert result.notes == (f"skipped IAM role {p}-owned: already managed by IAMRole elsewhere/owned (rolekeeper.dev/owner tag)",)
    by_aws = {o.aws_name: o.obj for o in result.objects}
    assert by_aws[f"{p}-web-ec2"]["spec"]["instanceProfile"] is True
    assert "instanceProfile" not in by_aws[f"{p}-batch"]["spec"]
    assert by_aws[f"{p}-Uploader_IRSA"]["metadata"]["name"] == f"{p}-uploader-irsa"
    assert by_aws[f"{p}-partner-audit"]["spec"]["assumeRolePolicy"]["Statement"][0]["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}

    # The CLI, reading AWS itself, writes the same text.
    out = tmp_path / "cli.yaml"
    assert cli.main(["import", "-n", NS, "--name-pattern", f"{p}-*", "-o", str(out)]) == 0
    assert out.read_text() == result.yaml()
    assert f"skipped IAM role {p}-owned" in capsys.readouterr().err

    # Planned with the snapshot (as plan does past 20 objects) and with per-entity reads only.
    assert_claims_only(plan(result.yaml(), live(clients, snapshot), tmp_path))
    assert_claims_only(plan(result.yaml(), live(clients), tmp_path))
    assert cli.main(["plan", "--format", "json", str(tmp_path / "imported.yaml")]) == 0
    changes = json.loads(capsys.readouterr().out)["changes"]
    assert len(changes) == len(expected) and all(only_claims(c["calls"]) for c in changes)

    flip_to_manage(clients, result.yaml())
    after = account.take(clients.iam)
    for world in (live(clients, after), live(clients)):
        assert {(c.aws_name, c.action) for c in plan(result.yaml(), world, tmp_path).changes} == {(n, "noop") for n in expected}
    # Imported again, each entity is its object's: the same objects, no adoption asked.
    again = importer.run(after, selector, NS)
    assert [o.obj for o in again.objects] == [
        {**o.obj, "spec": {k: v for k, v in o.obj["spec"].items() if k != "adopt"}} for o in result.objects
    ]
    # Untouched: the other-named profile, the owned role, the credentials.
    assert [r["RoleName"] for r in iam.get_instance_profile(InstanceProfileName=f"{p}-batch-profile")["InstanceProfile"]["Roles"]] == [f"{p}-batch"]
    assert {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=f"{p}-owned")["Tags"]}["rolekeeper.dev/owner"] == "elsewhere/owned"
    assert len(iam.list_access_keys(UserName=f"{p}-Alice.Smith@example.com")["AccessKeyMetadata"]) == 1


@contextmanager
def pointed_at(server: moto.MotoServer) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in server.env.items():
            patch.setenv(key, value)
        yield


def test_examples_round_trip(moto_server: moto.MotoServer, tmp_path: Path) -> None:
    """examples/ reconciled into a fresh account (fixed names: a server of its own)."""
    objects = [d for f in sorted((ROOT / "examples").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
               if d["kind"] in registry.KINDS]
    with moto.running() as server, pointed_at(server):
        clients = aws.connect(boto3.session.Session())
        clients.iam.create_group(GroupName="deployers")
        arns: dict[tuple[str, str], str] = {}
        # The platform's boundary policy first: the Lambda role references it by name.
        for obj in sorted(objects, key=lambda o: o["kind"] != registry.REFERENCED.name):
            desired, missing = references.resolve(
                with_trust(registry.parse({**obj, "metadata": {**obj["metadata"], "uid": "uid-ex"}})),
                lambda ref: (arns[(ref.namespace, ref.name)], ""),
            )
            outcome = reconcile(clients, desired.in_cluster(CLUSTER))
            assert outcome.ready and not missing
            arns[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = outcome.verdict.arn
        # team-a's objects (the policy is the platform namespace's); the reference comes back as
        # the ARN it resolved to.
        objects = [o for o in objects if o["metadata"]["namespace"] == "team-a"]
        names = {o["spec"][registry.get(o["kind"]).name_field]: o["metadata"]["name"] for o in objects}
        selector = importer.Selector(names=tuple(names))

        # Owned by the examples' objects: written as those objects, planned noop.
        owned = importer.run(account.take(clients.iam), selector, "team-a")
        assert {o.aws_name: o.name for o in owned.objects} == names
        assert all("adopt" not in o.obj["spec"] for o in owned.objects)
        review = plan(owned.yaml(), live(clients, account.take(clients.iam)), tmp_path)
        assert [c.action for c in review.changes] == ["noop"] * len(objects)

        # Released (deletionPolicy: Retain untags them): as if made by hand. Claim, then noop.
        for obj in objects:
            kind = registry.get(obj["kind"])
            observed = kind.read(clients.iam, obj["spec"][kind.name_field])
            assert observed is not None
            api = f"untag_{kind.noun}"
            keys = [k for k in observed.tags if k.startswith(RESERVED_TAG_PREFIX)]
            getattr(clients.iam, api)(**{f"{kind.noun.capitalize()}Name": observed.name, "TagKeys": keys})
        released = importer.run(account.take(clients.iam), selector, "team-a")
        assert {o.aws_name: o.name for o in released.objects} == {n: n for n in names}  # AWS names are labels
        assert_claims_only(plan(released.yaml(), live(clients, account.take(clients.iam)), tmp_path))
        flip_to_manage(clients, released.yaml())
        review = plan(released.yaml(), live(clients, account.take(clients.iam)), tmp_path)
        assert [c.action for c in review.changes] == ["noop"] * len(objects)
