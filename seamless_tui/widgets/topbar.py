"""One line at the top of every screen: where you are, and the connection state."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from seamless_tui.widgets.connection import ConnectionIndicator


class TopBar(Horizontal):

    def __init__(self, crumb: str) -> None:
        super().__init__()
        self.crumb = crumb

    def compose(self) -> ComposeResult:
        yield Static(self.crumb, id="crumb")
        yield ConnectionIndicator()

    def set_crumb(self, text: str) -> None:
        self.query_one("#crumb", Static).update(text)
