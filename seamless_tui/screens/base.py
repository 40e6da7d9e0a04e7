"""What every screen shares: the client, the clock, and one way to fetch.

`fetch(name, coroutine)` runs the request in a worker and hands the answer to
`show_<name>(value)` through a message, so only handlers touch widgets. Failures
land in the App's single worker-error handler.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.worker import Worker

from seamless_tui.client import AgentClient

if TYPE_CHECKING:
    from seamless_tui.app import SeamlessApp


class Fetched(Message):
    def __init__(self, name: str, value: Any) -> None:
        super().__init__()
        self.name, self.value = name, value


class _Fetching:
    app: Any

    @property
    def seamless(self) -> SeamlessApp:
        return self.app  # type: ignore[no-any-return]

    @property
    def client(self) -> AgentClient:
        return self.seamless.client

    def now(self) -> datetime:
        return self.seamless.clock()

    def fetch(self, name: str, call: Callable[[], Awaitable[Any]]) -> None:
        async def job() -> None:
            value = await call()
            self.post_message(Fetched(name, value))  # type: ignore[attr-defined]

        # The function, not `job()`: a fetch superseded before it starts (exclusive) then
        # leaves no coroutine that was never awaited.
        self.run_worker(job, group=f"fetch-{name}", exclusive=True,  # type: ignore[attr-defined]
                        exit_on_error=False, name=name)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.seamless.worker_failed(event)

    async def on_fetched(self, message: Fetched) -> None:
        message.stop()
        shown = getattr(self, f"show_{message.name}")(message.value)
        if inspect.isawaitable(shown):
            await shown


class _FocusGuard:
    def set_focus(self, widget: Widget | None, scroll_visible: bool = True,
                  from_app_focus: bool = False) -> None:
        # Focus on a widget already removed swallows every key, `q` included (the frozen TUI
        # of issue #14): such a request is dropped, never applied.
        if widget is not None and not widget.is_attached:
            return
        super().set_focus(widget, scroll_visible, from_app_focus)  # type: ignore[misc]


class BaseScreen(_FocusGuard, _Fetching, Screen[Any]):
    pass


class BaseModal(_FocusGuard, _Fetching, ModalScreen[Any]):
    pass
