"""`escape` answered in ~30 ms, not ~100 ms.

A lone Esc byte may be the first of a key's escape sequence (an arrow is ESC [ A), so
Textual waits for more before it calls it `escape`. Two things made every `escape` ("back"
on every screen) at least 100 ms late:
- the wait itself, 100 ms. A terminal writes a key's whole sequence at once, so 30 ms
  (fish's wait; vim's is 25) still tells them apart. ESCDELAY, ncurses' variable, which
  Textual reads, still sets it;
- the input thread looks at the clock only when its select() returns: after 100 ms when
  no more input comes. Its selector here waits no longer than the delay.
"""

from __future__ import annotations

import os
import selectors
from types import SimpleNamespace

import textual.constants

ESCAPE_DELAY_MS = 30


class QuickSelector(selectors.SelectSelector):
    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        wait = textual.constants.ESCAPE_DELAY
        return super().select(wait if timeout is None else min(timeout, wait))


def install() -> None:
    """For the `seamless-tui` program (tests drive Textual without a terminal)."""
    if "ESCDELAY" not in os.environ:
        textual.constants.ESCAPE_DELAY = ESCAPE_DELAY_MS / 1000  # type: ignore[misc]
    try:
        from textual.drivers import linux_driver
    except ImportError:  # no termios (Windows): another driver reads the keys
        return
    linux_driver.selectors = SimpleNamespace(  # type: ignore[assignment]
        SelectSelector=QuickSelector, EVENT_READ=selectors.EVENT_READ)
