"""Full garbage-collection passes at moments without keys.

Python starts a full pass (every tracked object of the heap) on its own schedule. While a
stage log floods in, that was every ~2 s, 20-170 ms each, and nearly every one landed inside
a key's answer (the tmux journey, measured with a gc.callbacks probe). The pacer leaves the
cheap young passes to Python and runs the full ones itself: once they are due and no key
came for `IDLE_S`, or, when keys never stop, once they are long overdue (the garbage they
free stays bounded).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

IDLE_S = 0.3  # no key for this long: a reader's pause, the moment for a full pass
DUE = 10  # young (generation 1) passes since the last full pass: Python's own threshold
# A full pass even while keys keep coming (~13 s of a 10,000 lines/s flood): the longer it
# waits, the more garbage it has to go through (~300 ms after 20 s of a flood at load 7).
OVERDUE = 100
NEVER = 1 << 30  # as Python's own threshold for full passes


class GcPacer:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 collect: Callable[[], object] = gc.collect,
                 pending: Callable[[], int] = lambda: gc.get_count()[2]) -> None:
        self._clock = clock
        self._collect = collect
        self._pending = pending  # young passes since the last full one
        self._last_key = clock()
        self._saved: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Python keeps its young passes and starts no full one."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            young, middle, _ = self._saved
            gc.set_threshold(young, middle, NEVER)

    def stop(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def key_seen(self) -> None:
        self._last_key = self._clock()

    def tick(self) -> bool:
        """A full pass if one is due and this is the moment; True if it ran."""
        pending = self._pending()
        if pending < DUE:
            return False
        if pending < OVERDUE and self._clock() - self._last_key < IDLE_S:
            return False
        self._collect()
        return True
