"""`:` jumps to a service or a run, as in k9s: `:payments`, `:payments#12`, or `:#12`
(run #12 of the service in view: the one open, or the dashboard row under the cursor)."""

from __future__ import annotations

import re
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input

from seamless_tui.fmt import run_label

_TARGET = re.compile(r"^(?P<service>[^#\s]*)\s*(?:#\s*(?P<number>\d+))?$")


class JumpModal(ModalScreen[tuple[str, int | None] | None]):
    """Answers (service, run number or None)."""

    BINDINGS = [Binding("escape", "close", "close", id="jump.close")]

    def __init__(self, names: list[str], context: str | None = None) -> None:
        super().__init__()
        self.names = sorted(names)
        self.context = context

    def compose(self) -> ComposeResult:
        here = f", #N = run of {self.context}" if self.context else ""
        yield Input(placeholder=f":service, :service#N or :#N{here} (tab completes)",
                    suggester=SuggestFromList(self.names, case_sensitive=False))

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _go(self, event: Input.Submitted) -> None:
        target = resolve(event.value, self.names, self.context)
        if isinstance(target, str):
            self.notify(target, severity="warning")
            return
        self.dismiss(target)


def resolve(value: str, names: list[str], context: str | None
            ) -> tuple[str, int | None] | str:
    """The (service, number) asked for, or a sentence saying why not."""
    match = _TARGET.match(value.strip().lstrip(":").strip())
    if match is None or not (match["service"] or match["number"]):
        return "type a service (payments), a run (#12) or both (payments#12)"
    wanted, number = match["service"], match["number"]
    if not wanted:
        if context is None:
            return f"#{number} of which service? type e.g. :payments#{number}"
        service = context
    else:
        matches = [n for n in names if n == wanted] or [n for n in names
                                                        if n.startswith(wanted)]
        if not matches:
            return f"no service named {wanted!r}"
        service = matches[0]
    return service, int(number) if number else None


def open_jump(app: Any) -> None:
    """Ask, then open the service or the run (looked up by its number on the agent)."""
    from seamless_tui.screens.dashboard import DashboardScreen

    dashboard = app.screen_stack[1] if len(app.screen_stack) > 1 else None
    names = list(dashboard.rows) if isinstance(dashboard, DashboardScreen) else []
    app.push_screen(JumpModal(names, _context(app)),
                    lambda target: _go(app, target) if target else None)


def _context(app: Any) -> str | None:
    screen = app.screen
    run_service = getattr(getattr(screen, "run", None), "service", None)
    if run_service:
        return str(run_service)
    if getattr(screen, "service_name", None):
        return str(screen.service_name)
    selected = getattr(screen, "_selected", None)
    row = selected() if callable(selected) else None
    return row.service.name if row is not None else None


def _go(app: Any, target: tuple[str, int | None]) -> None:
    service, number = target
    if number is None:
        app.open_service(service)
        return

    async def find() -> None:
        runs = await app.client.runs(service=service, limit=500)
        found = next((r for r in runs if r.number == number), None)
        if found is None:
            app.notify(f"{run_label(number, service)} not found (the newest is "
                       f"{run_label(runs[0].number) if runs else 'none'})", severity="warning")
        else:
            app.open_run(found.id, known=found)

    app.run_worker(find, group="jump", exclusive=True, exit_on_error=False)
