"""What every screen shares: the app's services, one way to fetch, agent events while the
screen is shown, and focus that never lands on a removed widget.

`fetch(call, then)` runs the request in a worker; the answer comes back as a typed
`Fetched[T]` message whose handler calls `then(value)`, so only handlers touch widgets.
Failures land in the App's single worker-error handler. `fetch_early` sends a screen's
first requests while it is still being built.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from textual import events
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.worker import Worker

from seamless_tui.client import AgentClient
from seamless_tui.services import Services, services
from store.models import Event

T = TypeVar("T")


class Fetched(Message, Generic[T], bubble=False):
    """A fetch's answer, for the handler `then` named when the fetch started."""

    def __init__(self, value: T, then: Callable[[T], object]) -> None:
        super().__init__()
        self.value, self.then = value, then


class _ScreenWork:
    """Mixed into Screen and ModalScreen (the same behaviour for both)."""

    app: Any
    _missed_events = False
    _early: dict[str, asyncio.Future[Any]] | None = None  # answers asked for in __init__

    @property
    def seamless(self) -> Services:
        return services(self)  # type: ignore[arg-type]

    @property
    def client(self) -> AgentClient:
        return self.seamless.client

    def now(self) -> datetime:
        return self.seamless.clock()

    def fetch(self, call: Callable[[], Awaitable[T]], then: Callable[[T], object]) -> None:
        """Run `call` in a worker and hand its value to `then` in this screen's handler. A
        new fetch for the same `then` supersedes the one still running."""
        name = getattr(then, "__name__", "fetch")
        early = self._early.pop(name, None) if self._early else None

        async def job() -> None:
            value = await (early if early is not None else call())
            self.post_message(Fetched(value, then))  # type: ignore[attr-defined]

        # The function, not `job()`: a fetch superseded before it starts (exclusive) then
        # leaves no coroutine that was never awaited.
        self.run_worker(job, group=f"fetch-{name}", exclusive=True,  # type: ignore[attr-defined]
                        exit_on_error=False, name=name)

    def fetch_early(self, call: Callable[[], Awaitable[T]], then: Callable[[T], object]
                    ) -> None:
        """From `__init__` (the key's handler, before the screen is pushed): the request
        leaves now, and `fetch(call, then)` in `on_mount` takes its answer. Composing and
        mounting take tens of milliseconds on a busy host; the answer is then usually in
        by the first paint, which shows it: one paint, not an empty one and a second."""
        task = asyncio.ensure_future(call())
        task.add_done_callback(_retrieved)  # a screen closed before mounting: no warning
        if self._early is None:
            self._early = {}
        self._early[getattr(then, "__name__", "fetch")] = task

    async def on_fetched(self, message: Fetched[Any]) -> None:
        shown = message.then(message.value)
        if inspect.isawaitable(shown):
            await shown

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.seamless.worker_failed(event)

    # -- agent events, while shown ------------------------------------------------------------
    def agent_event(self, event: Event) -> object:
        """One live agent event, while this screen is the one shown (override)."""
        return None

    def reload(self) -> None:
        """Fetch again what this screen shows: events may have been missed (override)."""

    def _reconnected(self, _: None) -> None:
        self.reload()

    def _missed(self, _: object) -> None:
        self._missed_events = True

    def on_screen_resume(self, _: events.ScreenResume) -> None:
        app = self.seamless
        for signal in (app.agent_events, app.reconnected):
            signal.unsubscribe(self)  # type: ignore[arg-type]
        app.agent_events.subscribe(self, self.agent_event)  # type: ignore[arg-type]
        app.reconnected.subscribe(self, self._reconnected)  # type: ignore[arg-type]
        if self._missed_events:
            self._missed_events = False
            self.reload()

    def on_screen_suspend(self, _: events.ScreenSuspend) -> None:
        # A hidden screen is not handed every event: it only notes that it missed some
        # (immediate, no message) and reloads once when it is shown again.
        app = self.seamless
        for signal in (app.agent_events, app.reconnected):
            signal.unsubscribe(self)  # type: ignore[arg-type]
            signal.subscribe(self, self._missed, immediate=True)  # type: ignore[arg-type]

    # -- focus --------------------------------------------------------------------------------
    def set_focus(self, widget: Widget | None, scroll_visible: bool = True,
                  from_app_focus: bool = False) -> None:
        # Focus on a widget already removed swallows every key, `q` included (the frozen TUI
        # of issue #14): such a request is dropped, never applied.
        if widget is not None and not widget.is_attached:
            return
        super().set_focus(widget, scroll_visible, from_app_focus)  # type: ignore[misc]


class BaseScreen(_ScreenWork, Screen[Any]):
    pass


class BaseModal(_ScreenWork, ModalScreen[Any]):
    pass


def _retrieved(task: asyncio.Future[Any]) -> None:
    """An early answer nobody took (the screen went first): its error is dropped quietly;
    one that is taken raises in the fetch's worker as usual."""
    if not task.cancelled():
        task.exception()
