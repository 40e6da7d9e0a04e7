"""Whether the Docker engine answers, watched from one thread.

`/healthz` reports it (degraded, with the reason, while an engine the agent needs is
down), and when the engine comes back after an outage — a restart of dockerd — the
agent puts back what depends on it: every Docker environment serves the colour the
store records as active (restart policies alone do not bring every colour back after a
kill -9 of dockerd). Return callbacks are retried until they succeed (a colour may still
be starting by its restart policy when the first pass runs), a few times at most.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 3
RETURN_ATTEMPTS = 10


@dataclass(frozen=True)
class EngineState:
    state: str  # "up", "down", or "unknown" before the first probe
    detail: str | None = None  # engine version, or why it does not answer
    since: float | None = None  # time.time() of the last change
    returns: int = 0  # outages the engine came back from since the agent started


class EngineWatch:
    def __init__(self, connect: Callable[[], Any], *,
                 on_return: list[Callable[[], bool]] | None = None,
                 interval_s: float = PROBE_INTERVAL_S) -> None:
        """`connect()`: a client with a short timeout. `on_return`: called (in the
        watch's thread) when the engine answers again after an outage; True = done,
        False = call again at the next probe (at most RETURN_ATTEMPTS times)."""
        self._connect = connect
        self.on_return = list(on_return or [])
        self.interval_s = interval_s
        self.current = EngineState("unknown")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: list[tuple[Callable[[], bool], int]] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="seamless-engine-watch",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(PROBE_TIMEOUT_S + 2)

    def _loop(self) -> None:
        client = None
        while not self._stop.is_set():
            try:
                if client is None:
                    client = self._connect()
                detail = f"Docker {client.version().get('Version', '?')}"
                up = True
            except Exception as exc:  # any failure means "not answering", with its reason
                detail = f"Docker engine unreachable ({type(exc).__name__}: {exc})"[:300]
                up = False
                if client is not None:
                    client.close()
                    client = None
            self._record(up, detail)
            if up:
                self._run_pending()
            self._stop.wait(self.interval_s)
        if client is not None:
            client.close()

    def _record(self, up: bool, detail: str) -> None:
        before = self.current
        state = "up" if up else "down"
        if before.state == state:
            if before.detail != detail:
                self.current = EngineState(state, detail, before.since, before.returns)
            return
        # down at start counts too: what could not be reconciled then is done now
        returned = before.state == "down" and up
        self.current = EngineState(state, detail, time.time(),
                                   before.returns + (1 if returned else 0))
        if not up and before.state == "up":  # (at start, the executors say it once)
            log.warning("%s; waiting for it", detail)
        elif returned:
            log.warning("the Docker engine answers again (%s): reconciling the fronts", detail)
            self._pending = [(callback, 0) for callback in self.on_return]

    def _run_pending(self) -> None:
        still = []
        for callback, attempts in self._pending:
            try:
                done = callback()
            except Exception:
                log.exception("after the engine's return: %s failed", callback)
                done = False
            if not done and attempts + 1 < RETURN_ATTEMPTS:
                still.append((callback, attempts + 1))
        self._pending = still
