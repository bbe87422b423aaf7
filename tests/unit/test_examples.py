"""The manifests in examples/ are valid for the CRDs in crds/ and follow the house conventions.

Covers:
- the examples a user looks for exist, each starts with a comment header, holds one object;
- 00-namespace.yaml creates namespace team-a and sorts first (`kubectl apply -f examples/`);
- every other example is an iam.rolekeeper.dev/v1alpha1 IAMRole/IAMUser in team-a whose spec
  validates against its CRD's schema (patterns, bounds, enums, CEL key rules, unknown fields);
- AWS names carry the namespace prefix; AWS managed policies referenced exist in moto's copy of
  the AWS list (the demo and e2e tests run the examples against a moto server);
- the validation can fail: broken copies of an example are rejected, naming the field.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto.iam.aws_managed_policies import aws_managed_policies_data

from controller.kinds import registry
from tests.unit.test_crds import violations

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
NAMESPACE = "team-a"


def spec_schema(kind: str) -> Any:
    """The CRD's schema of `spec` for a kind."""
    path = EXAMPLES.parent / "crds" / f"{registry.get(kind).plural}.yaml"
    crd = yaml.safe_load(path.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def load(name: str) -> dict[str, Any]:
    with (EXAMPLES / name).open() as f:
        [obj] = list(yaml.safe_load_all(f))
    assert isinstance(obj, dict)
    return obj


NAMESPACE_FILES = ["00-namespace.yaml", "00-platform-namespace.yaml"]
# Kubernetes objects the examples need besides namespaces: the IRSA role's ServiceAccount.
KUBERNETES_FILES = [*NAMESPACE_FILES, "00-uploader-serviceaccount.yaml"]
RESOURCES = [name for name in FILES if name not in KUBERNETES_FILES]
NAMESPACES = {NAMESPACE, "platform"}  # the platform team publishes a boundary policy


@pytest.mark.parametrize(
    "name",
    ["00-namespace.yaml", "ec2-instance-role.yaml", "irsa-role.yaml", "cross-account-role.yaml",
     "lambda-role.yaml", "ci-user.yaml", "platform-boundary-policy.yaml"],
)
def test_example_exists(name: str) -> None:
    assert name in FILES


@pytest.mark.parametrize("name", FILES)
def test_starts_with_a_comment_header(name: str) -> None:
    assert (EXAMPLES / name).read_text().startswith("# ")


def test_namespace_sorts_first() -> None:
    assert FILES[0] == "00-namespace.yaml"
    obj = load("00-namespace.yaml")
    assert (obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) == ("v1", "Namespace", NAMESPACE)


def test_the_irsa_roles_service_account_is_an_example_too() -> None:
    """Applied before the role, unannotated: the operator writes eks.amazonaws.com/role-arn."""
    account = load("00-uploader-serviceaccount.yaml")
    role = load("irsa-role.yaml")
    assert (account["kind"], account["metadata"]) == ("ServiceAccount",
                                                     {"name": "uploader", "namespace": NAMESPACE})
    assert role["spec"]["serviceAccounts"] == [{"name": account["metadata"]["name"]}]
    assert role["metadata"]["namespace"] == account["metadata"]["namespace"]


@pytest.mark.parametrize("name", RESOURCES)
def test_is_a_rolekeeper_object_in_an_example_namespace(name: str) -> None:
    obj = load(name)
    assert obj["apiVersion"] == "iam.rolekeeper.dev/v1alpha1"
    assert obj["kind"] in registry.KIND_NAMES
    assert obj["metadata"]["namespace"] in NAMESPACES


@pytest.mark.parametrize("name", RESOURCES)
def test_spec_validates_against_the_crd(name: str) -> None:
    obj = load(name)
    assert violations(spec_schema(obj["kind"]), obj["spec"]) == []


@pytest.mark.parametrize("name", RESOURCES)
def test_aws_name_has_the_namespace_prefix(name: str) -> None:
    obj = load(name)
    assert obj["spec"][registry.get(obj["kind"]).name_field].startswith(f"{obj['metadata']['namespace']}-")


def _aws_managed(obj: dict[str, Any]) -> list[str]:
    arns = [*obj["spec"].get("managedPolicies", ()), obj["spec"].get("permissionsBoundary", "")]
    return [arn.rpartition("/")[2] for arn in arns if arn.startswith("arn:aws:iam::aws:policy/")]


AWS_MANAGED = [(name, policy) for name in RESOURCES for policy in _aws_managed(load(name))]


@pytest.mark.parametrize(("name", "policy"), AWS_MANAGED)
def test_aws_managed_policy_exists_in_moto(name: str, policy: str) -> None:
    assert policy in json.loads(aws_managed_policies_data)


BREAKAGES: list[tuple[str, Any, str]] = [  # (spec key, new value or None to delete, field named)
    ("maxSessionDuration", 100, "spec.maxSessionDuration"),
    ("roleNmae", "typo", "spec.roleNmae"),
    ("assumeRolePolicy", None, "spec.assumeRolePolicy"),
    ("assumeRolePolicy", {"Version": yaml.safe_load("2012-10-17")}, "spec.assumeRolePolicy.Version"),
    ("managedPolicies", ["AmazonS3ReadOnlyAccess"], "spec.managedPolicies[0]"),
    ("tags", {"aws:team": "a"}, "spec.tags"),
    ("tags", {"team": "a, b"}, "spec.tags.team"),
    ("deletionPolicy", "Orphan", "spec.deletionPolicy"),
]


@pytest.mark.parametrize(("key", "value", "field"), BREAKAGES)
def test_broken_example_is_rejected(key: str, value: Any, field: str) -> None:
    obj = copy.deepcopy(load("ec2-instance-role.yaml"))
    if value is None:
        del obj["spec"][key]
    else:
        obj["spec"][key] = value
    found = violations(spec_schema("IAMRole"), obj["spec"])
    assert [v for v in found if v.startswith(f"{field}:")], found
