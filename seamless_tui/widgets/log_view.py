"""A line-virtualised stage log: only the visible rows are rendered, and only a window of
lines is held; older and newer pages come from the agent by ULID cursor as you scroll.

The view owns its work: it fetches its pages and follows its stage's live stream in its own
workers, which end when the view is unmounted. Results come back as typed messages."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from typing import Any

from textual import work
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollTo
from textual.strip import Strip
from textual.worker import Worker, WorkerState

from seamless_tui.services import services
from seamless_tui.widgets.log_render import LogRendering
from seamless_tui.widgets.log_search import LogSearching
from seamless_tui.widgets.log_select import LogSelecting
from seamless_tui.widgets.log_window import Line, LogWindow, make_line

PAGE = 1000
# The first page, the log's end: a few screenfuls, the rest paged in on scrolling up. For a
# stage that floods, 1,000 lines took the agent 14 ms (53 ms at worst) and were mostly
# never shown; 200 take 5 ms (14 ms).
TAIL_PAGE = 200
LIVE_INTERVAL = 0.1  # seconds between repaints while lines stream in
# In a flood (a screenful or more per repaint, unreadable anyway) repaint less often: each
# repaint of a following view re-renders every row on screen, and keys wait behind it.
FLOOD_INTERVAL = 0.25
# While a search or `e` is on its way the live lines wait (at most this long): in a flood
# each repaint of the following view came between the key and its answer (~50 ms apiece).
HOLD_LIVE_S = 1.0


class LogView(LogSelecting, LogSearching, LogRendering, can_focus=True):
    BINDINGS = [
        Binding("j,down", "scroll_by(1)", "down", show=False, id="log.down"),
        Binding("k,up", "scroll_by(-1)", "up", show=False, id="log.up"),
        Binding("pagedown,space", "page(1)", "page down", show=False, id="log.page_down"),
        Binding("pageup,b", "page(-1)", "page up", show=False, id="log.page_up"),
        Binding("g,home", "top", "top", id="log.top"),
        Binding("G,end", "bottom", "end", id="log.bottom"),
        Binding("f", "follow", "follow", id="log.follow"),
        Binding("e", "first_error", "error", id="log.first_error"),
        Binding("w", "flip('wrap')", "wrap", id="log.wrap"),
        Binding("t", "flip('show_ts')", "time", show=False, id="log.timestamps"),
        Binding("#", "flip('show_numbers')", "numbers", show=False, id="log.numbers"),
        Binding("n", "next_match(1)", "next", show=False, id="log.next_match"),
        Binding("N", "next_match(-1)", "prev", show=False, id="log.prev_match"),
        Binding("s", "save", "save", id="log.save"),
        Binding("y", "copy_line", "copy", show=False, id="log.copy"),
        Binding("v", "mark", "mark lines", show=False, id="log.mark"),
        Binding("escape", "stop_marking", "stop marking", show=False, id="log.stop_marking"),
    ]

    class Status(Message):
        """Follow state, counts and search results for the pane's status line."""

        def __init__(self, view: LogView, note: str | None = None) -> None:
            super().__init__()
            # None: the state changed, the note stays; a text (even ""): a key's answer,
            # which replaces the note ("searching…" gives way to the match counter).
            self.view, self.note = view, note

    class PageLoaded(Message, bubble=False):
        """One page from the agent: `tail`, `head`, `older` or `newer` than the window."""

        def __init__(self, kind: str, lines: list[Line], total: int | None, *,
                     full: bool) -> None:
            super().__init__()
            self.kind, self.lines, self.total = kind, lines, total
            self.full = full  # as many lines as asked for: there may be more

    class LinesArrived(Message, bubble=False):
        """Live lines from this view's stream."""

        def __init__(self, lines: list[dict[str, Any]]) -> None:
            super().__init__()
            self.lines = lines

    def __init__(self, run_id: int, stage: str | None, *, max_lines: int = 10_000,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.run_id, self.stage = run_id, stage
        self.window = LogWindow(max_lines=max_lines)
        self.follow = True
        self.wrap = False
        self.show_ts = False
        self.show_numbers = False
        self.new_lines = 0
        self.search: re.Pattern[str] | None = None
        self.match_line: int | None = None
        self.fetching: str | None = None  # not `loading`: that is Widget's spinner
        self.loaded_once = False
        self.search_on_load: str | None = None  # searched once the first page is in
        self._cache: OrderedDict[tuple[Any, ...], list[Strip]] = OrderedDict()
        self._version = 0
        self._row_starts: list[int] | None = None  # wrap mode: first row of each line
        self._max_width = 0
        self._incoming: list[dict[str, Any]] = []
        self._flush_scheduled = False
        self._flooded = False  # the last repaint brought a screenful or more
        self._rows_width = 0  # the content width the rendered rows were wrapped to
        self._live_held_until = 0.0  # monotonic time: live lines wait until then

    def _changed(self, layout: bool = True) -> None:
        """Content changed: drop caches and re-size the virtual canvas."""
        if layout:
            self._row_starts = None
            self._version += 1
            self._cache.clear()
        width = self.scrollable_content_region.width if self.wrap else (
            self._gutter() + self._max_width)
        self.virtual_size = Size(width, self.total_rows())
        self.refresh()

    def on_resize(self) -> None:
        # Rendered rows depend on the width only when wrapping: a change of height alone
        # (the search box opening or closing, a taller terminal) keeps them all.
        width = self.scrollable_content_region.width
        self._changed(layout=self.wrap and width != self._rows_width)
        self._rows_width = width
        if self.follow:
            self._to_end()

    def _max_y(self) -> int:
        return max(0, self.total_rows() - self.scrollable_content_region.height)

    def _set_y(self, y: float) -> None:
        # set_scroll skips watchers: programmatic moves must not switch follow off.
        old = self.scroll_offset.y
        self.set_scroll(None, max(0, min(round(y), self._max_y())))
        ScrollView.watch_scroll_y(self, old, self.scroll_offset.y)
        self.refresh()
        # The scrollbar may only appear with the next layout: place its thumb then too.
        self.call_after_refresh(self._sync_scrollbar)

    def _sync_scrollbar(self) -> None:
        if self.follow and self.scroll_offset.y < self._max_y():
            # A horizontal scrollbar that appeared with this layout took a row: the last
            # line would sit under it. set_scroll does not repaint: ask for it (else the
            # frame before the move stays, the last line hidden under the bar).
            self.set_scroll(None, self._max_y())
            self.refresh()
        if self.show_vertical_scrollbar:
            self.vertical_scrollbar.position = self.scroll_offset.y

    def watch_show_vertical_scrollbar(self, shown: bool) -> None:
        # A scrollbar that appears after the last move starts with its thumb at the top:
        # once it is laid out, place it where the view really is (the end, when following).
        if shown:
            self.call_after_refresh(self._sync_scrollbar)

    def _to_end(self) -> None:
        self._set_y(self._max_y())

    # -- loading -----------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.load("tail")

    def on_unmount(self) -> None:
        # The stream and any page in flight end with the view (a stage switch, a popped screen).
        self.workers.cancel_node(self)

    @work(group="log-page", exclusive=True, exit_on_error=False)
    async def load(self, kind: str) -> None:
        """Fetch one page: `tail` (newest), `head` (oldest), `older` or `newer` than the window."""
        client = services(self).client
        w = self.window
        self.fetching = kind
        limit = TAIL_PAGE if kind == "tail" else PAGE
        params: dict[str, Any] = {"stage": self.stage, "limit": limit}
        if kind == "tail":
            params["tail"] = True
        elif kind == "older":
            params["before"] = w.first_id
        elif kind == "newer":
            params["after"] = w.last_id
        raw, total = await client.log_page_raw(self.run_id, **params)
        lines = [make_line(ln) for ln in raw]
        self.post_message(self.PageLoaded(kind, lines, total, full=len(lines) >= limit))

    @work(group="log-stream", exclusive=True, exit_on_error=False)
    async def follow_stream(self, after: str | None) -> None:
        """The stage's live lines after `after`; the client resumes by cursor on reconnect."""
        client = services(self).client
        async for lines in client.log_stream(self.run_id, stage=self.stage, after=after):
            self.post_message(self.LinesArrived(lines))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.fetching = None
        services(self).worker_failed(event)

    def on_log_view_lines_arrived(self, message: LinesArrived) -> None:
        self.add_live(message.lines)

    def on_log_view_page_loaded(self, message: PageLoaded) -> None:
        w, lines, kind = self.window, message.lines, message.kind
        self.fetching = None
        full = message.full
        top_line = self.line_at_row(self.scroll_offset.y)[0] if len(w) else 0
        if kind == "tail":
            start = message.total - len(lines) if message.total is not None else (
                None if full else 0)
            w.reset(lines, has_older=full, at_live_end=True, abs_start=start)
            self.follow, self.new_lines = True, 0
        elif kind == "head":
            w.reset(lines, has_older=False, at_live_end=not full, abs_start=0)
            self.follow = False
        elif kind == "older":
            added = w.prepend(lines, has_more=full)
            top_line += added
        elif kind == "newer":
            w.extend_newer(lines, reached_end=not full)
        if kind in ("older", "newer"):
            # Stay bounded: drop the lines farthest from what is on screen.
            view = self.scrollable_content_region.height
            top_line -= w.trim(top_line, top_line + view)
        self._note_widths(lines)
        self._changed()
        if kind in ("tail", "head"):
            self._set_y(self._max_y() if kind == "tail" else 0)
        elif len(w):
            self._set_y(self.row_of_line(max(0, min(top_line, len(w) - 1))))
        if not self.loaded_once and kind == "tail":
            self.loaded_once = True
            # Live lines start right after the tail: no gap, no duplicate.
            self.follow_stream(w.last_id)
            if self.search_on_load:
                self.set_search(self.search_on_load)
        self.post_message(self.Status(self))

    def _note_widths(self, lines: list[Line]) -> None:
        # The raw length bounds the visible width (escapes only add characters): cheap.
        widest = max((len(ln.text) for ln in lines), default=0)
        self._max_width = min(max(self._max_width, widest), 4000)

    def add_live(self, raw: list[dict[str, Any]]) -> None:
        """Lines from the view's stream (called by its message handler). Applied at most
        every LIVE_INTERVAL (FLOOD_INTERVAL in a flood): a flood of small batches costs one
        repaint, not fifty."""
        if not self.loaded_once:
            return  # the tail page still loading will include them (stream starts after it)
        self._incoming.extend(raw)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.set_timer(FLOOD_INTERVAL if self._flooded else LIVE_INTERVAL,
                           self._flush_live)

    def _hold_live(self) -> None:
        self._live_held_until = time.monotonic() + HOLD_LIVE_S

    def _release_live(self) -> None:
        self._live_held_until = 0.0

    def _flush_live(self) -> None:
        if time.monotonic() < self._live_held_until:
            self.set_timer(FLOOD_INTERVAL, self._flush_live)  # still scheduled: try again
            return
        self._flush_scheduled = False
        lines = [make_line(r) for r in self._incoming]
        self._incoming = []
        added = self.window.add_live(lines)
        self._flooded = len(lines) >= max(self.scrollable_content_region.height, 1)
        if not self.follow or not self.window.at_live_end:
            self.new_lines += len(lines)
        if added:
            self._note_widths(lines)
            if self.wrap and self._row_starts is not None:
                self._extend_rows(self.window.lines[-added:])
            view = self.scrollable_content_region.height
            top = self.line_at_row(self.scroll_offset.y)[0]
            dropped = self.window.trim(top, top + view)
            if dropped:
                self._row_starts = None
                if self.show_numbers:
                    self._changed()  # the gutter's numbers moved
            self._changed(layout=False)
            if self.follow:
                self._to_end()
            elif dropped:
                self._set_y(self.row_of_line(max(0, top - dropped)))
        self.post_message(self.Status(self))

    # -- scrolling and follow ----------------------------------------------------------------
    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        # Only user input switches follow off (see _user_scrolled): layout clamping moves
        # scroll_y too, and must not.
        super().watch_scroll_y(old_value, new_value)
        if not self.loaded_once:
            return
        height = self.scrollable_content_region.height
        if new_value <= height and self.window.has_older and self.fetching is None:
            self.load("older")
        at_end = new_value >= self._max_y()
        if new_value >= self._max_y() - height and not self.window.at_live_end \
                and self.fetching is None:
            self.load("newer")
        elif at_end and not self.follow and self.window.at_live_end and new_value > old_value:
            self.follow, self.new_lines = True, 0
            self.post_message(self.Status(self))

    def _user_scrolled(self, up: bool) -> None:
        if up and self.follow:
            self.follow = False
            self.post_message(self.Status(self))

    def on_mouse_scroll_up(self) -> None:
        self._user_scrolled(True)

    def on_scroll_up(self) -> None:
        self._user_scrolled(True)

    def on_scroll_to(self, message: ScrollTo) -> None:
        self._user_scrolled(message.y is not None and message.y < self._max_y())

    def action_scroll_by(self, delta: int) -> None:
        if self.marking:  # j/k and pages move the marked end
            self.move_mark(delta)
            return
        self._user_scrolled(delta < 0)
        self._set_y(self.scroll_offset.y + delta)
        self.watch_scroll_y(self.scroll_offset.y - delta, self.scroll_offset.y)

    def action_page(self, direction: int) -> None:
        self.action_scroll_by(direction * max(1, self.scrollable_content_region.height - 1))

    def action_top(self) -> None:
        self.follow = False
        if self.window.has_older:
            self.load("head")
        else:
            self._set_y(0)
        self.post_message(self.Status(self))

    def action_bottom(self) -> None:
        self.action_follow()

    def action_follow(self) -> None:
        """Resume following the live end (the "+N new lines" marker does the same)."""
        self.new_lines = 0
        if self.window.at_live_end:
            self.follow = True
            self._to_end()
        else:
            self.load("tail")
        self.post_message(self.Status(self))

    def action_flip(self, flag: str) -> None:
        setattr(self, flag, not getattr(self, flag))
        self._changed()
        if self.follow:
            self._to_end()
        self.post_message(self.Status(self, f"{flag.replace('show_', '')}: "
                                            f"{'on' if getattr(self, flag) else 'off'}"))

    # -- search and first error: the whole log, on the agent (log_search.py) -----------
    def _status(self, note: str) -> None:
        self.post_message(self.Status(self, note))

    def _show_line(self, index: int) -> None:
        self._cache.clear()
        self._set_y(self.row_of_line(index) - self.scrollable_content_region.height // 2)
