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
from seamless_tui.widgets.log_view import LogView
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


def start_live_agent(tmp_path: Path, image_repo: str = "seamless-tui-test",
                     catalog: str = "catalog") -> LiveAgent:
    store = Store(tmp_path / "seamless.db")
    seeded = seed(store, image_repo=image_repo, catalog=catalog)
    store.close()
    server = AgentServer(tmp_path, free_port()).start()
    return LiveAgent(server, seeded, tmp_path)


@pytest.fixture
def live_agent(tmp_path: Path) -> Iterator[LiveAgent]:
    live = start_live_agent(tmp_path)
    yield live
    live.server.stop()


async def wait_for(pilot: Any, predicate: Callable[[], object], what: str,
                   timeout: float = 60.0) -> None:
    """Let the app process messages until `predicate()` holds (streams are asynchronous).
    Each step is a fetch from a real agent: the generous bound only detects a hang (under
    heavy load one answer has taken over 10 s)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


# Workers that run as long as their screen does: settling never waits for them to end.
_ENDLESS = ("events", "logs", "log-stream")


def _log_views_state(app: Any) -> tuple[bool, object]:
    """Whether every log view on screen is done loading, and what a repaint would show."""
    views = list(app.screen.query(LogView))
    done = all(v.loaded_once and v.fetching is None and not v._flush_scheduled
               and (not v.follow or v.scroll_offset.y == v.max_scroll_y)
               and (not v.show_vertical_scrollbar
                    or v.vertical_scrollbar.position == v.scroll_offset.y) for v in views)
    return done, [(v.virtual_size, v.scroll_offset, v.max_scroll_y, v.size) for v in views]


async def settle(pilot: Any, timeout: float = 60.0) -> None:
    """Wait until the screen stops moving: the fetch workers (not the endless streams) are
    done, every log view has its page, no live lines pending and sits at its end, and the
    log views' canvas and scroll position (the scrollbar is drawn from them) and the whole
    rendered screen are the same over two frames. The bound only detects a hang: under
    load a settle can take many seconds."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    previous: object = None
    while True:
        busy = [w for w in app.workers if not w.is_finished and w.group not in _ENDLESS]
        views_done, views = _log_views_state(app)
        state = (views, app.export_screenshot()) if not busy and views_done else None
        if state is not None and state == previous:
            break
        previous = state
        if time.monotonic() > deadline:
            raise AssertionError(f"the screen did not settle: busy workers {busy}, "
                                 f"log views done: {views_done}")
        await pilot.pause(0.05)
    await pilot.pause()


Waiter = Callable[..., Awaitable[None]]
