"""Fixtures for the e2e tier: a real kube-apiserver + etcd per session, a namespace per test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.harness import kube, moto
from tests.harness.awsproxy import AwsProxy
from tests.harness.envtest import (
    Cluster,
    ControlPlane,
    ExternalCluster,
    build_binaries,
    can_build,
    find_binaries,
)
from tests.harness.operator import Operator

REPO = Path(__file__).resolve().parents[2]

ENABLE_HINT = (
    "e2e tier needs kube-apiserver/etcd/kubectl: set KUBEBUILDER_ASSETS, run `make envtest-bin` "
    "(needs Go), or set RK_E2E_KUBECONFIG to an existing cluster"
)


def _binaries_or_skip(config: pytest.Config) -> Path:
    """Binaries for the session; skips (or fails under CI=true) when there is no way to get them."""
    found = find_binaries()
    if found is not None:
        return found
    if can_build():
        # A cold build takes 10-20 minutes: let its progress reach the terminal.
        capture = config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            return build_binaries()
    # CI must never go green with the e2e tier silently skipped.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {ENABLE_HINT}", pytrace=False)
    pytest.skip(ENABLE_HINT)


@pytest.fixture(scope="session")
def control_plane(pytestconfig: pytest.Config) -> Iterator[Cluster]:
    """The session's cluster: RK_E2E_KUBECONFIG if set, else a fresh local ControlPlane.

    Tests that restart components (restart_apiserver/restart_etcd) need a ControlPlane;
    they should `pytest.skip` when given an ExternalCluster.
    """
    external = os.environ.get("RK_E2E_KUBECONFIG")
    if external:
        yield ExternalCluster(Path(external))
        return
    with ControlPlane(_binaries_or_skip(pytestconfig)) as plane:
        yield plane


@pytest.fixture
def namespace(control_plane: Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test (namespaces are never deleted: no GC runs)."""
    return control_plane.create_namespace(request.node.name)


# --- AWS endpoint, CRDs and the operator ----------------------------------------------------


@dataclass
class Aws:
    """The moto server behind a counting, fault-injecting proxy; `env` points boto3 at the proxy."""

    server: moto.MotoServer
    proxy: AwsProxy

    @property
    def env(self) -> dict[str, str]:
        return {**self.server.env, "AWS_ENDPOINT_URL_IAM": self.proxy.url,
                "AWS_ENDPOINT_URL_STS": self.proxy.url}

    def console(self) -> Any:
        """An IAM client standing for a human: talks to moto directly, so it is not counted."""
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        return session.client("iam", endpoint_url=self.server.url)


@pytest.fixture(scope="session")
def aws() -> Iterator[Aws]:
    server = moto.start()
    proxy = AwsProxy(server.port).start()
    try:
        yield Aws(server, proxy)
    finally:
        proxy.stop()
        server.stop()


@pytest.fixture
def iam(aws: Aws) -> Any:
    return aws.console()


@pytest.fixture(scope="session")
def crds(control_plane: Cluster) -> Cluster:
    """The CRDs from crds/, applied with the real kubectl and Established."""
    control_plane.kubectl("apply", "-f", str(REPO / "crds"))
    names = [f"{path.stem}.iam.rolekeeper.dev" for path in sorted((REPO / "crds").glob("*.yaml"))]
    kube.wait_established(control_plane, *names)
    return control_plane


SHARED_PREFIX = "rk-shared"
DRIFT_INTERVAL = 4.0


@pytest.fixture(scope="session")
def operator(crds: Cluster, aws: Aws) -> Iterator[Operator]:
    """One operator for the session, watching only `rk-shared-*` namespaces, so tests that run
    their own operator (restarts, RBAC, HA) use other namespaces without two operators fighting."""
    op = Operator(crds.kubeconfig, aws.env, namespaces=[f"{SHARED_PREFIX}-*"],
                  drift_interval=DRIFT_INTERVAL)
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def shared_ns(operator: Operator, control_plane: Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace watched by the session operator."""
    return control_plane.create_namespace(f"{SHARED_PREFIX}-{request.node.name}")
