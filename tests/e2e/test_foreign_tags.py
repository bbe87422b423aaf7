"""Tags others own, end to end: `rolekeeper run` + a real kube-apiserver + the moto server.

Covers: a role whose organisation tags another principal adds out of band (boto3, straight to
moto) stays Ready and unchanged across more than two drift intervals — the IAMRole object is not
written (same resourceVersion, no new Event), no TagRole/UntagRole reaches AWS, the foreign tags
stay — while the sweeps go on (they still remove a tag nobody declared: the positive control);
the operator's own `--ignore-tags` does the same for an object without spec.ignoreTags, and
refuses a spec tag it names (InvalidSpec, no call); the API server refuses an ignore pattern
that could match a rolekeeper.dev/ ownership tag (the CRD's CEL rule) or has a * inside.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import DRIFT_INTERVAL, Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.operator import Operator
from tests.harness.util import until
from tests.helpers import aws_name, iam_role

pytestmark = pytest.mark.e2e

ORG_TAGS = [{"Key": "org:team", "Value": "payments"}, {"Key": "org:cost-center", "Value": "1234"}]
QUIET = DRIFT_INTERVAL * 2.5  # more than two drift intervals
DRIFT_DEADLINE = DRIFT_INTERVAL * 2 + 10


def tags(iam: Any, role_name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role_name)["Tags"]}


def tag_writes(aws: Aws) -> int:
    return aws.proxy.calls["TagRole"] + aws.proxy.calls["UntagRole"]


def sweep_reads(aws: Aws) -> int:
    """What a drift check reads: the account snapshot, or (few objects) the role itself."""
    return aws.proxy.calls["GetAccountAuthorizationDetails"] + aws.proxy.calls["GetRole"]


def event_counts(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, int]]:
    return sorted((e["metadata"]["name"], e.get("count") or 1)
                  for e in kube.events(cluster, namespace, name))


def stays_unchanged(cluster: Cluster, namespace: str, name: str, aws: Aws, iam: Any,
                    role_name: str) -> None:
    """Over QUIET seconds: drift checks read AWS, yet nothing is written to AWS or Kubernetes."""
    before = kube.get(cluster, namespace, "iamrole", name)
    events, writes, reads = event_counts(cluster, namespace, name), tag_writes(aws), sweep_reads(aws)
    aws_tags = tags(iam, role_name)
    time.sleep(QUIET)
    after = kube.get(cluster, namespace, "iamrole", name)
    assert sweep_reads(aws) - reads >= 2, "no drift check ran: the test would prove nothing"
    assert kube.ready_condition(after)["status"] == "True"
    assert kube.ready_condition(after)["reason"] == "Synced"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert event_counts(cluster, namespace, name) == events
    assert tag_writes(aws) == writes
    assert tags(iam, role_name) == aws_tags


def test_a_role_with_foreign_tags_stays_ready_and_unchanged(
    crds: Cluster, shared_ns: str, aws: Aws, iam: Any
) -> None:
    role_name = aws_name("org")
    kube.apply(crds, shared_ns, iam_role("org", role_name, tags={"team": "a"},
                                         ignoreTags=["org:*"]))
    kube.wait_ready(crds, shared_ns, "iamrole", "org")
    iam.tag_role(RoleName=role_name, Tags=ORG_TAGS)  # the organisation's automation

    stays_unchanged(crds, shared_ns, "org", aws, iam, role_name)
    assert {"org:team": "payments", "org:cost-center": "1234", "team": "a"}.items() <= tags(
        iam, role_name).items()

    # Positive control: the same sweeps still remove a tag nobody declared or ignored.
    iam.tag_role(RoleName=role_name, Tags=[{"Key": "stray", "Value": "x"}])
    until(lambda: "stray" not in tags(iam, role_name), DRIFT_DEADLINE, "the stray tag removed")
    assert {"org:team", "org:cost-center", "team"} <= set(tags(iam, role_name))


@pytest.fixture
def wide_operator(crds: Cluster, aws: Aws) -> Iterator[tuple[Operator, str]]:
    """An operator started with --ignore-tags, watching a namespace of its own."""
    namespace = crds.create_namespace("rk-ignore-tags")
    op = Operator(crds.kubeconfig, aws.env, namespaces=[namespace], drift_interval=DRIFT_INTERVAL,
                  extra_args=["--ignore-tags", "org:*,CostCenter"])
    op.start()
    try:
        yield op, namespace
    finally:
        op.stop()


def test_the_operators_ignore_tags_apply_to_every_object(
    crds: Cluster, wide_operator: tuple[Operator, str], aws: Aws, iam: Any
) -> None:
    _, namespace = wide_operator
    role_name = aws_name("wide")
    kube.apply(crds, namespace, iam_role("wide", role_name, tags={"team": "a"}))
    kube.wait_ready(crds, namespace, "iamrole", "wide")
    iam.tag_role(RoleName=role_name, Tags=[*ORG_TAGS, {"Key": "costcenter", "Value": "42"}])
    stays_unchanged(crds, namespace, "wide", aws, iam, role_name)

    other = aws_name("claims")
    writes = aws.proxy.count(writes_only=True)
    kube.apply(crds, namespace, iam_role("claims", other, tags={"org:team": "mine"}))
    condition = kube.wait_reason(crds, namespace, "iamrole", "claims", "InvalidSpec")
    assert "spec.tags.org:team" in condition["message"] and "--ignore-tags" in condition["message"]
    assert aws.proxy.count(writes_only=True) == writes


@pytest.mark.parametrize(("pattern", "fragment"), [
    ("rolekeeper.dev/*", "ownership tags can never be ignored"),
    ("Rolekeeper*", "ownership tags can never be ignored"),
    ("*", "ownership tags can never be ignored"),
    ("org:*:x", "spec.ignoreTags[0]"),
])
def test_the_api_server_refuses_a_forging_pattern(
    crds: Cluster, shared_ns: str, pattern: str, fragment: str
) -> None:
    done = kube.apply(crds, shared_ns, iam_role("forge", aws_name("forge"), ignoreTags=[pattern]),
                      check=False)
    assert done.returncode != 0 and fragment in done.stderr, done.stderr
    assert not kube.exists(crds, shared_ns, "iamrole", "forge")
