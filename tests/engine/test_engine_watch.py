"""EngineWatch on a fake engine: what /healthz reads, and what runs when the engine
returns (the fronts' reconcile), retried until it succeeds and only after an outage."""

from __future__ import annotations

import threading
from typing import Any

from agent.engine_watch import RETURN_ATTEMPTS, EngineWatch
from tests.harness import wait_until


class FakeEngine:
    def __init__(self) -> None:
        self.up = True
        self.probes = 0

    def connect(self) -> Any:
        engine = self

        class Client:
            def version(self) -> dict[str, str]:
                engine.probes += 1
                if not engine.up:
                    raise ConnectionError("No such file or directory")
                return {"Version": "20.10"}

            def close(self) -> None:
                pass

        return Client()


def _watch(engine: FakeEngine, on_return: list[Any]) -> EngineWatch:
    watch = EngineWatch(engine.connect, on_return=on_return, interval_s=0.01)
    watch.start()
    return watch


def _probed(engine: FakeEngine, more: int = 3) -> None:
    seen = engine.probes
    wait_until(lambda: engine.probes >= seen + more, timeout=5, interval=0.01)


def test_states_and_a_return_runs_the_callbacks_once_per_outage() -> None:
    engine = FakeEngine()
    calls: list[int] = []

    def reconcile() -> bool:
        calls.append(1)
        return True

    watch = _watch(engine, [reconcile])
    try:
        _probed(engine)
        assert watch.current.state == "up" and watch.current.detail == "Docker 20.10"
        assert calls == []  # up from the start is no return

        engine.up = False
        _probed(engine)
        assert watch.current.state == "down"
        assert "ConnectionError: No such file or directory" in (watch.current.detail or "")

        engine.up = True
        _probed(engine)
        assert watch.current.state == "up" and watch.current.returns == 1
        assert calls == [1]
    finally:
        watch.stop()


def test_a_failing_return_callback_is_retried_a_bounded_number_of_times() -> None:
    engine = FakeEngine()
    engine.up = False  # down at start: its return counts (nothing could be reconciled then)
    attempts: list[int] = []
    done = threading.Event()

    def reconcile() -> bool:
        attempts.append(1)
        if len(attempts) == 3:
            done.set()
            return True
        raise RuntimeError("the colour is still starting")

    never: list[int] = []

    def hopeless() -> bool:
        never.append(1)
        return False

    watch = _watch(engine, [reconcile, hopeless])
    try:
        _probed(engine)
        engine.up = True
        assert done.wait(5)
        _probed(engine, 2 * RETURN_ATTEMPTS)
        assert len(attempts) == 3  # not called again once it succeeded
        assert len(never) == RETURN_ATTEMPTS  # given up after the bound
    finally:
        watch.stop()
