"""A local stand-in for the comment APIs of GitHub and GitLab, for ci/post_comment.py's tests.

Serves, over HTTP on 127.0.0.1, exactly the calls the CI script makes: GitHub's issue comments
(list, create, edit) and GitLab's merge request notes (list, create, edit) plus `GET /user`.
It checks the token header, pages lists 100 at a time as both APIs do, and records every
request, so a test sees what the script sent and what a pull request ends up carrying. What it
does not model (rate limits, GitHub's comment size check, permissions beyond one token) is
noted where a test relies on the script instead.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT = "github-actions[bot]"
GITLAB_BOT_ID = 7


@dataclass
class Forge:
    """State of the fake: comments per (repo or project, number), the requests seen."""

    token: str
    port: int = 0
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    refuse_writes: int | None = None  # an HTTP status for every POST/PATCH/PUT (e.g. 403)
    _ids: int = 100

    @property
    def github_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gitlab_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v4"

    def thread(self, key: str) -> list[dict[str, Any]]:
        return self.comments.setdefault(key, [])

    def add(self, key: str, body: str, *, login: str = BOT, user_id: int = GITLAB_BOT_ID) -> int:
        self._ids += 1
        self.thread(key).append({
            "id": self._ids, "body": body, "user": {"login": login}, "author": {"id": user_id},
            "html_url": f"https://github.example/{key}#issuecomment-{self._ids}",
        })  # fmt: skip
        return self._ids

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if m != "GET"]


_GH_LIST = re.compile(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments")
_GH_EDIT = re.compile(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)")
_GL_LIST = re.compile(r"/api/v4/projects/(\d+)/merge_requests/(\d+)/notes")
_GL_EDIT = re.compile(r"/api/v4/projects/(\d+)/merge_requests/(\d+)/notes/(\d+)")


def _handler(forge: Forge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet: the test reads forge.requests
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            forge.requests.append((method, url.path, body))
            github = self.headers.get("Authorization") == f"Bearer {forge.token}"
            gitlab = self.headers.get("PRIVATE-TOKEN") == forge.token
            if not (github or gitlab):
                self._send(401, {"message": "Bad credentials"})
                return
            if method != "GET" and forge.refuse_writes:
                self._send(
                    forge.refuse_writes, {"message": "Resource not accessible by integration"}
                )
                return
            query = parse_qs(url.query)
            page, per_page = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["20"])[0])
            if method == "GET" and url.path == "/api/v4/user":
                self._send(200, {"id": GITLAB_BOT_ID, "username": "project_1_bot"})
            elif (m := _GH_LIST.fullmatch(url.path) or _GL_LIST.fullmatch(url.path)) is not None:
                key = f"{m.group(1)}#{m.group(2)}"
                if method == "GET":
                    items = forge.thread(key)[(page - 1) * per_page : page * per_page]
                    self._send(200, items)
                elif method == "POST" and body is not None:
                    new = forge.add(key, body["body"])
                    self._send(201, next(c for c in forge.thread(key) if c["id"] == new))
                else:
                    self._send(405, {"message": "no"})
            elif (m := _GH_EDIT.fullmatch(url.path) or _GL_EDIT.fullmatch(url.path)) is not None:
                wanted = int(m.group(m.lastindex or 0))
                found = [c for t in forge.comments.values() for c in t if c["id"] == wanted]
                if not found or method not in {"PATCH", "PUT"} or body is None:
                    self._send(404, {"message": "Not Found"})
                    return
                found[0]["body"] = body["body"]
                self._send(200, found[0])
            else:
                self._send(404, {"message": "Not Found"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler


@contextmanager
def running(token: str = "forge-test-token") -> Iterator[Forge]:
    """A fake forge API on a free port of 127.0.0.1, stopped on exit."""
    forge = Forge(token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(forge))
    forge.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield forge
    finally:
        server.shutdown()
        server.server_close()
