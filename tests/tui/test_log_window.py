"""The in-memory slice of a log: bounded, gap-free when paging back to the live end."""

from __future__ import annotations

from seamless_tui.ansi import sanitize
from seamless_tui.widgets.log_window import Line, LogWindow


def _lines(start: int, count: int) -> list[Line]:
    return [Line(f"{i:026d}", "2026-03-14T12:00:00", "stdout", f"l{i}")
            for i in range(start, start + count)]


def test_trim_drops_the_side_far_from_the_viewport_and_reports_front_drops():
    w = LogWindow(max_lines=100)
    w.reset(_lines(0, 150), has_older=False, at_live_end=True, abs_start=0)
    assert w.trim(140, 150) == 50  # viewing the end: the oldest go
    assert len(w) == 100 and w.has_older and w.abs_start == 50 and w.at_live_end
    w.prepend(_lines(0, 50), has_more=False)
    assert w.trim(0, 10) == 0  # viewing the top: the newest go, and we leave the live end
    assert len(w) == 100 and not w.at_live_end and w.lines[-1].text == "l99"


def test_live_lines_wait_while_away_and_join_without_gap_or_duplicate():
    w = LogWindow(max_lines=1000)
    w.reset(_lines(0, 10), has_older=False, at_live_end=False, abs_start=0)
    assert w.add_live(_lines(20, 5)) == 0  # not at the end: held back
    w.extend_newer(_lines(10, 12), reached_end=True)  # the page overlaps the held lines
    assert [ln.text for ln in w.lines] == [f"l{i}" for i in range(25)]
    assert w.at_live_end and not w.pending


def test_pending_overflow_forces_another_page_instead_of_a_gap():
    w = LogWindow(max_lines=1000, pending_limit=5)
    w.reset(_lines(0, 10), has_older=False, at_live_end=False, abs_start=0)
    w.add_live(_lines(30, 10))
    w.extend_newer(_lines(10, 5), reached_end=True)
    assert not w.at_live_end  # lines 15..29 were never held: page again


def test_sanitize_keeps_colour_and_drops_cursor_and_terminal_escapes():
    assert sanitize("\x1b[1;32mok\x1b[0m") == "\x1b[1;32mok\x1b[0m"
    assert sanitize("a\x1b[2Jb\x1b[5;1Hc\x1b[?1049h") == "abc"
    assert sanitize("\x1b]0;title\x07x\x1b]8;;http://x\x1b\\y") == "xy"
    assert sanitize("10%\r50%\r100%") == "100%"
    assert sanitize("bell\x07\x08!") == "bell!"
