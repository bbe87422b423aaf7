"""The CI step, run: action.yml's steps and the GitLab template's jobs on a moto server.

The steps and jobs run as their runners would run them (tests/harness/cirun.py): the real
install (a venv, requirements.lock with --require-hashes, rolekeeper built from this checkout
or fetched at a commit), `rolekeeper plan` against the moto server (through a web identity
token in the GitLab job, as GitLab's ID token), `rolekeeper lint`, the comment posted to a local
stand-in of the GitHub/GitLab API (tests/harness/forge.py), and the verdict. The manifests are
examples from the repository's examples/, laid out as a team's repository would hold them.

The GitLab job fetches the script at a commit, as GitLab does, so it runs HEAD of this
checkout: commit a change to ci/ before running this file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest

from tests.harness import cirun, forge, moto

pytestmark = pytest.mark.aws

ROOT = cirun.ROOT
SCHEMA = json.loads((ROOT / "tests" / "unit" / "data" / "sarif-schema-2.1.0.json").read_text())
CREATES = {  # examples/: what a fresh account gets (the group the CI user joins exists)
    "IAMRole <b>team-a/web-ec2</b>",
    "IAMRole <b>team-a/partner-audit</b>",
    "IAMUser <b>team-a/ci-deployer</b>",
}


@pytest.fixture(scope="module")
def account() -> Iterator[moto.MotoServer]:
    """A moto server of its own: examples/ names roles other aws tests may have made."""
    with moto.running() as server:
        iam = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing"
        ).client("iam", region_name="us-east-1", endpoint_url=server.url)
        iam.create_group(GroupName="deployers")  # examples/ci-user.yaml joins it
        yield server


# The examples a plan needs no cluster facts for (the IRSA role's trust needs the cluster's OIDC
# issuer, which is the plan's business, not the CI step's).
EXAMPLES = ("00-namespace.yaml", "00-platform-namespace.yaml", "ec2-instance-role.yaml",
            "cross-account-role.yaml", "ci-user.yaml", "platform-boundary-policy.yaml",
            "lambda-role.yaml")  # fmt: skip


def _repository(path: Path, extra: dict[str, str] | None = None) -> Path:
    """A team's repository: examples as deploy/iam/, plus `extra` files."""
    manifests = path / "deploy" / "iam"
    manifests.mkdir(parents=True)
    for name in EXAMPLES:
        shutil.copy(ROOT / "examples" / name, manifests / name)
    for name, text in (extra or {}).items():
        (manifests / name).write_text(text)
    return path


def _valid_sarif(path: Path) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(path.read_text())
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert log["version"] == "2.1.0"
    return log


def test_github_action_plans_comments_lints_and_passes(
    account: moto.MotoServer, tmp_path: Path
) -> None:
    # With the IRSA example too: the operator's issuer comes in through the `oidc-issuer` input.
    irsa = (ROOT / "examples" / "irsa-role.yaml").read_text()
    workspace = _repository(tmp_path / "workspace", {"irsa-role.yaml": irsa})
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    with forge.running() as api:
        env = cirun.clean_env({**account.env, "GITHUB_REPOSITORY": "acme/iam",
                               "GITHUB_API_URL": api.github_url})  # fmt: skip
        run = cirun.run_action(
            {"paths": "deploy/iam/", "oidc-issuer": ISSUER},
            github={"token": api.token, "event": {"pull_request": {"number": 7}}},
            env=env,
            workspace=workspace,
            runner_temp=temp,
            uses_outputs={"actions/setup-python": {"python-path": sys.executable}},
        )
        comments = api.comments.get("acme/iam#7", [])
    assert run.failed is None, run.log()
    assert "rolekeeper 0.1.0 installed" in run.log()
    # plan: exit 2 (changes), Markdown with every create, posted once, in the job summary.
    assert run.steps["plan"]["exitcode"] == "2", run.log()
    plan = Path(run.steps["plan"]["file"]).read_text()
    assert plan.startswith("<!-- rolekeeper-plan -->\n")
    assert "invalid</code>" not in plan
    for obj in CREATES | {"IAMRole <b>team-a/uploader</b>"}:
        assert f"<code>+ create</code> {obj}" in plan, obj
    # The IRSA trust the operator will write, from the issuer the input named.
    assert f"{ISSUER.removeprefix('https://')}:sub" in plan
    assert "system:serviceaccount:team-a:uploader" in plan
    assert "**CreateRole** `RoleName=team-a-web-ec2`" in plan
    assert [c["body"] for c in comments] == [plan]
    assert plan in (temp / "step-summary.md").read_text()
    # lint: SARIF as the upload-sarif step receives it; its findings are the suppressed ones.
    assert run.steps["lint"]["exitcode"] == "0"
    uploaded = dict(run.used)
    upload = next(
        w for u, w in uploaded.items() if u.startswith("github/codeql-action/upload-sarif@")
    )
    assert upload == {"sarif_file": run.steps["lint"]["sarif"], "category": "rolekeeper"}
    log = _valid_sarif(Path(upload["sarif_file"]))
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"RK-USER-001", "RK-PERM-002"}
    assert all(r["suppressions"] for r in results)
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results} == {
        "deploy/iam/ci-user.yaml", "deploy/iam/platform-boundary-policy.yaml"}  # fmt: skip
    # Nothing was written into the checkout; the token was printed nowhere.
    assert sorted(p.name for p in workspace.iterdir()) == ["deploy"]
    assert api.token not in run.log()


ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
RISKY = (ROOT / "tests" / "unit" / "data" / "risky-role.yaml").read_text()


