"""Waiting in tests: on the agent's bus events where there is an agent in the process,
else by polling a predicate. Every wait is bounded and says what it waited for."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from agent.bus import Bus, Subscription
from agent.runtime import Agent
from store.models import FINISHED_RUN_STATUSES, Event, RunInfo

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.1,
               what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError otherwise.
    For what no bus event announces (another process, a container, a port)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate!r}")
        time.sleep(interval)


async def wait_event(bus: Bus, check: Callable[[], T | None], timeout: float = 30.0,
                     what: str = "", relevant: Callable[[Event], bool] = lambda e: True,
                     logs_of: int | None = None) -> T:
    """`check()` once now and again after each relevant bus event (and each batch of log
    lines of run `logs_of`), until it returns something truthy. Subscribed before the
    first check: nothing slips between."""
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as stack:
        events = stack.enter_context(bus.subscribe_events())
        logs = stack.enter_context(bus.subscribe_logs(logs_of)) if logs_of is not None else None
        while not (result := check()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or check!r}")
            await _next_wakeup(events, logs, relevant, left)
        return result


async def _next_wakeup(events: Subscription, logs: Subscription | None,
                       relevant: Callable[[Event], bool], left: float) -> None:
    """Until a relevant event or a log batch arrives, or `left` seconds pass."""
    waiters = {asyncio.ensure_future(events.get())}
    if logs is not None:
        waiters.add(asyncio.ensure_future(logs.get()))
    try:
        end = time.monotonic() + left
        while (remaining := end - time.monotonic()) > 0:
            done, _ = await asyncio.wait(waiters, timeout=remaining,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                return
            for task in done:
                item = task.result()
                if not isinstance(item, Event) or relevant(item):
                    return
                waiters.discard(task)
                waiters.add(asyncio.ensure_future(events.get()))
    finally:
        for task in waiters:
            task.cancel()


async def wait_run(agent: Agent, run_id: int, until: Callable[[RunInfo], bool] | None = None,
                   timeout: float = 120.0) -> RunInfo:
    """The run once it is finished (or `until` holds), woken by its own events and log
    lines (an `until` may look at either)."""
    done = until or (lambda r: r.status in FINISHED_RUN_STATUSES)

    def check() -> RunInfo | None:
        run = agent.store.get_run(run_id)
        return run if done(run) else None

    try:
        return await wait_event(agent.bus, check, timeout, f"run {run_id}",
                                relevant=lambda e: e.run is not None and e.run.id == run_id,
                                logs_of=run_id)
    except TimeoutError:
        run = agent.store.get_run(run_id)
        raise AssertionError(f"run {run_id} still {run.status}: "
                             f"{[(s.name, s.status.value) for s in run.stages]}") from None
