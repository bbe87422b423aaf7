"""The `rolekeeper` command's offline subcommands: crds and version.

Covers: `rolekeeper crds` prints exactly the CRDs in crds/ (what `kubectl apply -f -` installs);
`rolekeeper version` prints the package version; `run --help` documents every operator flag.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller import __version__
from controller.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_crds_prints_the_checked_in_crds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds"]) == 0
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    on_disk = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]
    assert printed == on_disk
    assert {d["spec"]["names"]["kind"] for d in printed} == {"IAMRole", "IAMUser", "IAMPolicy", "IAMGuardrail", "IAMAccount"}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"rolekeeper {__version__}"


@pytest.mark.parametrize("flag", ["--namespace", "--all-namespaces", "--drift-interval", "--standalone",
                                  "--liveness", "--log-format", "--metrics-port", "--workers"])
def test_run_documents_its_flags(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    assert flag in capsys.readouterr().out


@pytest.mark.parametrize("url", ["foo", "sqs.us-east-1.amazonaws.com/123456789012/q",
                                 "https://sqs.us-east-1.amazonaws.com/q", "ftp://host/1/q"])
def test_run_refuses_what_is_not_a_queue_url(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--events-queue-url", url])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "expected an SQS queue URL" in err and "Traceback" not in err


def test_run_needs_the_queue_for_a_dead_letter_queue(capsys: pytest.CaptureFixture[str]) -> None:
    dlq = "https://sqs.us-east-1.amazonaws.com/123456789012/rolekeeper-iam-events-dlq"
    assert main(["run", "--events-dead-letter-queue-url", dlq]) == 2
    assert "needs --events-queue-url" in capsys.readouterr().err
