"""A yes/no question whose focus starts on Cancel: the safe choice is the default.
`y` confirms and `n` / esc cancel, and the buttons say so."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmModal(ModalScreen[bool]):
    BINDINGS = [
        Binding("escape,n", "cancel", "cancel", id="confirm.cancel"),
        Binding("y", "confirm", "confirm", id="confirm.confirm"),
    ]

    def __init__(self, question: Text | str, *, confirm: str = "Confirm") -> None:
        super().__init__()
        self.question, self.confirm_label = question, confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button("Cancel (n)", id="cancel", variant="primary")
                yield Button(f"{self.confirm_label} (y)", id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")
