"""Fixtures: an API served by real uvicorn on 127.0.0.1 over a real SQLite store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.api.app import create_app
from store.models import PipelineConfig, Role, ServiceConfig
from store.store import Store
from tests.api.server import ServerThread, StandInAgent


@dataclass
class LiveApi:
    server: ServerThread
    agent: Any
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


def add_tokens(store: Store) -> dict[Role, str]:
    return {role: store.create_token(f"{role.value}-token", role)[0] for role in Role}


def add_service(store: Store, name: str = "payments", **fields: Any) -> Any:
    try:
        store.get_pipeline("shop")
    except LookupError:
        store.create_pipeline(PipelineConfig(name="shop"))
    fields.setdefault("repo_url", f"https://github.com/acme/{name}.git")
    return store.create_service(ServiceConfig(name=name, pipeline="shop", **fields))


@contextlib.contextmanager
def serve_stand_in(path: Path, **app_options: Any) -> Iterator[LiveApi]:
    """The API over a real store and bus, with the recording stand-in engine."""
    store = Store(path / "seamless.db")
    agent = StandInAgent(store)
    tokens = add_tokens(store)
    server = ServerThread(create_app(agent, **app_options)).start()
    try:
        yield LiveApi(server, agent, tokens)
    finally:
        server.stop()
        store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LiveApi]:
    with serve_stand_in(tmp_path, ws_queue_events=200, ws_queue_logs=50) as live:
        yield live
