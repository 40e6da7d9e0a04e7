"""Marking lines of a stage log to copy them, as in vim's visual line mode: `v` starts at the
picked line (a click) or the top line shown, `j`/`k` (and pages) move the marked end, `y`
copies the marked lines to the terminal's clipboard (OSC 52, also over SSH) and says how
many, `v` again or `escape` stops.

Both ends are kept as line ids (ULIDs, in window order), so live lines arriving and the
window dropping far lines do not move the marks. Mixed into LogView."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seamless_tui.widgets.log_window import LogWindow


class LogSelecting:
    if TYPE_CHECKING:  # provided by LogView
        app: Any
        window: LogWindow
        match_line: int | None
        follow: bool
        scroll_offset: Any
        scrollable_content_region: Any

        def _changed(self, layout: bool = True) -> None: ...
        def _set_y(self, y: float) -> None: ...
        def _status(self, note: str) -> None: ...
        def line_at_row(self, row: int) -> tuple[int, int]: ...
        def row_of_line(self, index: int) -> int: ...

    mark_from: str | None = None  # the line id where `v` started
    mark_to: str | None = None  # the end that moves

    @property
    def marking(self) -> bool:
        return self.mark_from is not None

    def _index_of(self, line_id: str) -> int:
        """The window index of `line_id`, or of the nearest line after it (dropped lines)."""
        return min(bisect.bisect_left(self.window.lines, line_id, key=lambda ln: ln.id),
                   len(self.window.lines) - 1)

    def marked_range(self) -> tuple[int, int] | None:
        if self.mark_from is None or self.mark_to is None or not self.window.lines:
            return None
        a, b = self._index_of(self.mark_from), self._index_of(self.mark_to)
        return (a, b) if a <= b else (b, a)

    def action_mark(self) -> None:
        if self.marking:
            self.stop_marking("marking stopped")
            return
        lines = self.window.lines
        if not lines:
            self._status("no line to mark")
            return
        picked = self.match_line
        index = picked if picked is not None and 0 <= picked < len(lines) else \
            min(self.line_at_row(self.scroll_offset.y)[0], len(lines) - 1)
        self.follow = False  # the marks stay put while lines stream in
        self.mark_from = self.mark_to = lines[index].id
        self._changed()
        self._say_marked()

    def move_mark(self, delta: int) -> None:
        lines = self.window.lines
        if self.mark_to is None or not lines:
            return
        index = max(0, min(self._index_of(self.mark_to) + delta, len(lines) - 1))
        self.mark_to = lines[index].id
        row, top = self.row_of_line(index), self.scroll_offset.y
        height = self.scrollable_content_region.height
        if row < top:
            self._set_y(row)
        elif row >= top + height:
            self._set_y(row - height + 1)
        self._changed()
        self._say_marked()

    def _say_marked(self) -> None:
        span = self.marked_range()
        count = span[1] - span[0] + 1 if span else 0
        self._status(f"{count:,} line{'s' if count != 1 else ''} marked: j/k extend, y copies, "
                     "esc stops")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # `escape` stops marking; otherwise it is the screen's (back).
        return self.marking if action == "stop_marking" else True

    def action_stop_marking(self) -> None:
        self.stop_marking("marking stopped")

    def stop_marking(self, note: str) -> None:
        self.mark_from = self.mark_to = None
        self._changed()
        self._status(note)

    def copy_marked(self) -> None:
        span = self.marked_range()
        if span is None:
            return
        text = "\n".join(line.plain for line in self.window.lines[span[0]:span[1] + 1])
        self.app.copy_to_clipboard(text)  # OSC 52: the terminal's clipboard, also over SSH
        count = span[1] - span[0] + 1
        self.stop_marking(f"copied {count:,} line{'s' if count != 1 else ''} "
                          f"({len(text):,} characters)")
