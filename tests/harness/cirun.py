"""Run action.yml's steps and the GitLab template's jobs here, as their runners would.

Not a general Actions or GitLab runner: just enough to execute the shell the two files hold,
with the environment they give it, so a test runs the commands CI runs rather than a copy.
GitHub: `${{ }}` expressions limited to dotted context lookups and `if:` conditions of the form
`a == 'x' && b == 'y'` (anything else fails loudly, which keeps action.yml that simple); each
`run:` goes to `bash --noprofile --norc -eo pipefail` as GitHub's `shell: bash` does, with
GITHUB_OUTPUT read back into step outputs; a `uses:` step is recorded, not run (the test
supplies setup-python's output and inspects upload-sarif's inputs). GitLab: `$[[ inputs.x ]]`
interpolated in the loaded YAML's strings, `extends:` merged, `$VAR` in variables expanded, `id_tokens` given a test value,
and `before_script` plus `script` run as one shell that stops at the first failing line, as
the runner does.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
GITLAB = ROOT / "ci" / "gitlab" / "rolekeeper.gitlab-ci.yml"
GH_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
GL_INPUT = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
_CONDITION = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*(==|!=)\s*'([^']*)'\s*")


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without anything CI or AWS would set, plus `extra`."""
    prefixes = ("RK_", "GITHUB_", "RUNNER_", "CI_", "AWS_", "PLAN_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**base, "AWS_EC2_METADATA_DISABLED": "true", **extra}


# ---------------------------------------------------------------------------- GitHub Actions


def load_action() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    return loaded


def lookup(expression: str, context: dict[str, Any]) -> str:
    """A `${{ }}` expression that names a context value (inputs.x, steps.id.outputs.x …)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*", expression):
        raise AssertionError(f"expression beyond a context lookup: {expression!r}")
    value: Any = context
    for part in expression.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return "" if value is None else str(value)


def substitute(text: str, context: dict[str, Any]) -> str:
    return GH_EXPR.sub(lambda m: lookup(m.group(1), context), text)


def condition(expression: str, context: dict[str, Any]) -> bool:
    """An `if:` of comparisons joined by &&."""
    result = True
    for term in expression.split("&&"):
        match = _CONDITION.fullmatch(term)
        if match is None:
            raise AssertionError(f"if: beyond `a == 'x' && …`: {expression!r}")
        name, op, literal = match.groups()
        equal = lookup(name, context) == literal
        result = result and (equal if op == "==" else not equal)
    return result


@dataclass
class ActionRun:
    """What running the action's steps did."""

    steps: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> outputs
    logs: list[tuple[str, int, str]] = field(default_factory=list)  # (step, exit code, output)
    used: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # uses:, with: (evaluated)
    failed: str | None = None  # the step that failed; later steps did not run

    def log(self) -> str:
        return "\n".join(f"--- {name} (exit {code})\n{out}" for name, code, out in self.logs)


def run_action(
    inputs: dict[str, str],
    *,
    github: dict[str, Any],
    env: dict[str, str],
    workspace: Path,
    runner_temp: Path,
    uses_outputs: dict[str, dict[str, str]],
) -> ActionRun:
    """Run action.yml's steps in `workspace`; `uses_outputs[action]` stands for a `uses:` step."""
    action = load_action()
    context: dict[str, Any] = {"github": github, "runner": {"temp": str(runner_temp)}, "steps": {}}
    declared = action["inputs"]
    unknown = set(inputs) - set(declared)
    if unknown:
        raise AssertionError(f"inputs the action does not declare: {sorted(unknown)}")
    context["inputs"] = {
        name: inputs.get(name, substitute(str(spec.get("default", "")), context))
        for name, spec in declared.items()
    }
    summary = runner_temp / "step-summary.md"
    result = ActionRun()
    for index, step in enumerate(action["runs"]["steps"]):
        name = step.get("id") or step.get("name") or f"step {index}"
        if "if" in step and not condition(step["if"], context):
            continue
        outputs: dict[str, str] = {}
        if "uses" in step:
            action_ref = step["uses"].split("@")[0]
            given = {k: substitute(str(v), context) for k, v in step.get("with", {}).items()}
            result.used.append((step["uses"], given))
            outputs = dict(uses_outputs.get(action_ref, {}))
        else:
            with tempfile.NamedTemporaryFile("r", dir=runner_temp, delete=False) as out_file:
                output_path = Path(out_file.name)
            step_env = {k: substitute(str(v), context) for k, v in step.get("env", {}).items()}
            process = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=workspace,
                env={**env, **step_env, "GITHUB_ACTION_PATH": str(ROOT),
                     "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp),
                     "GITHUB_OUTPUT": str(output_path), "GITHUB_STEP_SUMMARY": str(summary),
                     "GITHUB_ACTIONS": "true"},
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            result.logs.append((name, process.returncode, process.stdout + process.stderr))
            for line in output_path.read_text().splitlines():
                key, _, value = line.partition("=")
                outputs[key] = value
            output_path.unlink()
            if process.returncode != 0:
                result.failed = name
                break
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": outputs}
            result.steps[step["id"]] = outputs
    return result


# -------------------------------------------------------------------------------- GitLab CI


def load_gitlab(inputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the spec header, the jobs) with `inputs` (and the defaults) interpolated."""
    header_text, _, jobs_text = GITLAB.read_text().partition("\n---\n")
    spec = yaml.safe_load(header_text)["spec"]["inputs"]
    unknown = set(inputs) - set(spec)
    if unknown:
        raise AssertionError(f"inputs the template does not declare: {sorted(unknown)}")
    values = {}
    for name, declared in spec.items():
        if name not in inputs and "default" not in declared:
            raise AssertionError(f"input {name} has no default and was not given")
        values[name] = str(inputs.get(name, declared.get("default", "")))
        if "regex" in declared and not re.search(declared["regex"], values[name]):
            raise AssertionError(f"input {name}={values[name]!r} fails {declared['regex']}")

    def interpolate(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise AssertionError(f"$[[ inputs.{match.group(1)} ]] is not declared")
        return values[match.group(1)]

    def walk(node: Any) -> Any:
        # GitLab interpolates the strings of the loaded YAML, so a value stays a string
        # whatever it looks like (a commit of digits only is not a number).
        if isinstance(node, str):
            return GL_INPUT.sub(interpolate, node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {walk(key): walk(value) for key, value in node.items()}
        return node

    jobs: dict[str, Any] = walk(yaml.safe_load(jobs_text))
    return spec, jobs


def resolve(jobs: dict[str, Any], name: str) -> dict[str, Any]:
    """A job with its `extends:` merged in (hashes deep-merged, the job's own keys winning)."""
    job = jobs[name]
    if "extends" not in job:
        return dict(job)
    base = resolve(jobs, job["extends"])
    merged = {**base, **{k: v for k, v in job.items() if k != "extends"}}
    for key in ("variables",):
        merged[key] = {**base.get(key, {}), **job.get(key, {})}
    return merged


def expand(value: str, env: dict[str, str]) -> str:
    """GitLab's expansion of $VAR and ${VAR} in a variable's value (unknown: empty)."""
    return re.sub(
        r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))",
        lambda m: env.get(m.group(1) or m.group(2), ""),
        value,
    )


@dataclass
class JobRun:
    returncode: int
    output: str


def run_gitlab_job(
    jobs: dict[str, Any], name: str, *, env: dict[str, str], project_dir: Path, id_token: str
) -> JobRun:
    """Run job `name` in `project_dir` with the predefined variables in `env`."""
    job = resolve(jobs, name)
    job_env = {**env, "CI_PROJECT_DIR": str(project_dir)}
    for key, value in job.get("variables", {}).items():
        job_env[key] = expand(str(value), job_env)
    for key in job.get("id_tokens", {}):
        job_env[key] = id_token
    lines = [*job.get("before_script", []), *job["script"]]
    script = "set -eo pipefail\n" + "\n".join(lines) + "\n"
    process = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script], cwd=project_dir, env=job_env,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    return JobRun(process.returncode, process.stdout + process.stderr)
