"""Fixtures: the real agent (no polling) served by real uvicorn on 127.0.0.1; the pipeline
`add_service` makes runs its stages on the host (`executor: local`, an admin's per-pipeline
choice). Runs of the fake repository URLs used here fail at Prepare."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.api.app import create_app
from agent.runtime import Agent
from store.models import PipelineConfig, Role, ServiceConfig
from store.store import Store
from tests.harness import agent_config
from tests.harness.server import ServerThread


@dataclass
class LiveApi:
    server: ServerThread
    agent: Agent
    tokens: dict[Role, str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    def client(self, role: Role | None = Role.admin) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def runs(self, service: str | None = None) -> list[dict[str, Any]]:
        """The runs a user sees through the API, newest first."""
        with self.client(Role.viewer) as c:
            r = c.get("/api/v1/runs", params={"service": service} if service else {})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


def local_agent(data_dir: Path, **config: Any) -> Agent:
    """The real agent (executor auto: it uses the engine when there is one); stage commands
    of pipelines set to `executor: local` run as local subprocesses."""
    return Agent(agent_config(data_dir, executor="auto", **config))


def add_tokens(store: Store) -> dict[Role, str]:
    return {role: store.create_token(f"{role.value}-token", role)[0] for role in Role}


def add_service(store: Store, name: str = "payments", **fields: Any) -> Any:
    try:
        store.get_pipeline("shop")
    except LookupError:
        store.create_pipeline(PipelineConfig(name="shop", executor="local"))
    fields.setdefault("repo_url", f"https://github.com/acme/{name}.git")
    return store.create_service(ServiceConfig(name=name, pipeline="shop", **fields))


@contextlib.contextmanager
def serve_agent(path: Path, **app_options: Any) -> Iterator[LiveApi]:
    """The API over a real agent; the app's lifespan starts and stops it."""
    agent = local_agent(path / "data")
    tokens = add_tokens(agent.store)
    server = ServerThread(create_app(agent, **app_options)).start()
    try:
        yield LiveApi(server, agent, tokens)
    finally:
        server.stop()
        agent.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LiveApi]:
    with serve_agent(tmp_path, ws_queue_events=200, ws_queue_logs=50) as live:
        yield live
