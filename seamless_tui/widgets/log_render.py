"""How the log view maps rows to lines and turns a line into strips (the Line API part
of LogView: only the rows on screen are ever rendered, and rendered rows are cached)."""

from __future__ import annotations

import bisect
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.scroll_view import ScrollView
from textual.strip import Strip

from seamless_tui.widgets.log_window import Line, LogWindow


def clock_time(ts: str) -> str:
    """`HH:MM:SS.mmm` from an ISO timestamp (isoformat drops a zero fraction)."""
    clock = re.split(r"[+Z-]", ts[11:], maxsplit=1)[0]
    return (clock if "." in clock else clock + ".000")[:12].ljust(12)


SPLIT_BYTES = 64 * 1024 - 4  # the agent stores a longer line as 64 KiB pieces
SPLIT_MARK = "[split: over 64 KiB, continues on the next line]"
MORE = "›"
LESS = "‹"
# Lines whose rendered rows are kept: eight screens of a tall terminal. While a stage floods,
# rows scrolled past are never shown again, and each kept line is a dozen objects that every
# full GC pass scans.
CACHE_LINES = 400


def is_split_piece(text: str) -> bool:
    """A stored line this long is a piece of a longer one (the agent cuts at 64 KiB)."""
    return len(text) * 4 >= SPLIT_BYTES and len(text.encode("utf-8", "replace")) >= SPLIT_BYTES


def _edge_marks(strip: Strip, width: int, left: bool, right: bool) -> Strip:
    """`‹` / `›` in the first / last cell when the line goes on beyond the view."""
    style = Style(bold=True, reverse=True)
    parts = []
    if left:
        parts.append(Strip([Segment(LESS, style)], 1))
    parts.append(strip.crop(1 if left else 0, width - 1 if right else width))
    if right:
        parts.append(Strip([Segment(MORE, style)], 1))
    return Strip.join(parts)


class LogRendering(ScrollView):
    window: LogWindow
    wrap: bool
    show_ts: bool
    show_numbers: bool
    search: re.Pattern[str] | None
    match_line: int | None
    _cache: OrderedDict[tuple[Any, ...], list[Strip]]
    _version: int
    _row_starts: list[int] | None
    _incoming: list[dict[str, Any]]
    if TYPE_CHECKING:  # LogSelecting's (LogView mixes both in)
        def marked_range(self) -> tuple[int, int] | None: ...

    def on_unmount(self) -> None:
        """A removed view lets go of its lines and rendered rows at once. (Textual calls this
        besides LogView's own on_unmount, which ends its workers.) The view object itself can
        outlive its removal by ~20 s: asyncio keeps a cancelled timer of its stream (websockets'
        ping, a close timeout) until the timer's time comes, and the timer holds the worker's
        context, so the worker, so the view. Each stage switch left up to 10,000 lines and
        their strips behind that way: the bulk of what every full GC pass had to scan (its
        30-190 ms were the slowest keys of the tmux journey while a stage floods)."""
        self._cache.clear()
        self._styles_cache.clear()  # Textual's: the strips of the rows last painted
        self._incoming.clear()
        self._row_starts = None
        self.window.lines.clear()
        self.window.pending.clear()

    # -- geometry ----------------------------------------------------------------------------
    def _gutter(self) -> int:
        width = 13 if self.show_ts else 0
        if self.show_numbers:
            width += len(str((self.window.abs_start or 0) + len(self.window))) + 1
        return width

    def _text_width(self) -> int:
        return max(10, self.scrollable_content_region.width - self._gutter())

    def _rows(self) -> list[int]:
        if self._row_starts is None:
            starts, row, width = [], 0, self._text_width()
            for line in self.window.lines:
                starts.append(row)
                row += max(1, -(-line.width // width))
            starts.append(row)
            self._row_starts = starts
        return self._row_starts

    def total_rows(self) -> int:
        return self._rows()[-1] if self.wrap else len(self.window)

    def line_at_row(self, row: int) -> tuple[int, int]:
        if not self.wrap:
            return row, 0
        starts = self._rows()
        index = bisect.bisect_right(starts, row) - 1
        return index, row - starts[index]

    def row_of_line(self, index: int) -> int:
        return self._rows()[index] if self.wrap else index

    # -- rendering ---------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index, sub = self.line_at_row(scroll_y + y)
        width = self.scrollable_content_region.width
        if index >= len(self.window) or index < 0:
            return Strip.blank(width, self.rich_style)
        strips = self._strips(index)
        strip = strips[min(sub, len(strips) - 1)] if sub < len(strips) else Strip.blank(width)
        shown = strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)
        if not self.wrap and width > 1:  # more of the line to either side: say so
            more_right, more_left = strip.cell_length > scroll_x + width, scroll_x > 0
            if more_right or more_left:
                shown = _edge_marks(shown, width, more_left, more_right)
        return shown

    def _strips(self, index: int) -> list[Strip]:
        line = self.window.lines[index]
        span = self.marked_range()
        marked = span is not None and span[0] <= index <= span[1]
        key = (line.id, self._version, self.match_line == index, marked)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        strips = self._render_strips(index, line, marked)
        self._cache[key] = strips
        if len(self._cache) > CACHE_LINES:
            self._cache.popitem(last=False)
        return strips

    def _render_strips(self, index: int, line: Line, marked: bool = False) -> list[Strip]:
        gutter = Text(no_wrap=True)
        if self.show_numbers:
            number = "" if self.window.abs_start is None else str(self.window.abs_start + index + 1)
            digits = self._gutter() - (13 if self.show_ts else 0) - 1
            gutter.append(number.rjust(digits) + " ", "dim")
        if self.show_ts:
            gutter.append(clock_time(line.ts) + " ", "dim")
        body = Text.from_ansi(line.clean, no_wrap=True, end="")
        if is_split_piece(line.text):  # said first: the end is past the widest scroll
            body = Text.assemble((SPLIT_MARK, "bold reverse"), " ", body, no_wrap=True, end="")
        if line.stream == "stderr":
            body.stylize("italic")
        elif line.stream == "system":
            body.stylize("bold")
        if marked:  # lines marked to copy (v)
            body.stylize("reverse")
        if self.search is not None:
            body.highlight_regex(self.search, "reverse")
            if self.match_line == index:
                body.stylize("underline")
        console = self.app.console
        cells = max(body.cell_len, 1)
        whole = Strip(list(body.render(console)), cells)
        # Wrap by cells, not words: exactly ceil(width / cells) rows, as _rows() counts.
        step = self._text_width() if self.wrap else cells
        pieces = [whole.crop(start, start + step) for start in range(0, cells, step)]
        head = Strip(list(gutter.render(console)), gutter.cell_len)
        pad = Strip([]).extend_cell_length(gutter.cell_len)
        return [Strip.join([head if n == 0 else pad, piece]) for n, piece in enumerate(pieces)]

    def _extend_rows(self, lines: list[Line]) -> None:
        starts, width = self._rows(), self._text_width()
        row = starts.pop()
        for line in lines:
            starts.append(row)
            row += max(1, -(-line.width // width))
        starts.append(row)
