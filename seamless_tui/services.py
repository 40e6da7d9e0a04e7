"""What screens and widgets may ask of the app, as a protocol in a leaf module: the App
imports the screens, the screens import this, and nothing imports back up."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, cast

from textual.dom import DOMNode
from textual.signal import Signal
from textual.worker import Worker

from seamless_tui.client import AgentClient
from seamless_tui.fmt import Clock
from store.models import Event, RunInfo

if TYPE_CHECKING:
    from textual.app import App


class Services(Protocol):
    client: AgentClient
    clock: Clock
    role: str | None
    max_log_lines: int
    # One `/ws/events` event per publish; screens subscribe while they are shown.
    agent_events: Signal[Event]
    # The event stream is back after a gap: shown screens refetch what they show.
    reconnected: Signal[None]

    def worker_failed(self, event: Worker.StateChanged) -> None: ...
    def known_approvals(self, ids: Iterable[int]) -> None: ...
    def open_service(self, name: str) -> None: ...
    def open_run(self, run_id: int, known: RunInfo | None = None) -> None: ...
    def open_approval(self, run_id: int) -> None: ...
    def open_rollback(self, service: str) -> None: ...
    def hold_keys(self) -> None: ...


def services(node: DOMNode) -> Services:
    """The running app, seen through the services it promises (checked in app.py)."""
    app: App[object] = node.app
    return cast(Services, app)
