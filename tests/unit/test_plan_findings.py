"""Security findings in `rolekeeper plan` (offline, on an empty account snapshot) and `lint`'s
exit codes through the CLI.

Covers: a change carries its object's findings, worst first, in every format (text, markdown,
JSON with `findings` added to formatVersion 1 and every other field intact); the suppression
annotation marks a finding and keeps it; `--fail-on` exits 1 only for an unsuppressed finding at
or above the threshold, and never hides an error; an unchanged object with findings still shows
them; the examples and a least-privilege role carry none; the account id of the world lets
RK-TRUST-003 tell a foreign account; `rolekeeper lint` exit codes 0/1/2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import cli
from controller.core.findings import SUPPRESS_ANNOTATION, findings_for
from controller.kinds import registry
from controller.kinds.snapshot import AccountSnapshot
from controller.review import compute, manifests, render

ROOT = Path(__file__).resolve().parents[2]
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
ANYONE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}],
}
FOREIGN_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                   "Action": "sts:AssumeRole"}],
}
LEAST_PRIVILEGE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"],
                   "Resource": "arn:aws:s3:::team-a-assets/*"}],
}
PASS_ANY_ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}],
}


def role(name: str, trust: dict[str, Any] = EC2_TRUST, annotations: dict[str, str] | None = None,
         **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "team-a"}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "iam.rolekeeper.dev/v1alpha1", "kind": "IAMRole", "metadata": metadata,
            "spec": {"roleName": f"team-a-{name}", "assumeRolePolicy": trust, **spec}}


def review_of(tmp_path: Path, *objects: dict[str, Any], account_id: str | None = None
              ) -> compute.Review:
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    world = compute.World(snapshot=AccountSnapshot(), account_id=account_id)
    return compute.compute(manifests.load([str(path)]), world)


def ids(change: compute.Change) -> list[str]:
    return [f.id for f in change.findings]


# --- compute ----------------------------------------------------------------------------------


def test_each_change_carries_its_findings_worst_first(tmp_path: Path) -> None:
    review = review_of(
        tmp_path,
        role("open", ANYONE_TRUST, inlinePolicies={"pass": PASS_ANY_ROLE}),
        role("tight", inlinePolicies={"read": LEAST_PRIVILEGE}),
    )
    open_, tight = review.changes
    assert open_.action == tight.action == "create"
    assert ids(open_) == ["RK-TRUST-001", "RK-PERM-003"]
    assert [f.field for f in open_.findings] == [
        "spec.assumeRolePolicy.Statement[0].Principal",
        "spec.inlinePolicies.pass.Statement[0].Action",
    ]
    assert tight.findings == ()


def test_suppression_marks_and_keeps_the_finding(tmp_path: Path) -> None:
    review = review_of(tmp_path, role(
        "passer", inlinePolicies={"pass": PASS_ANY_ROLE},
        annotations={SUPPRESS_ANNOTATION: "RK-PERM-003=the CI deployer passes any team role"},
    ))
    [finding] = review.changes[0].findings
    assert (finding.id, finding.suppressed) == ("RK-PERM-003", True)
    assert finding.reason == "the CI deployer passes any team role"


def test_account_id_lets_a_foreign_account_be_told(tmp_path: Path) -> None:
    offline = review_of(tmp_path, role("x", FOREIGN_TRUST))
    assert "RK-TRUST-003" not in ids(offline.changes[0])
    known = review_of(tmp_path, role("x", FOREIGN_TRUST), account_id="123456789012")
    assert "RK-TRUST-003" in ids(known.changes[0])


def test_invalid_objects_have_no_findings(tmp_path: Path) -> None:
    review = review_of(tmp_path, role("bad", ANYONE_TRUST, maxSessionDuration=60))
    assert review.changes[0].action == "invalid"
    assert review.changes[0].findings == ()


def test_examples_plan_without_findings() -> None:
    world = compute.World(snapshot=AccountSnapshot(), account_id="123456789012")
    review = compute.compute(manifests.load([str(ROOT / "examples")]), world)
    assert review.changes
    unsuppressed = {c.name: [f.id for f in c.findings if not f.suppressed] for c in review.changes}
    assert {name: found for name, found in unsuppressed.items() if found} == {}
    # The CI user's key and the boundary's ceiling are deliberate, suppressed with their reasons.
    suppressed = {c.name: [f.id for f in c.findings if f.suppressed] for c in review.changes}
    assert {name: found for name, found in suppressed.items() if found} == {
        "ci-deployer": ["RK-USER-001"], "tenant-boundary": ["RK-PERM-002"]}


# --- exit code --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fail_on", "code"),
    [(None, 0), ("critical", 1), ("high", 1), ("info", 1)],
)
def test_fail_on_counts_unsuppressed_findings(tmp_path: Path, fail_on: str | None, code: int
                                               ) -> None:
    review = review_of(tmp_path, role("open", ANYONE_TRUST))  # one critical finding
    assert review.exit_code(detailed=False, fail_on=fail_on) == code


def test_fail_on_below_the_threshold_passes(tmp_path: Path) -> None:
    review = review_of(tmp_path, role("passer", inlinePolicies={"pass": PASS_ANY_ROLE}))  # high
    assert review.exit_code(False, "critical") == 0
    assert review.exit_code(False, "high") == 1
    assert review.exit_code(True, "critical") == 2  # --detailed-exitcode still reports changes


def test_suppressed_findings_never_fail(tmp_path: Path) -> None:
    review = review_of(tmp_path, role("open", ANYONE_TRUST,
                                      annotations={SUPPRESS_ANNOTATION: "RK-TRUST-001: demo"}))
    assert review.changes[0].findings[0].suppressed
    assert review.exit_code(False, "info") == 0


# --- formats ----------------------------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path) -> compute.Review:
    return review_of(
        tmp_path,
        role("open", ANYONE_TRUST),
        role("passer", inlinePolicies={"pass": PASS_ANY_ROLE},
             annotations={SUPPRESS_ANNOTATION: "RK-PERM-003=reviewed <b>by</b> *security*"}),
        role("tight", inlinePolicies={"read": LEAST_PRIVILEGE}),
    )


def test_json_adds_findings_and_keeps_version_1_fields(mixed: compute.Review) -> None:
    doc = json.loads(render.json_text(mixed))
    assert doc["formatVersion"] == 1
    for change in doc["changes"]:
        assert set(change) == {"kind", "namespace", "name", "awsName", "action", "calls", "diff",
                               "message", "source", "findings"}
    by_name = {c["name"]: c["findings"] for c in doc["changes"]}
    assert [f["id"] for f in by_name["open"]] == ["RK-TRUST-001"]
    assert by_name["open"][0] == {
        "id": "RK-TRUST-001", "severity": "critical",
        "field": "spec.assumeRolePolicy.Statement[0].Principal",
        "message": by_name["open"][0]["message"], "link": by_name["open"][0]["link"],
    }
    assert by_name["passer"][0]["suppressed"] is True
    assert by_name["passer"][0]["reason"] == "reviewed <b>by</b> *security*"
    assert by_name["tight"] == []


def test_text_lists_findings_under_the_change(mixed: compute.Review) -> None:
    out = render.text(mixed)
    block = out.split("+ create IAMRole team-a/open")[1].split("CreateRole")[0]
    assert "! critical RK-TRUST-001 spec.assumeRolePolicy.Statement[0].Principal:" in block
    assert "https://docs.aws.amazon.com/IAM/" in block
    assert "suppressed: reviewed <b>by</b> *security*" in out
    assert "2 security findings (1 suppressed)" in out.splitlines()[-1]


def test_markdown_lists_findings_with_escaped_reasons(mixed: compute.Review) -> None:
    out = render.markdown(mixed)
    assert "**Security findings:**" in out
    assert "- **critical** [RK-TRUST-001](https://docs.aws.amazon.com/IAM/" in out
    assert "_(suppressed: reviewed &lt;b&gt;by&lt;/b&gt; \\*security\\*)_" in out
    assert "2 security findings (1 suppressed)" in out


def test_unchanged_object_still_shows_its_findings() -> None:
    found = findings_for(registry.view_of(role("open", ANYONE_TRUST)))
    change = compute.Change("IAMRole", "team-a", "open", "team-a-open", "noop", findings=found)
    review = compute.Review((change,))
    assert "RK-TRUST-001" in render.text(review)
    assert "RK-TRUST-001" in render.markdown(review)
    assert "= 1 unchanged" in render.text(review)


def test_no_findings_leaves_output_as_before(tmp_path: Path) -> None:
    review = review_of(tmp_path, role("tight", inlinePolicies={"read": LEAST_PRIVILEGE}))
    assert "security finding" not in render.text(review)
    assert "Security findings" not in render.markdown(review)


# --- the CLI ----------------------------------------------------------------------------------


def test_plan_fail_on_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "open.yaml"
    path.write_text(yaml.safe_dump(role("open", ANYONE_TRUST)))
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(json.dumps({"formatVersion": 1, "account": "123456789012",
                                    "partition": "aws", "roles": [], "users": []}))
    args = ["plan", str(path), "--snapshot", str(snapshot)]
    assert cli.main(args) == 0
    assert cli.main([*args, "--fail-on", "high"]) == 1
    assert "at or above --fail-on high" in capsys.readouterr().err
    assert cli.main([*args, "--format", "json", "--fail-on", "critical"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["changes"][0]["findings"][0]["id"] == "RK-TRUST-001"


@pytest.fixture
def lint_files(tmp_path: Path) -> dict[str, str]:
    files = {
        "clean": role("tight", inlinePolicies={"read": LEAST_PRIVILEGE}),
        "high": role("passer", inlinePolicies={"pass": PASS_ANY_ROLE}),
        "critical": role("open", ANYONE_TRUST),
        "invalid": role("bad", maxSessionDuration=60),
    }
    out = {}
    for name, obj in files.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(obj))
        out[name] = str(tmp_path / f"{name}.yaml")
    return out


@pytest.mark.parametrize(
    ("file", "fail_on", "code"),
    [
        ("clean", "info", 0),
        ("high", None, 0),
        ("high", "critical", 0),
        ("high", "high", 1),
        ("critical", "high", 1),
        ("invalid", None, 2),
    ],
)
def test_lint_exit_codes(lint_files: dict[str, str], capsys: pytest.CaptureFixture[str],
                         file: str, fail_on: str | None, code: int) -> None:
    args = ["lint", lint_files[file], *(["--fail-on", fail_on] if fail_on else [])]
    assert cli.main(args) == code
    assert "finding(s)" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_lint_formats_through_the_cli(lint_files: dict[str, str],
                                      capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    assert cli.main(["lint", "--format", fmt, lint_files["critical"]]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert ("runs" in doc) if fmt == "sarif" else (doc["findings"][0]["id"] == "RK-TRUST-001")


def test_help_lists_lint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "lint" in capsys.readouterr().out


# --- status (what the operator writes) --------------------------------------------------------


def test_status_with_findings_leaves_ready_and_is_stable() -> None:
    from datetime import UTC, datetime

    from controller.core import status
    from controller.core.findings import suppress

    found = findings_for(registry.view_of(role("open", ANYONE_TRUST,
                                               inlinePolicies={"pass": PASS_ANY_ROLE})))
    verdict = status.Verdict(True, status.Reason.SYNCED, "ok", arn="arn:x")
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    base = status.render({}, verdict, 1, "roleId", now=t0)
    first = status.with_findings(base, [f.to_json() for f in found], 1, now=t0)
    ready, security = first["conditions"]
    assert ready == base["conditions"][0]
    assert (security["type"], security["status"], security["reason"]) == (
        "SecurityFindings", "True", "FindingsPresent")
    assert "1 critical, 1 high" in security["message"]
    assert status.unsuppressed_ids(first) == {"RK-TRUST-001", "RK-PERM-003"}
    again = status.with_findings(status.render(first, verdict, 1, "roleId", now=t1),
                                 [f.to_json() for f in found], 1, now=t1)
    assert not status.changed(first, again)  # same findings: no write
    quiet = suppress(found, "RK-TRUST-001=demo, RK-PERM-003=demo")
    later = status.with_findings(status.render(first, verdict, 1, "roleId", now=t1),
                                 [f.to_json() for f in quiet], 1, now=t1)
    assert [c["reason"] for c in later["conditions"]] == ["Synced", "NoFindings"]
    assert "2 suppressed" in later["conditions"][1]["message"]
    assert len(later["findings"]) == 2 and status.unsuppressed_ids(later) == frozenset()


def test_findings_gauge_is_exact_per_object() -> None:
    from typing import cast

    from controller.core.findings import suppress
    from controller.operator import handlers, metrics

    rt = handlers.Runtime(*cast(Any, (None, None, None, None)))
    found = findings_for(registry.view_of(role("open", ANYONE_TRUST)))

    def gauge() -> float:
        return metrics.REGISTRY.get_sample_value(
            "rolekeeper_findings", {"severity": "critical", "id": "RK-TRUST-001"}) or 0.0

    before = gauge()
    rt.track_findings("a", found)
    rt.track_findings("a", found)  # the same object again counts once
    rt.track_findings("b", found)
    assert gauge() - before == 2
    rt.track_findings("b", suppress(found, "RK-TRUST-001=ok"))  # suppressed: not counted
    assert gauge() - before == 1
    rt.track("a", "IAMRole", None)  # deleted
    assert gauge() - before == 0
