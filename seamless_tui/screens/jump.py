"""`:` jumps to a service by name, as in k9s."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input


class JumpModal(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "close", "close", id="jump.close")]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = sorted(names)

    def compose(self) -> ComposeResult:
        yield Input(placeholder=":service (tab completes)",
                    suggester=SuggestFromList(self.names, case_sensitive=False))

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _go(self, event: Input.Submitted) -> None:
        value = event.value.strip().lstrip(":")
        matches = [n for n in self.names if n == value] or [
            n for n in self.names if n.startswith(value)]
        if not matches:
            self.notify(f"no service named {value!r}", severity="warning")
            return
        self.dismiss(matches[0])
