"""Full GC passes wait for a moment without keys (they were the pause of the key that landed
on one while a log floods in), yet never wait for ever."""

from __future__ import annotations

import gc

from seamless_tui.gc_pacing import DUE, IDLE_S, OVERDUE, GcPacer
from tests.tui.conftest import LiveAgent, wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pacer(pending: list[int]) -> tuple[GcPacer, Clock, list[int]]:
    clock, passes = Clock(), []
    return GcPacer(clock, collect=lambda: passes.append(1), pending=lambda: pending[0]), \
        clock, passes


def test_a_due_full_pass_waits_until_no_key_came_for_a_moment():
    pending = [DUE]
    gc_pacer, clock, passes = pacer(pending)
    gc_pacer.key_seen()
    clock.now += IDLE_S / 2
    assert not gc_pacer.tick() and not passes  # keys are being typed
    clock.now += IDLE_S
    assert gc_pacer.tick() and passes == [1]


def test_no_full_pass_before_it_is_due_even_when_idle():
    gc_pacer, clock, passes = pacer([DUE - 1])
    clock.now += 60
    assert not gc_pacer.tick() and not passes


def test_an_overdue_full_pass_runs_even_while_keys_keep_coming():
    pending = [OVERDUE]
    gc_pacer, clock, passes = pacer(pending)
    gc_pacer.key_seen()
    assert gc_pacer.tick() and passes == [1]


async def test_the_app_takes_over_full_passes_and_gives_them_back_on_exit(
        live_agent: LiveAgent):
    before = gc.get_threshold()
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: gc.get_threshold()[2] > 10**6, "the pacer started")
        assert gc.get_threshold()[:2] == before[:2]  # young passes as Python has them
        app.gc_pacer._last_key = 0.0
        await pilot.press("j")
        assert app.gc_pacer._last_key > 0.0  # a key puts the next full pass off
    assert gc.get_threshold() == before
