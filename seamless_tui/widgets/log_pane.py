"""The log pane: the virtualised view, a status line with the "+N new lines" marker, and
the `/` search box. The pane stays mounted; choosing a stage swaps the view inside it."""

from __future__ import annotations

import asyncio
import time

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Static

from seamless_tui.widgets.log_view import LogView

NOTE_S = 5.0  # how long a key's answer stays on the status line


class NewLinesMarker(Static):
    """Click (or press f/G) to resume following."""

    def on_click(self) -> None:
        view = self.screen.query_one(LogPane).view
        if view is not None:
            view.action_follow()


class LogPane(Vertical):
    BINDINGS = [Binding("slash", "search", "search", id="log.search")]

    def __init__(self, *, max_lines: int = 10_000, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self._view: LogView | None = None
        self._swap = asyncio.Lock()
        # A key's answer on the status line ("first error: line 505", "copied …") stays a
        # while: in a flood the status is rewritten 4 times a second.
        self._note = ""
        self._note_until = 0.0

    def compose(self) -> ComposeResult:
        with Horizontal(id="log-status"):
            yield Static("loading…", id="log-info")
            yield NewLinesMarker("", id="log-new")
        yield Input(placeholder="search the whole stage log (enter; n / N next / previous; "
                    "esc closes)", id="log-search")

    @property
    def view(self) -> LogView | None:
        """The view that is mounted now; None while a stage switch is between views."""
        return self._view

    async def show(self, run_id: int, stage: str | None) -> LogView:
        """Replace the view with one for `stage`. The old view is removed (its stream worker
        cancelled with it) before the new one is mounted, so focus can only land on a
        mounted view; concurrent switches run one after the other."""
        async with self._swap:
            self._view, self._note_until = None, 0.0  # the old view's note goes with it
            await self.query(LogView).remove()
            view = LogView(run_id, stage, max_lines=self.max_lines, id="log-view")
            await self.mount(view, before=self.query_one("#log-status"))
            self._view = view
            return view

    def focus_view(self) -> None:
        if self._view is not None:
            self._view.focus()

    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.add_class("visible")
        box.focus()

    @on(Input.Submitted, "#log-search")
    def _search(self, event: Input.Submitted) -> None:
        event.stop()
        if self._view is not None:
            self._view.set_search(event.value.strip())
        event.input.remove_class("visible")
        self.focus_view()

    def on_key(self, event) -> None:  # type: ignore[no-untyped-def]
        box = self.query_one("#log-search", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.remove_class("visible")
            self.focus_view()

    @on(LogView.Status)
    def _status(self, message: LogView.Status) -> None:
        message.stop()
        view = message.view
        if view is not self._view:
            return  # a late status from the view just replaced
        w = view.window
        now = time.monotonic()
        if message.note is not None:
            self._note, self._note_until = message.note, now + NOTE_S
        parts = [view.stage or "all stages",
                 "● follow" if view.follow and w.at_live_end else "○ paused"]
        # Before the counts: a narrow pane keeps them.
        if self._note and now < self._note_until:
            parts.append(self._note)
        if view.search_note():
            parts.append(view.search_note())
        if not len(w):
            parts.append("no lines yet")
        elif w.abs_start is not None:
            parts.append(f"lines {w.abs_start + 1:,}–{w.abs_start + len(w):,}")
        else:
            parts.append(f"{len(w):,} lines loaded")
        if w.has_older:
            parts.append("↑ older" + (" (loading…)" if view.fetching == "older" else ""))
        if view.wrap:
            parts.append("wrap")
        # Fixed-size widgets: repaint without a layout pass (this runs ~10×/s in a flood).
        self.query_one("#log-info", Static).update("  ".join(parts), layout=False)
        marker = self.query_one(NewLinesMarker)
        marker.update(f" +{view.new_lines:,} new lines ↓ ", layout=False)
        show = view.new_lines > 0 and not view.follow
        if marker.has_class("visible") != show:
            marker.set_class(show, "visible")
