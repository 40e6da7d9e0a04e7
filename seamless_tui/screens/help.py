"""`?`: every key of the screen you came from, plus the global ones."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

NOTES = """\
Log pane: / searches the lines loaded in the pane (the newest window, or the pages you
scrolled to), not the whole log on the agent; n / N go to the next / previous match;
e jumps to the first error in the loaded lines; f or G resumes following.
g = top, G = bottom (as in vim and less). Keys can be remapped in
~/.config/seamless/tui.toml under [keymap] by binding id."""


class HelpScreen(Screen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "app.back", "close", id="help.close")]

    def __init__(self, source: Screen[object]) -> None:
        super().__init__()
        self.source = source

    def compose(self) -> ComposeResult:
        table = Table(title="Keys", expand=True, show_edge=False)
        for col in ("key", "action", "id"):
            table.add_column(col)
        seen = set()
        for binding in _bindings(self.source) + _bindings(self.app):
            if binding.id in seen or binding.action.startswith("app.back") and seen:
                continue
            seen.add(binding.id)
            keys = self.app.get_key_display(binding)
            table.add_row(keys, binding.description or binding.action, binding.id or "")
        with VerticalScroll():
            yield Static(table)
            yield Static(NOTES, id="notes")
        yield Footer()


def _bindings(node: object) -> list[Binding]:
    out = []
    for item in getattr(node, "BINDINGS", []):
        if isinstance(item, Binding):
            out.append(item)
    focused = getattr(node, "focused", None)
    if focused is not None:
        out += [b for b in getattr(focused, "BINDINGS", []) if isinstance(b, Binding)]
    return out
