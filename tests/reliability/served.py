"""A served agent (`seamless-agent serve`, started by the harness's AgentProcess), driven
over HTTP.

`ServedAgent.start(data_dir)` starts the process with a config file, waits for /healthz
and the admin token; `kill()` is `kill -9`, `restart()` starts it again on the same data
dir and port. Everything else goes through the public API, as a user's script would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from store.models import FINISHED_RUN_STATUSES, Role
from store.store import Store
from tests.harness import AgentProcess
from tests.helpers import free_port
from tests.reliability.netns import Netns

FINAL = {status.value for status in FINISHED_RUN_STATUSES}


def _admin_token(data_dir: Path) -> str:
    """The admin token file a served agent writes on its first start ("": not yet); made
    here (as the agent would) for a database made beforehand, which may hold tokens."""
    path = data_dir / "admin-token"
    if not path.exists() and not (data_dir / "seamless.db").exists():
        return ""
    if not path.exists():
        store = Store(data_dir / "seamless.db")
        try:
            token = store.create_token(f"admin-{uuid.uuid4().hex[:6]}", Role.admin)[0]
        finally:
            store.close()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
    return path.read_text().strip()


@dataclass
class ServedAgent:
    """`seamless-agent serve` through the harness's starter (AgentProcess): its config
    file holds `max_parallel`, `docker_host` and `config` (more AgentConfig fields)."""

    data_dir: Path
    port: int
    token: str
    max_parallel: int = 4
    docker_host: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # more AgentConfig fields
    # the network namespace it runs in (tests/reliability/netns.py: a second engine's);
    # its port is forwarded from the host's loopback, so `url` works from the test as usual
    netns: Netns | None = None
    process: AgentProcess | None = field(default=None, repr=False)
    generation: int = 0

    # -- process --------------------------------------------------------------------------
    @classmethod
    def start(cls, data_dir: Path, *, max_parallel: int = 4,
              docker_host: str | None = None, config: dict[str, Any] | None = None,
              netns: Netns | None = None) -> ServedAgent:
        data_dir.mkdir(parents=True, exist_ok=True)
        agent = cls(data_dir, free_port(), _admin_token(data_dir), max_parallel, docker_host,
                    config or {}, netns)
        agent.spawn()
        return agent

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc if self.process is not None else None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def settings(self) -> dict[str, Any]:
        return {"executor": "docker", "poll_enabled": False, "log_level": "info",
                "max_parallel_runs": self.max_parallel,
                **({"docker_host": self.docker_host} if self.docker_host else {}),
                **self.config}

    def spawn(self) -> None:
        self.generation += 1
        if self.netns is not None:
            self.netns.forward(self.port)
        workdir = self.data_dir.parent / f"agent-{self.port}"
        workdir.mkdir(exist_ok=True)
        self.process = AgentProcess(workdir, self.data_dir, self.port, self.settings(),
                                    wrap=self.netns.command if self.netns else None)
        self.process.start()
        self.token = self.token or self.process.admin_token()

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process is not None:
            self.process.kill()

    def restart(self) -> None:
        self.kill()
        self.spawn()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def own_log(self) -> str:
        """Everything every start of the process wrote (stderr and the access log)."""
        if self.process is None or not self.process.log_path.exists():
            return ""
        return self.process.log_path.read_text(errors="replace")

    def integrity_check(self) -> str:
        conn = sqlite3.connect(self.data_dir / "seamless.db")
        try:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            conn.close()

    # -- API --------------------------------------------------------------------------------
    def client(self, token: str | None = "admin", timeout: float = 30) -> httpx.Client:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'admin' else token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def call(self, method: str, path: str, expect: int | None = None, **kw: Any) -> Any:
        with self.client() as c:
            resp = c.request(method, path, **kw)
        if expect is not None:
            assert resp.status_code == expect, (method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def add_pipeline(self, name: str, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "staging": {"kind": "none"}, "production": {"kind": "none"},
                **fields}
        return self.call("POST", "/api/v1/pipelines", 201, json=body)  # type: ignore[no-any-return]

    def add_service(self, name: str, pipeline: str, repo_url: str,
                    **fields: Any) -> dict[str, Any]:
        body = {"name": name, "pipeline": pipeline, "repo_url": repo_url, "dockerfile": None,
                **fields}
        return self.call("POST", "/api/v1/services?check=false", 201,  # type: ignore[no-any-return]
                         json=body)

    def trigger(self, service: str, sha: str, kind: str = "full") -> dict[str, Any]:
        return self.call("POST", f"/api/v1/services/{service}/trigger",  # type: ignore[no-any-return]
                         201, json={"sha": sha, "kind": kind})

    def run(self, run_id: int) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/runs/{run_id}", 200)  # type: ignore[no-any-return]

    def runs(self) -> list[dict[str, Any]]:
        return self.call("GET", "/api/v1/runs?limit=500", 200)["items"]  # type: ignore[no-any-return]

    def wait_run(self, run_id: int, until: Callable[[dict[str, Any]], bool] | None = None,
                 timeout: float = 120) -> dict[str, Any]:
        check = until or (lambda r: r["status"] in FINAL)
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if check(run):
                return run
            if time.monotonic() > deadline:
                stages = [(s["name"], s["status"]) for s in run["stages"]]
                raise AssertionError(f"run {run_id} still {run['status']}: {stages}")
            time.sleep(0.1)

    def log_lines(self, run_id: int, stage: str) -> list[str]:
        """Every stored line of a stage, paged through the API."""
        lines: list[str] = []
        after = None
        while True:
            params: dict[str, Any] = {"stage": stage, "limit": 1000}
            if after:
                params["after"] = after
            page = self.call("GET", f"/api/v1/runs/{run_id}/logs", 200, params=params)
            lines.extend(line["text"] for line in page["lines"])
            after = page.get("next_cursor")
            if not page["lines"] or not after:
                return lines


def stage(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in run["stages"] if s["name"] == name)


# -- GitHub webhooks ---------------------------------------------------------------------

def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_payload(repo_url: str, sha: str, *, branch: str = "main",
                 message: str = "a change") -> dict[str, Any]:
    return {"ref": f"refs/heads/{branch}", "before": "0" * 39 + "1", "after": sha,
            "created": False, "deleted": False, "forced": False,
            "head_commit": {"id": sha, "message": message, "author": {"name": "dev"}},
            "commits": [], "repository": {"clone_url": repo_url}, "pusher": {"name": "dev"}}


def webhook_headers(body: bytes, secret: str | None, *, event: str = "push",
                    delivery: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
               "X-GitHub-Delivery": delivery or str(uuid.uuid4())}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return headers


def post_push(agent: ServedAgent, secret: str, payload: dict[str, Any],
              delivery: str | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(f"{agent.url}/webhooks/github", content=body, timeout=30,
                      headers=webhook_headers(body, secret, delivery=delivery))


def summary(run: dict[str, Any]) -> str:
    """A run's status, error and stages, for assertion messages."""
    stages = ", ".join(f"{s['name']}={s['status']}" + (f" ({s['error']})" if s["error"] else "")
                       for s in run["stages"])
    return f"run {run['id']} {run['status']} error={run['error']!r}: {stages}"


# -- cleanup ------------------------------------------------------------------------------

def service_names(agent: ServedAgent) -> list[str]:
    db = agent.data_dir / "seamless.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return [row[0] for row in conn.execute("SELECT name FROM services")]
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def remove_leftovers(client: Any, services: list[str]) -> None:
    for name in services:
        for container in client.containers.list(
                all=True, filters={"label": f"io.seamless.service={name}"}):
            try:
                container.remove(force=True)
            except Exception:
                pass
        for network in client.networks.list(names=[f"seamless-{name}-"]):
            if network.name.startswith(f"seamless-{name}-"):
                try:
                    network.remove()
                except Exception:
                    pass
        for image in client.images.list(name=f"seamless/{name}"):
            for tag in image.tags:
                try:
                    client.images.remove(tag, force=True)
                except Exception:
                    pass
