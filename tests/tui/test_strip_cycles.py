"""The rows the TUI draws die by reference counting (seamless_tui/strip_cycles.py): no
rendered strip is left in a reference cycle for a GC pass to find, a pause inside a key's
answer while a log floods in."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.segment import Segment
from textual.strip import Strip

from seamless_tui.screens.dashboard import DashboardScreen
from seamless_tui.screens.run import RunScreen
from seamless_tui.strip_cycles import install
from seamless_tui.widgets.log_pane import LogPane
from tests.tui.conftest import LiveAgent, wait_for


@contextmanager
def strips_left_for_the_gc() -> Iterator[list[int]]:
    """Counts the strips made inside the block that only a GC pass could free."""
    counted: list[int] = []
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a pass finds unreachable stays in gc.garbage
    try:
        yield counted
        gc.collect()
        counted.append(sum(isinstance(found, Strip) for found in gc.garbage))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def press(pilot: Any, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await pilot.pause()


def test_a_whole_cut_or_crop_returns_the_strip_without_caching_it_on_itself():
    install()

    with strips_left_for_the_gc() as left:
        strip = Strip([Segment("stream line 1: "), Segment("PASSED")])
        assert strip.divide([21]) == [strip]
        assert strip.crop_extend(0, 21, None) is strip
        # Other results are still cached: the same object comes back.
        assert strip.divide([7, 21]) is strip.divide([7, 21])
        assert strip.crop_extend(2, 30, None) is strip.crop_extend(2, 30, None)
        del strip
    assert left == [0]


async def test_moving_around_the_dashboard_and_a_run_leaves_no_strip_for_the_gc(
        live_agent: LiveAgent):
    """Keys that repaint without closing anything: a closed screen's widgets are garbage of
    their own, once, with their rows."""
    app = live_agent.app()
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                       and len(app.screen.rows) == 4, "the overview")
        await pilot.pause()
        with strips_left_for_the_gc() as left:
            await press(pilot, "j", "j", "k", "G", "g")
        assert left == [0]
        await pilot.press("j", "l")  # a service's last run: its stages and its log
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                       and app.screen.query_one(LogPane).view is not None, "the run's log")
        await pilot.pause()
        with strips_left_for_the_gc() as left:
            await press(pilot, "j", "k", "tab", "k", "g", "G", "tab")
        assert left == [0]

