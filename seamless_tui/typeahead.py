"""Type-ahead: keys typed faster than the TUI handles them are kept and handed over one at
a time, each once the one before has been handled and the screen on top can take it, in
order (`:payments` typed at once jumps; `u` `y` typed fast unpins).

Textual forwards each key to the focused widget at once, and the binding it triggers runs
only when the key has bubbled back up to the App. Keys typed meanwhile were forwarded to
the old screen's widget (`:` `p` → `p` went to the dashboard, not the jump box), or to a
screen with nothing focused yet: lost. Here a key is forwarded only when the key before
it is done (a `KeyHandled` marker sent after it along the same path has reached the App),
and the screen on top is mounted and has its focus. Every wait is bounded.
"""

from __future__ import annotations

import time
from typing import Any
from weakref import WeakKeyDictionary, ref

from textual.message import Message
from textual.screen import Screen

SCREEN_BOUND_S = 1.0  # longest wait for a new screen to be ready
HOLD_BOUND_S = 5.0  # longest wait for an action that opens a dialog after a fetch
KEY_BOUND_S = 1.0  # longest wait for a key's marker (its widget may have gone)
TICK_S = 0.01


class KeyHandled(Message, bubble=True):
    """Sent after a key along its path: when it reaches the App, the key is done."""

    def __init__(self, serial: int) -> None:
        super().__init__()
        self.serial = serial


class TypeAhead:
    def __init__(self) -> None:
        self.held: list[Any] = []  # textual.events.Key, oldest first
        self._serial = 0
        self._in_flight: tuple[int, float] | None = None  # (serial, deadline)
        self._target: ref[Any] = ref(self)  # where the key in flight went
        self._seen: WeakKeyDictionary[Screen[Any], float | None] = WeakKeyDictionary()
        self._hold_until = 0.0  # an action asked to hold keys until a screen opens
        self._top_at_hold: Screen[Any] | None = None

    # -- one key at a time ----------------------------------------------------------------
    def sent(self, target: Any) -> KeyHandled:
        """A key was forwarded to `target`: the marker to send after it."""
        self._serial += 1
        self._in_flight = (self._serial, time.monotonic() + KEY_BOUND_S)
        self._target = ref(target)
        return KeyHandled(self._serial)

    def handled(self, marker: KeyHandled) -> None:
        if self._in_flight is not None and self._in_flight[0] == marker.serial:
            self._in_flight = None

    # -- a dialog coming after a fetch ---------------------------------------------------------
    def hold(self, top: Screen[Any]) -> None:
        """Hold keys until a screen other than `top` is on top and ready (bounded)."""
        self._hold_until = time.monotonic() + HOLD_BOUND_S
        self._top_at_hold = top

    def release(self) -> None:
        """The action opened nothing after all (an error, a refusal)."""
        self._hold_until = 0.0
        self._top_at_hold = None

    # -- may the next key go? --------------------------------------------------------------
    def waiting(self, top: Screen[Any]) -> bool:
        """Whether the next key must wait."""
        now = time.monotonic()
        if self._in_flight is not None:
            target = self._target()
            # A key that closed its own dialog (`y`) took its marker with it: done.
            if now < self._in_flight[1] and target is not None and target.is_attached:
                return True
            self._in_flight = None
        if self._hold_until:
            if top is self._top_at_hold and now < self._hold_until:
                return True
            self.release()
        return not self._ready(top, now)

    def _ready(self, screen: Screen[Any], now: float) -> bool:
        first_seen = self._seen.get(screen, 0.0)
        if first_seen is None:
            return True  # known ready
        if not first_seen:
            self._seen[screen] = first_seen = now
        ready = screen.is_mounted and (screen.focused is not None or not screen.focus_chain)
        if ready or now - first_seen > SCREEN_BOUND_S:
            self._seen[screen] = None
            return True
        return False
