"""The slice of a stage log the TUI holds in memory.

A 1,000,000-line log never sits here whole: the window keeps at most
`max_lines` lines around what the user looks at, knows whether older lines
exist on the agent (`has_older`) and whether its end is the live end of the
log (`at_live_end`). Live lines that arrive while the window is elsewhere wait
in a bounded `pending` list, so paging back to the end leaves no gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rich.cells import cell_len

from seamless_tui.ansi import plain, sanitize


class Line(NamedTuple):
    """One line as the agent sent it. Sanitizing and measuring wait until the line is
    shown (or searched): at 10,000 lines/s most lines are never on screen."""

    id: str  # ULID: the paging cursor
    ts: str
    stream: str
    text: str  # raw, escapes included

    @property
    def clean(self) -> str:
        return sanitize(self.text)

    @property
    def plain(self) -> str:
        return plain(sanitize(self.text))

    @property
    def width(self) -> int:
        return cell_len(self.plain)


def make_line(raw: dict[str, Any]) -> Line:
    ts = raw["ts"]
    return Line(raw["id"], ts if isinstance(ts, str) else ts.isoformat(), raw["stream"],
                raw["text"])


@dataclass
class LogWindow:
    max_lines: int = 10_000
    pending_limit: int = 20_000
    lines: list[Line] = field(default_factory=list)
    has_older: bool = False
    at_live_end: bool = True
    abs_start: int | None = None  # absolute number of lines[0], when known
    pending: list[Line] = field(default_factory=list)
    pending_overflow: bool = False

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def first_id(self) -> str | None:
        return self.lines[0].id if self.lines else None

    @property
    def last_id(self) -> str | None:
        return self.lines[-1].id if self.lines else None

    def reset(self, lines: list[Line], *, has_older: bool, at_live_end: bool,
              abs_start: int | None) -> None:
        self.lines = list(lines)
        self.has_older, self.at_live_end, self.abs_start = has_older, at_live_end, abs_start
        if at_live_end:
            self._drain_pending()

    def prepend(self, older: list[Line], *, has_more: bool) -> int:
        """Add an older page; returns how many lines went in (the caller shifts its scroll)."""
        first = self.first_id
        older = [ln for ln in older if first is None or ln.id < first]
        self.lines[:0] = older
        self.has_older = has_more
        if self.abs_start is not None:
            self.abs_start -= len(older)
        elif not has_more:
            self.abs_start = 0
        return len(older)

    def extend_newer(self, newer: list[Line], *, reached_end: bool) -> int:
        """Add a newer page (paging down towards the live end)."""
        last = self.last_id
        newer = [ln for ln in newer if last is None or ln.id > last]
        self.lines.extend(newer)
        if reached_end:
            if self.pending_overflow:
                self.pending_overflow = False
                self.pending.clear()
            else:
                self.at_live_end = True
                self._drain_pending()
        return len(newer)

    def add_live(self, lines: list[Line]) -> int:
        """Live lines from the stream; kept only when the window reaches the live end."""
        if self.at_live_end:
            last = self.last_id
            fresh = [ln for ln in lines if last is None or ln.id > last]
            self.lines.extend(fresh)
            return len(fresh)
        self.pending.extend(lines)
        if len(self.pending) > self.pending_limit:
            self.pending.clear()
            self.pending_overflow = True
        return 0

    def _drain_pending(self) -> None:
        last = self.last_id
        self.lines.extend(ln for ln in self.pending if last is None or ln.id > last)
        self.pending.clear()

    def trim(self, keep_from: int, keep_to: int) -> int:
        """Drop lines far from the viewport [keep_from, keep_to). Returns how many lines were
        dropped from the front (the caller shifts its scroll by that much)."""
        excess = len(self.lines) - self.max_lines
        if excess <= 0:
            return 0
        room_before = keep_from
        room_after = len(self.lines) - keep_to
        drop_front = min(excess, room_before) if room_before >= room_after else max(
            0, excess - room_after)
        drop_back = min(excess - drop_front, room_after)
        if drop_back > 0:
            del self.lines[len(self.lines) - drop_back:]
            self.at_live_end = False
        if drop_front > 0:
            del self.lines[:drop_front]
            self.has_older = True
            if self.abs_start is not None:
                self.abs_start += drop_front
        return drop_front
