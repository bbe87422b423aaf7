"""Post the plan on a GitHub pull request or GitLab merge request, editing the earlier one.

Run by `ci/rolekeeper-ci.sh comment github|gitlab` with the venv's Python; standard library
only. The comment this token posted before (first line `<!-- rolekeeper-plan -->`, same author)
is edited, so a pull request carries one plan however often it is pushed; a comment by anyone
else that starts with the marker is never touched. A comment that cannot be posted (a fork's
read-only token, a missing permission, the API down) is a warning, not a failure: the plan is in
the job summary and artifacts, and `rolekeeper-ci.sh verdict` decides the job. The token is
sent only in a request header, never printed, and only over HTTPS (plain HTTP to a loopback
address is allowed, for a local test server).
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

MARKER = "<!-- rolekeeper-plan -->"
LIMITS = {"github": 65_536, "gitlab": 1_000_000}  # characters a comment / note may hold
MAX_PAGES = 50  # of 100 comments: a pull request with more gets a new plan comment
TIMEOUT = 30


class ApiError(Exception):
    """A request the API refused or could not answer."""


class UsageError(Exception):
    """A setting that must not be used as it is (not a number, not HTTPS …): an error."""


class NothingToDo(Exception):
    """No pull/merge request to comment on (another event), or no token: a note, no error."""


def fit(body: str, limit: int) -> str:
    """The body cut to `limit` characters at an object's end (`</details>`), with a note."""
    if len(body) <= limit:
        return body
    note = (
        f"\n\n_The plan is {len(body):,} characters, more than a comment holds: it is cut here."
        " The whole plan is in the job summary and the job's artifacts._\n"
    )
    room = body[: limit - len(note)]
    end = room.rfind("\n</details>\n")
    cut = room[: end + len("\n</details>\n")] if end > 0 else room[: room.rfind("\n") + 1]
    return cut + note


def _api_base(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    loopback = parsed.hostname in {"127.0.0.1", "localhost", "::1"}
    if parsed.scheme != "https" and not (parsed.scheme == "http" and loopback):
        raise UsageError(f"the API URL must be https:// (got {url!r}): the token must not leak")
    return url.rstrip("/")


def _number(name: str, value: str) -> str:
    if not re.fullmatch(r"[0-9]{1,12}", value):
        raise UsageError(f"{name} must be a number, got {value[:40]!r}")
    return value


class Api:
    """JSON over HTTPS with one authentication header."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base, self.headers = base, headers

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={**self.headers, "Content-Type": "application/json",
                     "User-Agent": "rolekeeper-ci"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(f"{method} {path}: HTTP {exc.code} {_message(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(f"{method} {path}: {getattr(exc, 'reason', exc)}") from None
        return json.loads(raw) if raw else None

    def pages(self, path: str) -> list[Any]:
        items: list[Any] = []
        separator = "&" if "?" in path else "?"
        for page in range(1, MAX_PAGES + 1):
            batch = self.call("GET", f"{path}{separator}per_page=100&page={page}")
            if not isinstance(batch, list):
                raise ApiError(f"GET {path}: expected a list")
            items += batch
            if len(batch) < 100:
                break
        return items


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(exc.read() or b"{}")
    except ValueError:
        return ""
    message = answer.get("message", "") if isinstance(answer, dict) else ""
    return str(message)[:200]


def github(body: str, env: dict[str, str]) -> str:
    """Create or edit the plan comment on pull request RK_PR; returns what was done."""
    pr = env.get("RK_PR", "")
    if not pr:
        raise NothingToDo("no pull request number (RK_PR): nothing to comment on")
    pr = _number("RK_PR", pr)
    repo = env.get("GITHUB_REPOSITORY", "")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
        raise UsageError(f"GITHUB_REPOSITORY must be OWNER/REPO, got {repo[:80]!r}")
    token = env.get("RK_GITHUB_TOKEN", "")
    if not token:
        raise NothingToDo("no token (RK_GITHUB_TOKEN): the comment needs pull-requests: write")
    api = Api(
        _api_base(env.get("GITHUB_API_URL") or "https://api.github.com"),
        {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
         "X-GitHub-Api-Version": "2022-11-28"},
    )  # fmt: skip
    author = env.get("RK_COMMENT_AUTHOR") or "github-actions[bot]"
    ours = [
        c for c in api.pages(f"/repos/{repo}/issues/{pr}/comments")
        if str(c.get("body", "")).startswith(MARKER) and c.get("user", {}).get("login") == author
    ]  # fmt: skip
    if ours:
        done = api.call("PATCH", f"/repos/{repo}/issues/comments/{ours[-1]['id']}", {"body": body})
        return f"edited the plan comment {done.get('html_url', '')}"
    done = api.call("POST", f"/repos/{repo}/issues/{pr}/comments", {"body": body})
    return f"posted the plan comment {done.get('html_url', '')}"


def gitlab(body: str, env: dict[str, str]) -> str:
    """Create or edit the plan note on merge request CI_MERGE_REQUEST_IID."""
    iid = env.get("CI_MERGE_REQUEST_IID", "")
    if not iid:
        raise NothingToDo("no merge request (CI_MERGE_REQUEST_IID): nothing to comment on")
    iid = _number("CI_MERGE_REQUEST_IID", iid)
    project = _number("CI_PROJECT_ID", env.get("CI_PROJECT_ID", ""))
    token = env.get("RK_GITLAB_TOKEN", "")
    if not token:
        raise NothingToDo(
            "no token (RK_GITLAB_TOKEN): notes need an access token with the api scope "
            "(the job token cannot write them)"
        )
    api = Api(_api_base(env.get("CI_API_V4_URL", "")), {"PRIVATE-TOKEN": token})
    me = api.call("GET", "/user")
    notes = f"/projects/{project}/merge_requests/{iid}/notes"
    ours = [
        n for n in api.pages(f"{notes}?sort=asc&order_by=created_at")
        if str(n.get("body", "")).startswith(MARKER) and n.get("author", {}).get("id") == me["id"]
    ]  # fmt: skip
    if ours:
        api.call("PUT", f"{notes}/{ours[-1]['id']}", {"body": body})
        return f"edited the plan note {ours[-1]['id']} on merge request !{iid}"
    done = api.call("POST", notes, {"body": body})
    return f"posted the plan note {done.get('id', '')} on merge request !{iid}"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in LIMITS:
        print("usage: post_comment.py github|gitlab PLAN.md", file=sys.stderr)
        return 2
    platform, plan = argv
    path = Path(plan)
    body = path.read_text(encoding="utf-8") if path.is_file() else ""
    if not body.strip():
        print("rolekeeper-ci: no plan to post (the plan step wrote none: see its log)")
        return 0
    if not body.startswith(MARKER):
        body = f"{MARKER}\n{body}"
    env = dict(os.environ)
    try:
        post = github if platform == "github" else gitlab
        print(f"rolekeeper-ci: {post(fit(body, LIMITS[platform]), env)}")
    except NothingToDo as exc:
        print(f"rolekeeper-ci: no comment: {exc}", file=sys.stderr)
    except UsageError as exc:
        print(f"rolekeeper-ci: no comment: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        prefix = "::warning::" if env.get("GITHUB_ACTIONS") == "true" else "warning: "
        print(
            f"{prefix}rolekeeper-ci: the plan could not be posted ({exc}); it is in the job "
            "summary and artifacts. A pull request from a fork gets a read-only token: see "
            "docs/plan.md, Pull requests from forks.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