def test_the_script_fails_the_job_on_findings_and_keeps_the_reports(
    account: moto.MotoServer, tmp_path: Path
) -> None:
    """With fail-on high, a role any AWS account may assume fails the verdict; the plan (which
    fails on the same finding) is still written and the SARIF and Code Quality reports hold it."""
    venv = tmp_path / "venv"
    # The repository's own venv stands for an installed one (the install runs in the test above).
    venv.symlink_to(Path(sys.executable).parents[1])
    workspace = _repository(tmp_path / "workspace", {"risky.yaml": RISKY})
    env = cirun.clean_env({**account.env, "RK_VENV": str(venv), "RK_OUT": str(tmp_path / "out"),
                           "RK_PATHS": "deploy/iam/", "RK_FAIL_ON": "high"})  # fmt: skip

    def script(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(ROOT / "ci" / "rolekeeper-ci.sh"), command],
            cwd=workspace, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    for command in ("plan", "lint"):
        ran = script(command)
        assert ran.returncode == 0, ran.stderr  # the tool ran: the reports are there
    out = tmp_path / "out"
    assert (out / "plan.exitcode").read_text() == "1\n"
    assert "RK-TRUST-001" in (out / "plan.md").read_text()
    assert (out / "lint.exitcode").read_text() == "1\n"
    log = _valid_sarif(out / "rolekeeper.sarif")
    open_findings = [r for r in log["runs"][0]["results"] if not r.get("suppressions")]
    assert {r["ruleId"] for r in open_findings} == {"RK-TRUST-001", "RK-PERM-001"}
    quality = json.loads((out / "codequality.json").read_text())
    assert {(i["check_name"], i["location"]["path"]) for i in quality} == {
        ("RK-TRUST-001", "deploy/iam/risky.yaml"), ("RK-PERM-001", "deploy/iam/risky.yaml")}  # fmt: skip
    verdict = script("verdict")
    assert verdict.returncode == 1
    assert "rolekeeper plan failed (exit 1)" in verdict.stdout
    assert "unsuppressed findings at or above --fail-on high" in verdict.stdout


def test_gitlab_jobs_fetch_the_commit_plan_with_an_id_token_and_note_the_merge_request(
    account: moto.MotoServer, tmp_path: Path
) -> None:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    project = _repository(tmp_path / "project")
    spec_inputs = {"ref": head, "repository": str(ROOT), "paths": "deploy/iam/",
                   "aws-role-arn": "arn:aws:iam::123456789012:role/rolekeeper-plan"}  # fmt: skip
    _, jobs = cirun.load_gitlab(spec_inputs)
    # No static keys: the plan must get its credentials from the ID token (moto answers
    # AssumeRoleWithWebIdentity; EC2 metadata is off, so there is no other source).
    aws = {k: v for k, v in account.env.items() if "ACCESS_KEY" not in k}
    with forge.running() as api:
        env = cirun.clean_env({**aws, "CI_API_V4_URL": api.gitlab_url, "CI_PROJECT_ID": "42",
                               "CI_MERGE_REQUEST_IID": "3", "PLAN_COMMENT_TOKEN": api.token,
                               "CI_PIPELINE_SOURCE": "merge_request_event"})  # fmt: skip
        plan_job = cirun.run_gitlab_job(
            jobs, "rolekeeper-plan", env=env, project_dir=project, id_token="header.claims.sig"
        )
        notes = api.comments.get("42#3", [])
    assert plan_job.returncode == 0, plan_job.output
    assert "rolekeeper 0.1.0 installed" in plan_job.output
    assert "exit 2 (0 nothing changes, 2 changes" in plan_job.output
    out = project / ".rolekeeper" / "out"
    plan = (out / "plan.md").read_text()
    for obj in CREATES:
        assert f"<code>+ create</code> {obj}" in plan, obj
    assert [n["body"] for n in notes] == [plan]
    # The token file lived only while the plan ran, outside the artifacts.
    assert not list(project.rglob("token"))
    assert "header.claims.sig" not in plan_job.output and api.token not in plan_job.output
    # The lint job: its before_script is the plan job's (both extend .rolekeeper), so only its
    # script runs here, in the same project, with the venv the plan job installed.
    lint_job = cirun.resolve(jobs, "rolekeeper-lint")
    assert lint_job["before_script"] == cirun.resolve(jobs, "rolekeeper-plan")["before_script"]
    lint_only = {**jobs, "rolekeeper-lint": {**lint_job, "before_script": []}}
    linted = cirun.run_gitlab_job(
        lint_only, "rolekeeper-lint", env=env, project_dir=project, id_token=""
    )
    assert linted.returncode == 0, linted.output
    assert json.loads((out / "codequality.json").read_text()) == []  # only suppressed findings
    _valid_sarif(out / "rolekeeper.sarif")
    for artifact in [*lint_job["artifacts"]["paths"], lint_job["artifacts"]["reports"]["codequality"],
                     *cirun.resolve(jobs, "rolekeeper-plan")["artifacts"]["paths"]]:  # fmt: skip
        assert (project / artifact).is_file(), artifact
