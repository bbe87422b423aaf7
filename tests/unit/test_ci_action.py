"""The CI step: action.yml and the GitLab template call ci/rolekeeper-ci.sh, pinned, and only it.

What the files must hold (every action pinned by commit, no expression in a shell line, the same
commands on both platforms, every setting read by the script), the script's refusals and
verdicts, the comment poster against a local stand-in of the GitHub and GitLab APIs, and the
Code Quality conversion. tests/aws/test_ci_script.py runs the steps themselves on a moto server.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from controller.review.lint import lint
from tests.harness import cirun, forge

ROOT = cirun.ROOT
RISKY = (ROOT / "tests" / "unit" / "data" / "risky-role.yaml").read_text()  # two critical findings
SCRIPT = ROOT / "ci" / "rolekeeper-ci.sh"
POSTER = ROOT / "ci" / "post_comment.py"
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@[0-9a-f]{40}$")
# Our own action in docs: no release commit exists to name yet; docs/plan.md says so.
OWN_PLACEHOLDER = "rolekeeper/rolekeeper@<commit>"
COMMANDS = {"install", "plan", "lint", "verdict"}


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _uses_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\s*(- )?uses:", line)]


def _script_reads() -> str:
    return "\n".join(p.read_text() for p in (SCRIPT, POSTER))


# ------------------------------------------------------------------------------ action.yml


def test_every_action_is_pinned_by_commit_with_its_tag() -> None:
    lines = _uses_lines(cirun.ACTION.read_text())
    assert len(lines) == 2  # setup-python, upload-sarif
    for line in lines:
        ref = line.split("uses:")[1].split("#")[0].strip()
        assert PINNED.match(ref), line
        assert re.search(r"#\s*v\d+\.\d+\.\d+\s*$", line), (
            f"name the tag it was resolved from: {line}"
        )


def test_docs_workflows_pin_every_action() -> None:
    text = (ROOT / "docs" / "plan.md").read_text()
    lines = _uses_lines(text)
    assert len(lines) >= 10, "docs/plan.md shows the workflows"
    pins = {}
    for line in [*lines, *_uses_lines(cirun.ACTION.read_text())]:
        ref = line.split("uses:")[1].split("#")[0].strip()
        assert PINNED.match(ref) or ref == OWN_PLACEHOLDER, line
        assert re.search(r"#\s*v\d+\.\d+\.\d+", line), line
        name, _, sha = ref.partition("@")
        assert pins.setdefault(name, sha) == sha, f"{name} pinned to two commits"
    assert "YOUR-ORG/rolekeeper" not in text  # the old placeholder install line


def test_the_action_runs_only_the_script_with_inputs_as_environment() -> None:
    action = cirun.load_action()
    assert action["runs"]["using"] == "composite"
    commands = []
    for step in action["runs"]["steps"]:
        if "uses" in step:
            continue
        assert step["shell"] == "bash"
        match = re.fullmatch(
            r'"\$GITHUB_ACTION_PATH/ci/rolekeeper-ci\.sh" (\w+)( github)?', step["run"]
        )
        assert match, f"a run step calls the script and nothing else: {step['run']!r}"
        commands.append(match.group(1))
        assert "${{" not in step["run"]  # expressions only in env: no injection into the shell
        for name in step.get("env", {}):
            assert name.startswith("RK_") and re.search(rf"\b{name}\b", _script_reads()), name
    assert commands == ["install", "plan", "comment", "lint", "verdict"]


def test_the_script_is_executable_in_git() -> None:
    # action.yml runs it by path, so a checkout of the action must get the executable bit.
    staged = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-s", "ci/rolekeeper-ci.sh"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert staged.startswith("100755 "), staged


def test_every_input_is_declared_and_used() -> None:
    action = cirun.load_action()
    text = cirun.ACTION.read_text()
    used = set(re.findall(r"inputs\.([A-Za-z0-9_-]+)", text.split("\nruns:")[1]))
    assert used == set(action["inputs"])
    for name, spec in action["inputs"].items():
        assert spec.get("description"), name


def test_sarif_upload_and_outputs_come_from_the_lint_step() -> None:
    action = cirun.load_action()
    upload = next(s for s in action["runs"]["steps"] if "upload-sarif" in s.get("uses", ""))
    assert upload["with"]["sarif_file"] == "${{ steps.lint.outputs.sarif }}"
    assert action["outputs"]["sarif-file"]["value"] == "${{ steps.lint.outputs.sarif }}"
    assert action["outputs"]["plan-exitcode"]["value"] == "${{ steps.plan.outputs.exitcode }}"


# ------------------------------------------------------------------------- GitLab template


def test_gitlab_template_fetches_a_pinned_commit_and_runs_the_same_commands() -> None:
    sha = "0" * 40
    spec, jobs = cirun.load_gitlab({"ref": sha})
    assert "default" not in spec["ref"], "the commit must be given, never defaulted"
    assert re.fullmatch(spec["ref"]["regex"], sha) and not re.fullmatch(
        spec["ref"]["regex"], "main"
    )
    with pytest.raises(AssertionError, match="fails"):
        cirun.load_gitlab({"ref": "v0.1.0"})
    base = jobs[".rolekeeper"]
    assert base["variables"]["RK_REF"] == sha
    fetch = "\n".join(base["before_script"])
    assert 'fetch -q --depth 1 "$RK_REPOSITORY" "$RK_REF"' in fetch
    assert base["before_script"][-1] == 'bash "$RK_HOME/ci/rolekeeper-ci.sh" install'
    commands = []
    for name in ("rolekeeper-lint", "rolekeeper-plan"):
        job = cirun.resolve(jobs, name)
        assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
        for line in job["script"]:
            match = re.fullmatch(r'bash "\$RK_HOME/ci/rolekeeper-ci\.sh" (\w+)( gitlab)?', line)
            assert match, line
            commands.append(match.group(1))
        own_lines = "\n".join([*job["before_script"], *job["script"]])
        for variable in job["variables"]:
            assert variable.startswith(("RK_", "AWS_")), variable
            read = re.search(rf"\b{variable}\b", _script_reads()) or f'"${variable}"' in own_lines
            assert not variable.startswith("RK_") or read, f"{variable} is read by nothing"
    assert set(commands) | {"install"} == COMMANDS | {"comment"}
    # Only the plan job holds an AWS identity; lint is offline.
    assert "id_tokens" not in cirun.resolve(jobs, "rolekeeper-lint")
    plan = cirun.resolve(jobs, "rolekeeper-plan")
    assert plan["id_tokens"] == {"RK_WEB_IDENTITY_TOKEN": {"aud": "sts.amazonaws.com"}}
    lint_job = cirun.resolve(jobs, "rolekeeper-lint")
    assert lint_job["artifacts"]["reports"]["codequality"] == ".rolekeeper/out/codequality.json"


def test_gitlab_inputs_are_declared_and_used() -> None:
    header, _, jobs_text = cirun.GITLAB.read_text().partition("\n---\n")
    declared = set(yaml.safe_load(header)["spec"]["inputs"])
    assert set(cirun.GL_INPUT.findall(jobs_text)) == declared
    with pytest.raises(AssertionError, match="does not declare"):
        cirun.load_gitlab({"ref": "0" * 40, "bogus": "x"})


# ------------------------------------------------------------------------- the script alone


def _script(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=cirun.clean_env(env or {}), cwd=cwd,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("command", "env", "message"),
    [
        ("plan", {"RK_PATHS": ""}, "RK_PATHS is empty"),
        ("lint", {"RK_PATHS": "deploy/ -rf"}, "'-rf' is not a path"),
        ("plan", {"RK_PATHS": "x", "RK_FAIL_ON": "severe"}, "'severe' is not one of"),
        ("install", {"RK_VERSION": "0.1.0"}, "RK_SHA256 must be the sha256"),
        (
            "install",
            {"RK_WHEEL": "http://example.invalid/r.whl", "RK_SHA256": "a" * 64},
            "only an https:// URL",
        ),
        ("install", {"RK_VERSION": "1; rm -rf /", "RK_SHA256": "a" * 64}, "is not a version"),
        ("comment", {}, "say github or gitlab"),
        ("deploy", {}, "usage:"),
    ],
)
def test_script_refuses_bad_settings(
    tmp_path: Path, command: str, env: dict[str, str], message: str
) -> None:
    result = _script(
        command, env={"RK_VENV": str(tmp_path / "venv"), "RK_OUT": str(tmp_path), **env}
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "venv").exists()  # refused before anything was made


def test_install_refuses_a_wheel_with_another_hash(tmp_path: Path) -> None:
    wheel = tmp_path / "rolekeeper-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not the wheel you pinned")
    result = _script("install", env={"RK_VENV": str(tmp_path / "venv"), "RK_WHEEL": str(wheel),
                                     "RK_SHA256": "0" * 64, "RUNNER_TEMP": str(tmp_path)})  # fmt: skip
    assert result.returncode == 1
    assert "does not have the sha256 RK_SHA256 names" in result.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize(
    ("plan", "lint_code", "fails", "says"),
    [
        ("2", "0", False, ""),
        ("0", None, False, ""),
        ("1", "0", True, "rolekeeper plan failed (exit 1)"),
        ("2", "1", True, "unsuppressed findings at or above --fail-on high"),
        (None, "2", True, "could not be linted"),
    ],
)
def test_verdict(
    tmp_path: Path, plan: str | None, lint_code: str | None, fails: bool, says: str
) -> None:
    if plan is not None:
        (tmp_path / "plan.exitcode").write_text(plan + "\n")
    if lint_code is not None:
        (tmp_path / "lint.exitcode").write_text(lint_code + "\n")
    result = _script("verdict", env={"RK_OUT": str(tmp_path), "RK_FAIL_ON": "high"})
    assert result.returncode == (1 if fails else 0), result.stdout + result.stderr
    assert says in result.stdout


def test_verdict_without_any_run_is_an_error(tmp_path: Path) -> None:
    result = _script("verdict", env={"RK_OUT": str(tmp_path)})
    assert result.returncode == 1
    assert "neither plan nor lint ran" in result.stderr


# ---------------------------------------------------------------------- the comment poster

PLAN = "<!-- rolekeeper-plan -->\n### Rolekeeper plan\n\n**1 to create**\n"


def _post(platform: str, plan: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(POSTER), platform, str(plan)], env=cirun.clean_env(env),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _github_env(api: forge.Forge, pr: str = "7") -> dict[str, str]:
    return {"GITHUB_API_URL": api.github_url, "GITHUB_REPOSITORY": "acme/iam", "RK_PR": pr,
            "RK_GITHUB_TOKEN": api.token, "GITHUB_ACTIONS": "true"}  # fmt: skip


def _gitlab_env(api: forge.Forge) -> dict[str, str]:
    return {"CI_API_V4_URL": api.gitlab_url, "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "3",
            "RK_GITLAB_TOKEN": api.token}  # fmt: skip


@pytest.mark.parametrize("platform", ["github", "gitlab"])
def test_one_plan_comment_per_pull_request_edited_on_each_push(
    tmp_path: Path, platform: str
) -> None:
    plan = tmp_path / "plan.md"
    with forge.running() as api:
        env = _github_env(api) if platform == "github" else _gitlab_env(api)
        key = "acme/iam#7" if platform == "github" else "42#3"
        # Someone else's comment that starts with the marker: never edited.
        spoof = "<!-- rolekeeper-plan -->\nlooks like a plan"
        api.add(key, spoof, login="mallory", user_id=99)
        plan.write_text(PLAN)
        first = _post(platform, plan, env)
        assert first.returncode == 0, first.stderr
        assert "posted the plan" in first.stdout
        plan.write_text(PLAN.replace("1 to create", "2 to create"))
        second = _post(platform, plan, env)
        assert second.returncode == 0, second.stderr
        assert "edited the plan" in second.stdout
        bodies = [c["body"] for c in api.comments[key]]
        assert bodies == [spoof, PLAN.replace("1 to create", "2 to create")]
        edit = "PATCH" if platform == "github" else "PUT"
        assert [m for m, _ in api.writes()] == ["POST", edit]
        for result in (first, second):
            assert api.token not in result.stdout + result.stderr


def test_our_earlier_comment_is_found_past_the_first_page(tmp_path: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    with forge.running() as api:
        for i in range(150):
            api.add(
                "acme/iam#7",
                PLAN if i == 120 else f"comment {i}",
                login="dev" if i != 120 else forge.BOT,
            )
        result = _post("github", plan, _github_env(api))
        assert result.returncode == 0, result.stderr
        assert [m for m, _ in api.writes()] == ["PATCH"]
        assert len(api.comments["acme/iam#7"]) == 150
        pages = [p for m, p, _ in api.requests if m == "GET"]
        assert len(pages) == 2


def test_a_read_only_token_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    with forge.running() as api:
        api.refuse_writes = 403
        result = _post("github", plan, _github_env(api))
    assert result.returncode == 0
    assert result.stderr.startswith("::warning::rolekeeper-ci: the plan could not be posted")
    assert "HTTP 403 Resource not accessible by integration" in result.stderr
    assert api.token not in result.stderr


@pytest.mark.parametrize(
    ("env", "code", "says"),
    [
        ({"RK_PR": ""}, 0, "no pull request number"),
        ({"RK_PR": "7; echo"}, 1, "RK_PR must be a number"),
        ({"GITHUB_REPOSITORY": "acme/iam/../x"}, 1, "GITHUB_REPOSITORY must be OWNER/REPO"),
        ({"GITHUB_API_URL": "http://api.example.com"}, 1, "must be https://"),
        ({"RK_GITHUB_TOKEN": ""}, 0, "no token"),
    ],
)
def test_the_poster_refuses_what_it_must_not_use(
    tmp_path: Path, env: dict[str, str], code: int, says: str
) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    with forge.running() as api:
        result = _post("github", plan, {**_github_env(api), **env})
        assert api.requests == []
    assert result.returncode == code
    assert says in result.stderr


def test_no_plan_no_comment(tmp_path: Path) -> None:
    with forge.running() as api:
        result = _post("github", tmp_path / "missing.md", _github_env(api))
        assert api.requests == []
    assert result.returncode == 0
    assert "no plan to post" in result.stdout


def test_a_plan_longer_than_a_comment_is_cut_at_an_object() -> None:
    poster = _module(POSTER)
    block = "<details>\n<summary>x</summary>\n\n" + "y" * 1000 + "\n</details>\n"
    body = "<!-- rolekeeper-plan -->\n" + block * 100
    cut = poster.fit(body, 65_536)
    assert len(cut) <= 65_536
    assert cut.count("<details>") == cut.count("</details>") > 50
    assert "more than a comment holds" in cut
    assert poster.fit(PLAN, 65_536) == PLAN


# ------------------------------------------------------------------------- Code Quality


def test_sarif_becomes_a_gitlab_code_quality_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codequality = _module(ROOT / "ci" / "codequality.py")
    monkeypatch.chdir(tmp_path)
    Path("deploy").mkdir()
    Path("deploy/risky.yaml").write_text(RISKY)
    # The example CI user has one finding, suppressed with a reason: not a Code Quality issue.
    Path("deploy/ci-user.yaml").write_text((ROOT / "examples" / "ci-user.yaml").read_text())
    code, sarif = lint(["deploy/"], "sarif", "high")
    assert code == 1
    log: dict[str, Any] = json.loads(sarif)
    suppressed = [r for r in log["runs"][0]["results"] if r.get("suppressions")]
    assert suppressed
    issues = codequality.issues(log)
    assert {(i["check_name"], i["severity"], i["location"]["path"], i["location"]["lines"]["begin"])
            for i in issues} == {("RK-TRUST-001", "blocker", "deploy/risky.yaml", 12),
                                 ("RK-PERM-001", "blocker", "deploy/risky.yaml", 18)}  # fmt: skip
    assert len({i["fingerprint"] for i in issues}) == len(issues)
    for issue in issues:
        assert set(issue) >= {"description", "check_name", "fingerprint", "severity", "location"}
    # Lines moved: the same findings keep their fingerprints.
    Path("deploy/risky.yaml").write_text("# a comment\n" + RISKY)
    moved = codequality.issues(json.loads(lint(["deploy/"], "sarif")[1]))
    assert {i["fingerprint"] for i in moved} == {i["fingerprint"] for i in issues}
    assert {i["location"]["lines"]["begin"] for i in moved} == {13, 19}
    assert [codequality.severity(s) for s in ("9.5", "8.0", "5.5", "3.0", "0.1")] == [
        "blocker",
        "critical",
        "major",
        "minor",
        "info",
    ]
