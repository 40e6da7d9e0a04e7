"""A small fake of GitHub's REST API on 127.0.0.1, answering in GitHub's documented shapes.

Endpoints: GET /user (X-OAuth-Scopes), repository hooks (list/get/create/update/delete),
hook deliveries (list/get) and commit statuses, with GitHub's error replies: 401 bad
credentials, 403 missing scope (with X-Accepted-OAuth-Scopes), 404, 422 hook exists.
`prefix="/api/v3"` makes it look like GitHub Enterprise.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DOCS = "https://docs.github.com/rest"
HOOK_SCOPES = "admin:repo_hook, repo"
STATUS_SCOPES = "repo, repo:status"


@dataclass
class Recorded:
    method: str
    path: str
    body: Any


@dataclass
class FakeGitHub:
    prefix: str = ""
    # token → scopes; None means a fine-grained token (no X-OAuth-Scopes header at all)
    tokens: dict[str, list[str] | None] = field(default_factory=dict)
    repos: set[tuple[str, str]] = field(default_factory=set)
    hooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    deliveries: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    _next_id: int = 1000
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)
        return f"http://{host}:{port}{self.prefix}"

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(_Handler):
            github = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_delivery(self, hook_id: int, status_code: int, response_body: str,
                     event: str = "push") -> dict[str, Any]:
        """Record a delivery the way GitHub lists it (newest first)."""
        status = "OK" if 200 <= status_code < 300 else f"Invalid HTTP Response: {status_code}"
        delivery = {
            "id": self.new_id(), "guid": str(uuid.uuid4()),
            "delivered_at": "2024-05-01T12:00:00Z", "redelivery": False, "duration": 0.12,
            "status": status, "status_code": status_code, "event": event,
            "action": None, "installation_id": None, "repository_id": 4242,
            "throttled_at": None,
            "request": {"headers": {"X-GitHub-Event": event},
                        "payload": {"ref": "refs/heads/main"}},
            "response": {"headers": {"Content-Type": "application/json"},
                         "payload": response_body},
        }
        self.deliveries.setdefault(hook_id, []).insert(0, delivery)
        return delivery


class _Handler(BaseHTTPRequestHandler):
    github: FakeGitHub

    def log_message(self, *args: Any) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ----------------------------------------------------------------------------
    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        gh = self.github
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = self.path.split("?", 1)[0]
        if not path.startswith(gh.prefix):
            return self._reply(404, {"message": "Not Found", "documentation_url": DOCS})
        path = path[len(gh.prefix):]
        gh.requests.append(Recorded(method, path, body))
        auth = self.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else ""
        if token not in gh.tokens:
            return self._reply(401, {"message": "Bad credentials", "documentation_url": DOCS})
        scopes = gh.tokens[token]
        self._scope_headers = {} if scopes is None else {"X-OAuth-Scopes": ", ".join(scopes)}
        if path == "/user" and method == "GET":
            return self._reply(200, {"login": "octocat", "id": 1, "type": "User"},
                               self._scope_headers)
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)", path)
        if not m:
            return self._not_found()
        owner, repo, rest = m.groups()
        if (owner, repo) not in gh.repos:
            return self._not_found()
        if rest.startswith("/statuses/"):
            if not self._has_scope(scopes, STATUS_SCOPES):
                return None
            gh.statuses.append({"sha": rest.rsplit("/", 1)[1], **(body or {})})
            return self._reply(201, {"id": gh.new_id(), **(body or {})}, self._scope_headers)
        if rest.startswith("/hooks"):
            if not self._has_scope(scopes, HOOK_SCOPES):
                return None
            return self._hooks(method, owner, repo, rest, body)
        return self._not_found()

    def _not_found(self) -> None:
        self._reply(404, {"message": "Not Found", "documentation_url": DOCS}, self._scope_headers
                    if hasattr(self, "_scope_headers") else None)

    def _has_scope(self, scopes: list[str] | None, accepted: str) -> bool:
        if scopes is None or set(scopes) & {s.strip() for s in accepted.split(",")}:
            return True
        self._reply(403, {"message": "Must have admin rights to Repository.",
                          "documentation_url": DOCS},
                    {**self._scope_headers, "X-Accepted-OAuth-Scopes": accepted})
        return False

    # -- hooks ----------------------------------------------------------------------------------
    def _hooks(self, method: str, owner: str, repo: str, rest: str, body: Any) -> None:
        gh = self.github
        mine = {i: h for i, h in gh.hooks.items() if h["_repo"] == (owner, repo)}
        if rest == "/hooks" and method == "GET":
            return self._reply(200, [_public(h) for h in mine.values()], self._scope_headers)
        if rest == "/hooks" and method == "POST":
            url = (body or {}).get("config", {}).get("url")
            if any(h["config"]["url"] == url for h in mine.values()):
                return self._reply(422, {
                    "message": "Validation Failed",
                    "errors": [{"resource": "Hook", "code": "custom",
                                "message": "Hook already exists on this repository"}],
                    "documentation_url": DOCS}, self._scope_headers)
            hook_id = gh.new_id()
            gh.hooks[hook_id] = {
                "_repo": (owner, repo), "type": "Repository", "id": hook_id, "name": "web",
                "active": body.get("active", True), "events": body.get("events", ["push"]),
                "config": {"content_type": "form", **body["config"]},
                "url": f"{gh.url}/repos/{owner}/{repo}/hooks/{hook_id}",
                "created_at": "2024-05-01T12:00:00Z", "updated_at": "2024-05-01T12:00:00Z",
                "last_response": {"code": None, "status": "unused", "message": None}}
            return self._reply(201, _public(gh.hooks[hook_id]), self._scope_headers)
        m = re.fullmatch(r"/hooks/(\d+)(/deliveries(?:/(\d+))?)?", rest)
        if not m or int(m.group(1)) not in mine:
            return self._not_found()
        hook_id = int(m.group(1))
        if m.group(2):
            listed = gh.deliveries.get(hook_id, [])
            if m.group(3) is None:
                summary = [{k: v for k, v in d.items() if k not in ("request", "response")}
                           for d in listed]
                return self._reply(200, summary, self._scope_headers)
            found = [d for d in listed if d["id"] == int(m.group(3))]
            return (self._reply(200, found[0], self._scope_headers) if found
                    else self._not_found())
        if method == "GET":
            return self._reply(200, _public(gh.hooks[hook_id]), self._scope_headers)
        if method == "PATCH":
            hook = gh.hooks[hook_id]
            hook["config"].update(body.get("config", {}))
            hook.update({k: v for k, v in body.items() if k in ("active", "events")})
            return self._reply(200, _public(hook), self._scope_headers)
        if method == "DELETE":
            del gh.hooks[hook_id]
            return self._reply(204, None, self._scope_headers)
        return self._not_found()


def _public(hook: dict[str, Any]) -> dict[str, Any]:
    """What GitHub shows of a hook: never the secret itself."""
    shown = {k: v for k, v in hook.items() if not k.startswith("_")}
    config = dict(shown["config"])
    if "secret" in config:
        config["secret"] = "********"
    return {**shown, "config": config}
