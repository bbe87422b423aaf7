"""Fixtures for the aws tier: one moto server process per session, reached over HTTP by boto3."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from controller.aws import clients as aws
from controller.settings import AWSSettings
from tests.harness import moto

# The tier tests what reconciles do, not how fast: the account-wide call budget (its own tests
# are tests/aws/test_budget.py) would make it several times slower for nothing.
UNBUDGETED = AWSSettings(max_calls_per_second=0)

_names = itertools.count()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[moto.MotoServer]:
    server = moto.start()
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def clients(moto_server: moto.MotoServer) -> aws.Clients:
    """Fresh clients (and a fresh call counter) per test."""
    return aws.connect(boto3.session.Session(), UNBUDGETED)


@pytest.fixture
def iam(moto_server: moto.MotoServer) -> Any:
    """A separate client standing for a human in the console: its calls are not counted."""
    return boto3.session.Session().client("iam", region_name="us-east-1")


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Fresh AWS names per test, so tests never see each other's entities."""
    return lambda prefix: f"{prefix}-{os.getpid()}-{next(_names)}"


@dataclass
class Account:
    """A moto server of its own: `clients` counted as the operator's, `iam` a console."""

    clients: aws.Clients
    iam: Any


@pytest.fixture
def own_account(moto_server: moto.MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    """For tests moto cannot answer right in a crowded account: its ListEntitiesForPolicy pages
    through every role before filtering, so past 1,000 roles (a full aws tier) holders go missing
    (real AWS filters server-side). Costs a server start (about 2 s)."""
    with moto.running() as server:
        for key, value in server.env.items():
            monkeypatch.setenv(key, value)
        session = boto3.session.Session()
        yield Account(
            aws.connect(session, UNBUDGETED), session.client("iam", region_name="us-east-1")
        )
