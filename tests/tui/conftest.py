"""A real agent on 127.0.0.1 over a seeded SQLite database, and the TUI pointed at it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from seamless_tui.app import SeamlessApp
from seamless_tui.client import AgentClient
from seamless_tui.config import UserConfig
from store.models import Role
from store.store import Store
from tests.helpers import free_port
from tests.tui.agent_server import AgentServer
from tests.tui.seed import FIXED_NOW, Seeded, seed


@dataclass
class LiveAgent:
    server: AgentServer
    seeded: Seeded
    tmp: Path

    @property
    def url(self) -> str:
        return self.server.url

    def http(self, role: Role = Role.admin) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, headers={
            "Authorization": f"Bearer {self.seeded.tokens[role]}"})

    def app(self, role: Role = Role.admin, **kwargs: Any) -> SeamlessApp:
        client = AgentClient(self.url, self.seeded.tokens[role])
        config = UserConfig(path=self.tmp / "tui.toml")
        return SeamlessApp(client, config=config, clock=lambda: FIXED_NOW, **kwargs)

    def restart(self) -> None:
        self.server.stop()
        self.server.start()


def start_live_agent(tmp_path: Path, image_repo: str = "seamless-tui-test") -> LiveAgent:
    store = Store(tmp_path / "seamless.db")
    seeded = seed(store, image_repo=image_repo)
    store.close()
    server = AgentServer(tmp_path, free_port()).start()
    return LiveAgent(server, seeded, tmp_path)


@pytest.fixture
def live_agent(tmp_path: Path) -> Iterator[LiveAgent]:
    live = start_live_agent(tmp_path)
    yield live
    live.server.stop()


async def wait_for(pilot: Any, predicate: Callable[[], object], what: str,
                   timeout: float = 10.0) -> None:
    """Let the app process messages until `predicate()` holds (streams are asynchronous)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def settle(pilot: Any) -> None:
    """Wait for the fetch workers (not the endless streams) and a repaint."""
    app = pilot.app
    for _ in range(200):
        busy = [w for w in app.workers if not w.is_finished
                and w.group not in ("events", "logs")]
        if not busy:
            break
        await pilot.pause(0.02)
    await pilot.pause()


Waiter = Callable[..., Awaitable[None]]
