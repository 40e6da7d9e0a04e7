"""Messages the App posts to itself; screens hear about agent events through the App's
`agent_events` Signal (seamless_tui/services.py), not through messages."""

from __future__ import annotations

from textual.message import Message


class ConnectionChanged(Message):
    def __init__(self, state: str, detail: str = "") -> None:
        super().__init__()
        self.state = state  # "connecting" | "connected" | "reconnecting"
        self.detail = detail
