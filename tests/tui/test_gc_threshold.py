"""While the TUI runs, Python's young GC passes come every 10,000 allocations, not 700: in a
log flood the objects that live about a second then die young instead of reaching the oldest
generation and setting off a full pass (a key's pause) every ~2 s. Python's own setting comes
back when the App ends (tests run many Apps in one process)."""

from __future__ import annotations

import gc

from seamless_tui.app import YOUNG_GC_THRESHOLD
from tests.tui.conftest import LiveAgent, wait_for


async def test_young_gc_passes_are_spaced_while_the_app_runs_and_restored_after(
        live_agent: LiveAgent):
    before = gc.get_threshold()
    assert before[0] != YOUNG_GC_THRESHOLD
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: gc.get_threshold()[0] == YOUNG_GC_THRESHOLD,
                       "the threshold set")
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before
