"""Messages the App's stream workers post; screens and widgets react in handlers."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from store.models import Event


class AgentEvent(Message, bubble=False):
    """One `/ws/events` event, forwarded by the App to every screen on the stack.
    It must not bubble: a screen's copy climbing back to the App would fan out again."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class ConnectionChanged(Message):
    def __init__(self, state: str, detail: str = "") -> None:
        super().__init__()
        self.state = state  # "connecting" | "connected" | "reconnecting"
        self.detail = detail


class Reconnected(Message, bubble=False):
    """The event stream is back: views refresh what they may have missed."""


class LogLines(Message):
    def __init__(self, run_id: int, stage: str | None, lines: list[dict[str, Any]]) -> None:
        super().__init__()
        self.run_id, self.stage, self.lines = run_id, stage, lines
