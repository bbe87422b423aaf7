"""spec.serviceAccounts on IAMRole: parsing, the generated trust statements, plan and the CRD.

Covers:
- the issuer URL as IAM spells it (https only, trailing slash dropped, no query or credentials);
- parsing: namespaces default to the role's own, duplicates (after defaulting), bad names and
  namespaces, more than 20, podIdentity without serviceAccounts, the spec's own statements may
  not use the generated Sid prefix, assumeRolePolicy becomes optional; the view carries them;
- binding: the exact IRSA statement (provider ARN in the account's partition, `:sub` naming
  exactly the listed ServiceAccounts, `:aud`), appended after the spec's statements; EKS Pod
  Identity statements (one per ServiceAccount, session-tag conditions, optional cluster name)
  need no issuer; both together; binding twice changes nothing; an unknown issuer, an unbound
  role or a trust policy over the size limit make `plan` refuse (SpecError) instead of
  creating a role without its statements;
- plan: CreateRole sends the merged document; a ServiceAccount added or removed is one
  UpdateAssumeRolePolicy; the role as AWS returns it plans nothing;
- `rolekeeper plan --oidc-issuer`: the same document the operator's `with_trust` generates, as
  JSON; without the flag the object is invalid and says to pass it; a bad URL is refused by
  argparse (exit 2, no traceback);
- the CRD accepts and refuses the same ServiceAccount names and namespaces as the parser.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.cli import main
from controller.core import podidentity, policy
from controller.core.errors import SpecError
from controller.core.podidentity import IssuerError, ServiceAccountRef, TrustContext
from controller.kinds import registry
from controller.kinds.base import Desired
from controller.operator import serviceaccounts
from controller.settings import Limits, PodIdentitySettings, Settings
from tests.helpers import ACCOUNT, EC2_TRUST, manifest, plan
from tests.unit.test_crds import node_at, violations

ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
HOST = ISSUER.removeprefix("https://")
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{HOST}"
CONTEXT = TrustContext(ISSUER, ACCOUNT)
LONG = "a-service-account-whose-name-is-long-enough-to-fill-the-trust-policy"


def irsa_role(*accounts: dict[str, str], **spec: Any) -> dict[str, Any]:
    body = {"roleName": "team-a-uploader", "serviceAccounts": list(accounts), **spec}
    return manifest("IAMRole", "uploader", body, uid="uid-1", generation=1)


def parse(obj: dict[str, Any]) -> Desired:
    return registry.parse(obj)


def bound(obj: dict[str, Any], context: TrustContext = CONTEXT) -> Desired:
    desired = parse(obj)
    return registry.of(desired).bind_trust(desired, context)


def errors(obj: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse(obj)
    return caught.value.errors


def trust(desired: Desired) -> Any:
    return registry.of(desired).documents(desired.entity)["spec.assumeRolePolicy"]


# --- the issuer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (ISSUER, ISSUER),
        (ISSUER + "/", ISSUER),
        ("https://127.0.0.1:6443", "https://127.0.0.1:6443"),
        (" https://kubernetes.default.svc ", "https://kubernetes.default.svc"),
    ],
)
def test_issuer_is_normalised(url: str, expected: str) -> None:
    assert podidentity.normalize_issuer(url) == expected


@pytest.mark.parametrize(
    "url",
    ["http://oidc.example", "oidc.example/id/1", "https://", "https://x.example/?a=1",
     "https://x.example/#f", "https://user:pw@x.example", "https://x.example/a b"],
)
def test_issuer_that_iam_cannot_use_is_refused(url: str) -> None:
    with pytest.raises(IssuerError):
        podidentity.normalize_issuer(url)


# --- parsing -----------------------------------------------------------------------------------


def test_namespace_defaults_to_the_roles_own_and_the_list_is_sorted() -> None:
    desired = parse(irsa_role({"name": "web"}, {"name": "api", "namespace": "team-b"}))

    assert desired.pod_identity == podidentity.PodIdentity(
        (ServiceAccountRef("team-a", "web"), ServiceAccountRef("team-b", "api"))
    )
    view = registry.of(desired).view(desired)
    assert view.service_accounts == (("team-a", "web"), ("team-b", "api"))


def test_assume_role_policy_is_optional_with_service_accounts_only() -> None:
    assert "spec.assumeRolePolicy: required (or spec.serviceAccounts)" in errors(
        manifest("IAMRole", "x", {"roleName": "x"}))
    assert parse(irsa_role({"name": "web"})).entity.assume_role_policy == {}


@pytest.mark.parametrize(
    ("accounts", "spec", "message"),
    [
        ([{"name": "web"}, {"name": "web", "namespace": "team-a"}], {},
         "spec.serviceAccounts[1]: ServiceAccount team-a/web is listed more than once"),
        ([{"name": "Web"}], {}, "spec.serviceAccounts[0].name: 'Web' is not a ServiceAccount"),
        ([{"name": "a" * 254}], {}, "is not a ServiceAccount name"),
        ([{"name": "web", "namespace": "team_b"}], {},
         "spec.serviceAccounts[0].namespace: 'team_b' is not a namespace name"),
        ([{"name": "web", "namespace": "n" * 64}], {}, "is not a namespace name"),
        ([{"name": "web", "role": "x"}], {}, "spec.serviceAccounts[0]: unknown field role"),
        ([{"name": f"s{i}"} for i in range(21)], {},
         "spec.serviceAccounts: 21 ServiceAccounts exceeds the limit 20"),
        ([{"name": "web"}], {"podIdentity": {"clusterName": "-bad"}},
         "spec.podIdentity.clusterName: '-bad' is not an EKS cluster name"),
        ([{"name": "web"}], {"podIdentity": {"irsa": "yes"}},
         "spec.podIdentity.irsa: must be true or false"),
        ([{"name": "web"}], {"assumeRolePolicy": {"Statement": [{
            "Sid": "RolekeeperIRSA", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}},
         "spec.assumeRolePolicy.Statement[0].Sid: 'RolekeeperIRSA' starts with 'Rolekeeper'"),
    ],
)
def test_bad_service_accounts_are_refused(
    accounts: list[dict[str, str]], spec: dict[str, Any], message: str
) -> None:
    found = errors(irsa_role(*accounts, **spec))
    assert any(message in e for e in found), found


def test_pod_identity_needs_service_accounts() -> None:
    obj = manifest("IAMRole", "x", {"assumeRolePolicy": EC2_TRUST, "podIdentity": {}})
    assert "spec.podIdentity: needs spec.serviceAccounts (the accounts it trusts)" in errors(obj)


# --- binding -----------------------------------------------------------------------------------


def test_the_irsa_statement_names_exactly_the_listed_service_accounts() -> None:
    desired = bound(irsa_role({"name": "web"}, {"name": "api"}))

    assert trust(desired) == {"Version": "2012-10-17", "Statement": [{
        "Sid": "RolekeeperIRSA",
        "Effect": "Allow",
        "Principal": {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{HOST}:sub": ["system:serviceaccount:team-a:api", "system:serviceaccount:team-a:web"],
            f"{HOST}:aud": "sts.amazonaws.com",
        }},
    }]}
    assert not policy.validate(trust(desired), "trust", "spec.assumeRolePolicy")


def test_one_service_account_is_one_subject_string_in_the_partition() -> None:
    desired = bound(irsa_role({"name": "web"}), TrustContext(ISSUER, ACCOUNT, "aws-cn"))

    [statement] = trust(desired)["Statement"]
    assert statement["Principal"]["Federated"] == f"arn:aws-cn:iam::{ACCOUNT}:oidc-provider/{HOST}"
    assert statement["Condition"]["StringEquals"][f"{HOST}:sub"] == "system:serviceaccount:team-a:web"


def test_generated_statements_follow_the_specs_own() -> None:
    own = {"Version": "2012-10-17", "Statement": {
        "Sid": "Ec2", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}}

    statements = trust(bound(irsa_role({"name": "web"}, assumeRolePolicy=own)))["Statement"]

    assert [s.get("Sid") for s in statements] == ["Ec2", "RolekeeperIRSA"]


def test_pod_identity_statements_need_no_issuer() -> None:
    obj = irsa_role({"name": "web"}, {"name": "api", "namespace": "team-b"},
                    podIdentity={"clusterName": "prod"})

    statements = trust(bound(obj, TrustContext(None, ACCOUNT)))["Statement"]

    assert statements == [
        {"Sid": f"RolekeeperPodIdentity{i}", "Effect": "Allow",
         "Principal": {"Service": "pods.eks.amazonaws.com"},
         "Action": ["sts:AssumeRole", "sts:TagSession"],
         "Condition": {"StringEquals": {
             "aws:RequestTag/kubernetes-namespace": namespace,
             "aws:RequestTag/kubernetes-service-account": name,
             "aws:RequestTag/eks-cluster-name": "prod"}}}
        for i, (namespace, name) in enumerate([("team-a", "web"), ("team-b", "api")])
    ]
    identity = parse(obj).pod_identity
    assert identity is not None and not identity.irsa  # no IRSA statement, no annotation


def test_pod_identity_with_irsa_keeps_both() -> None:
    obj = irsa_role({"name": "web"}, podIdentity={"irsa": True})

    sids = [s["Sid"] for s in trust(bound(obj))["Statement"]]

    assert sids == ["RolekeeperIRSA", "RolekeeperPodIdentity0"]


def test_binding_twice_changes_nothing() -> None:
    once = bound(irsa_role({"name": "web"}))
    assert registry.of(once).bind_trust(once, CONTEXT) == once


@pytest.mark.parametrize(
    ("desired", "message"),
    [
        (lambda: parse(irsa_role({"name": "web"})), "the trust statements were not generated"),
        (lambda: bound(irsa_role({"name": "web"}), TrustContext(None, ACCOUNT)),
         "the cluster's OIDC issuer is not known"),
        (lambda: bound(irsa_role(*({"name": f"{LONG}-{i:02d}"} for i in range(20)))),
         "with the statements generated for spec.serviceAccounts exceeds the limit 2048"),
    ],
    ids=["unbound", "no-issuer", "too-large"],
)
def test_plan_refuses_a_role_without_its_statements(desired: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        plan(desired(), None)
    assert message in str(caught.value)


def test_a_raised_trust_quota_fits_more_service_accounts() -> None:
    obj = irsa_role(*({"name": f"{LONG}-{i:02d}"} for i in range(20)))
    context = TrustContext(ISSUER, ACCOUNT, trust_policy_size=4096)

    assert plan(bound(obj, context), None)[0].api == "CreateRole"


# --- plan ----------------------------------------------------------------------------------------


def test_create_sends_the_merged_trust_and_aws_answer_plans_nothing() -> None:
    desired = bound(irsa_role({"name": "web"}))

    create = plan(desired, None)[0]

    assert create.api == "CreateRole"
    sent = json.loads(create.params["AssumeRolePolicyDocument"])
    assert policy.equivalent(sent, trust(desired))
    observed = registry.get("IAMRole").placeholder("team-a-uploader")
    as_aws_returns = replace(observed, assume_role_policy=sent, tags=desired.tags(),
                             arn=f"arn:aws:iam::{ACCOUNT}:role/team-a-uploader", role_id="AROA1")
    assert plan(desired, as_aws_returns) == ()


def test_a_service_account_added_is_one_trust_update() -> None:
    before = bound(irsa_role({"name": "web"}))
    after = bound(irsa_role({"name": "web"}, {"name": "api"}))
    observed = replace(registry.get("IAMRole").placeholder("team-a-uploader"),
                       assume_role_policy=trust(before), tags=before.tags())

    [update] = plan(after, observed)

    assert update.api == "UpdateAssumeRolePolicy"
    assert "system:serviceaccount:team-a:api" in update.params["PolicyDocument"]
    assert plan(before, observed) == ()


def test_the_operator_binds_with_its_settings() -> None:
    settings = Settings(pod_identity=PodIdentitySettings(oidc_issuer=ISSUER),
                        limits=Limits(trust_policy_size=4096))
    desired = parse(irsa_role({"name": "web"}))

    operator = serviceaccounts.with_trust(desired, settings, ACCOUNT, "aws")

    assert operator == registry.of(desired).bind_trust(
        desired, TrustContext(ISSUER, ACCOUNT, trust_policy_size=4096))
    unknown = serviceaccounts.with_trust(desired, Settings(), ACCOUNT, "aws")
    with pytest.raises(SpecError, match="Run it with --oidc-issuer URL"):
        plan(unknown, None)
    ec2 = registry.parse(manifest("IAMRole", "x", {"assumeRolePolicy": EC2_TRUST}))
    assert serviceaccounts.with_trust(ec2, settings, ACCOUNT, "aws") is ec2


# --- rolekeeper plan -----------------------------------------------------------------------------


@pytest.fixture
def offline(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "role.yaml").write_text(yaml.safe_dump(irsa_role({"name": "web"})))
    snapshot = {"formatVersion": 1, "account": ACCOUNT, "partition": "aws", "takenAt": "",
                "roles": [], "users": []}
    (tmp_path / "snap.json").write_text(json.dumps(snapshot))
    return tmp_path / "role.yaml", tmp_path / "snap.json"


def test_plan_shows_the_operators_trust_policy(
    offline: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    role, snapshot = offline
    code = main(["plan", str(role), "--snapshot", str(snapshot), "--format", "json",
                 "--oidc-issuer", ISSUER + "/", "--cluster-id", "c1"])

    [change] = json.loads(capsys.readouterr().out)["changes"]
    assert (code, change["action"]) == (0, "create")
    create = change["calls"][0]
    operator = serviceaccounts.with_trust(
        parse(irsa_role({"name": "web"})),
        Settings(pod_identity=PodIdentitySettings(oidc_issuer=ISSUER)), ACCOUNT, "aws")
    assert json.loads(create["params"]["AssumeRolePolicyDocument"]) == json.loads(
        plan(operator, None)[0].params["AssumeRolePolicyDocument"])


def test_plan_without_the_issuer_says_to_pass_it(
    offline: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    role, snapshot = offline
    code = main(["plan", str(role), "--snapshot", str(snapshot), "--format", "json"])

    out, err = capsys.readouterr()
    [change] = json.loads(out)["changes"]
    assert (code, change["action"]) == (1, "invalid")
    assert "pass --oidc-issuer URL" in change["message"] and "pass --oidc-issuer URL" in err


@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_bad_issuer_flag_is_refused(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--oidc-issuer", "http://oidc.example"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "is not an https:// URL" in err and "Traceback" not in err


# --- the CRD -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "valid"),
    [
        ({"name": "web"}, True),
        ({"name": "web.v2", "namespace": "team-b"}, True),
        ({"name": "a" * 253}, True),
        ({"name": "a" * 254}, False),
        ({"name": "Web"}, False),
        ({"name": "web-"}, False),
        ({"name": ""}, False),
        ({"namespace": "team-a"}, False),
        ({"name": "web", "namespace": "team.b"}, False),
        ({"name": "web", "namespace": "n" * 64}, False),
        ({"name": "web", "role": "x"}, False),
    ],
)
def test_the_crd_agrees_with_the_parser(item: dict[str, Any], valid: bool) -> None:
    crd_ok = violations(node_at("IAMRole", "spec.serviceAccounts[]"), item) == []
    try:
        parse(irsa_role(item))
        parser_ok = True
    except SpecError:
        parser_ok = False
    assert (crd_ok, parser_ok) == (valid, valid)


def test_the_crd_needs_a_trust_policy_or_service_accounts() -> None:
    spec = node_at("IAMRole", "spec")

    assert violations(spec, {"serviceAccounts": [{"name": "web"}]}) == []
    assert violations(spec, {"roleName": "x"}) == [
        "spec.assumeRolePolicy: give assumeRolePolicy (who may assume the role), "
        "serviceAccounts (the trust is generated for them), or both"]
    assert violations(spec, {"assumeRolePolicy": EC2_TRUST, "podIdentity": {}}) == [
        "spec.serviceAccounts: podIdentity needs serviceAccounts (the ServiceAccounts it trusts)"]
    assert violations(node_at("IAMRole", "spec.serviceAccounts"),
                      [{"name": f"s{i}"} for i in range(21)]) == ["spec: more than 20 items"]
