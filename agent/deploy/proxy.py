"""Stable front addresses for blue-green deploys: a small asyncio TCP proxy.

Each (service, environment) served by the Docker target gets one `Front`: a
listening socket on the stable host port that forwards every new connection to
the live colour's backend address. Switching colours is a pointer swap (new
connections go to the new colour at once); connections already open keep
their old backend until they end, and `drain()` waits for them so the old
colour is only stopped once nothing uses it. All fronts share one event loop
in a daemon thread; the public methods are thread-safe and blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future
from typing import Any

Address = tuple[str, int]
log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5.0
_CHUNK = 64 * 1024


class Front:
    """One listening address forwarding to a switchable backend."""

    def __init__(self, host: str, port: int, backend: Address) -> None:
        self.host, self.port = host, port
        self.backend = backend
        self.active: Counter[Address] = Counter()  # open connections per backend
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, self.port,
                                                 reuse_address=True)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _connect(self) -> tuple[Address, asyncio.StreamReader, asyncio.StreamWriter]:
        # If the backend was swapped while we were connecting to the old one (which may
        # be stopping), try the new one before giving up on the client.
        last_error: Exception | None = None
        for _attempt in range(3):
            backend = self.backend
            # Counted before connecting, so drain() never misses a connection in flight.
            self.active[backend] += 1
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*backend), _CONNECT_TIMEOUT_S)
                return backend, reader, writer
            except (TimeoutError, OSError) as exc:
                self.active[backend] -= 1
                last_error = exc
                if self.backend == backend:
                    await asyncio.sleep(0.05)
        raise ConnectionError(f"backend {self.backend} unreachable: {last_error}")

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        try:
            backend, up_r, up_w = await self._connect()
        except ConnectionError as exc:
            log.warning("front %s:%s: %s", self.host, self.port, exc)
            client_w.close()
            return
        try:
            await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
        finally:
            self.active[backend] -= 1
            for w in (up_w, client_w):
                with contextlib.suppress(Exception):
                    w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction may still be talking
    except (OSError, RuntimeError):
        with contextlib.suppress(Exception):
            writer.close()


class Fronts:
    """All stable fronts of one agent, keyed by e.g. ("payments", "production")."""

    def __init__(self) -> None:
        self._fronts: dict[Any, Front] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self, coro: Any) -> Any:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="seamless-fronts",
                                 daemon=True).start()
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout=30)

    def ensure(self, key: Any, host: str, port: int, backend: Address) -> Front:
        """The front for `key`, listening on host:port (started if needed)."""
        front = self._fronts.get(key)
        if front is not None and (front.host, front.port) == (host, port):
            return front
        if front is not None:  # the stable address changed: replace it
            self.close(key)
        front = Front(host, port, backend)
        self._run(front.start())  # raises OSError when the port is taken
        self._fronts[key] = front
        return front

    def get(self, key: Any) -> Front | None:
        return self._fronts.get(key)

    def switch(self, key: Any, backend: Address) -> Address:
        """Send new connections to `backend`; returns the previous backend."""
        front = self._fronts[key]
        old, front.backend = front.backend, backend  # one assignment: atomic for the loop
        return old

    def drain(self, key: Any, backend: Address, timeout_s: float = 10.0) -> int:
        """Wait until no connection uses `backend`; returns how many were still open."""
        front = self._fronts[key]
        deadline = time.monotonic() + timeout_s
        while front.active[backend] > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        return front.active[backend]

    def close(self, key: Any) -> None:
        front = self._fronts.pop(key, None)
        if front is not None:
            self._run(front.stop())

    def close_all(self) -> None:
        for key in list(self._fronts):
            self.close(key)
        if self._loop is not None:
            self._run(_cancel_connections())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None


async def _cancel_connections() -> None:
    """Close connections still being forwarded, so the loop stops with nothing pending."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
