"""The connection indicator: green when the event stream is up, "reconnecting…" otherwise."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class ConnectionIndicator(Static):
    def on_mount(self) -> None:
        self.watch(self.app, "connection_state", self._show)

    def _show(self, state: str) -> None:
        label = {"connected": ("● connected", "green"),
                 "reconnecting": ("◌ reconnecting…", "bold yellow"),
                 "connecting": ("◌ connecting…", "yellow"),
                 "denied": ("✗ token refused", "bold red")}.get(state, (state, ""))
        self.update(Text(label[0], style=label[1]))
