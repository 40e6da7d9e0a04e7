"""`?`: every key of the screen you came from, plus the global ones."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from seamless_tui.widgets.key_footer import KeyFooter

NOTES = (
    "Log pane: / searches the whole stage log on the agent (a match counter shows "
    "3 / 1,922); n / N go to the next / previous match, loading that part of the log; "
    "e jumps to the stage's first error line (the whole log); f or G resumes following; "
    "s saves the whole stage log to a file in the current directory; click a line and y copies it "
    "(to the terminal's clipboard, OSC 52). A line ending in \u203a goes on to the right "
    "(w wraps); a line marked 'split' was longer than 64 KiB and continues below.\n"
    "g = top, G = bottom (as in vim and less).\n"
    "Remap any key in ~/.config/seamless/tui.toml under [keymap] by its id, "
    'e.g. "log.top" = "g,home".')


class HelpScreen(Screen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "app.go_back", "close", id="help.close")]

    def __init__(self, source: Screen[object]) -> None:
        super().__init__()
        self.source = source

    def compose(self) -> ComposeResult:
        table = Table(title="Keys", expand=True, show_edge=False)
        for col in ("key", "action", "id"):
            table.add_column(col)
        seen: set[str | None] = set()
        for binding in _bindings(self.source) + _bindings(self.app):
            if binding.id in seen:
                continue
            seen.add(binding.id)
            keys = self.app.get_key_display(binding)
            table.add_row(keys, binding.description or binding.action, binding.id or "")
        with VerticalScroll():
            yield Static(table)
            yield Static(NOTES, id="notes", markup=False)
        yield KeyFooter()


def _bindings(node: object) -> list[Binding]:
    """The node's bindings, then those of every kind of widget on it (log pane, tables)."""
    out = [b for b in getattr(node, "BINDINGS", []) if isinstance(b, Binding)]
    query = getattr(node, "query", None)
    if isinstance(node, Screen) and query is not None:
        seen_types: set[type] = set()
        for widget in query("*"):
            if type(widget) not in seen_types:
                seen_types.add(type(widget))
                out += [b for b in type(widget).BINDINGS
                        if isinstance(b, Binding) and b.id]
    return out
