"""In-process publish/subscribe for events and log lines.

Publishers (the engine, the log writer thread) call `publish_*` from any thread
after the change is committed to SQLite. Subscribers get a bounded asyncio queue:
a subscriber that falls too far behind is marked `lagged` and dropped, never
allowed to stall a publisher; it resumes from the store by cursor.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from store.models import Event, LogLine

Listener = Callable[[Event], None]


@dataclass(eq=False)
class Subscription:
    """One subscriber's bounded queue; `lagged` is set when it overflowed."""

    bus: Bus
    topic: Any
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any] = field(init=False)
    maxsize: int = 10_000
    lagged: bool = False

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.maxsize)

    def _offer(self, item: Any) -> None:  # runs on the subscriber's loop
        if self.lagged:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.lagged = True
            self.bus.unsubscribe(self)

    async def get(self) -> Any:
        return await self.queue.get()

    def get_nowait(self) -> Any:
        return self.queue.get_nowait()

    def close(self) -> None:
        self.bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus:
    EVENTS = "events"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[Any, set[Subscription]] = {}
        self._listeners: list[Listener] = []
        # Every event passes the agent's secret masker before anyone sees it (listeners
        # feed notifications and commit statuses; subscribers are /ws/events).
        self.redact_event: Callable[[Event], Event] = _unchanged

    # -- subscribing ------------------------------------------------------------------
    def subscribe_events(self, maxsize: int = 10_000) -> Subscription:
        return self._subscribe(self.EVENTS, maxsize)

    def subscribe_logs(self, run_id: int, maxsize: int = 50_000) -> Subscription:
        """Items are `list[LogLine]` batches, in commit order."""
        return self._subscribe(("logs", run_id), maxsize)

    def _subscribe(self, topic: Any, maxsize: int) -> Subscription:
        sub = Subscription(self, topic, asyncio.get_running_loop(), maxsize=maxsize)
        with self._lock:
            self._subs.setdefault(topic, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.topic]

    def add_listener(self, listener: Listener) -> None:
        """A synchronous callback for every event, run in the publisher's thread:
        keep it quick (hand work to a queue)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- publishing --------------------------------------------------------------------
    def publish_event(self, event: Event) -> None:
        event = self.redact_event(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break the engine
                import logging

                logging.getLogger(__name__).exception("event listener failed")
        self._deliver(self.EVENTS, event)

    def publish_logs(self, run_id: int, lines: list[LogLine]) -> None:
        if lines:
            self._deliver(("logs", run_id), lines)

    def _deliver(self, topic: Any, item: Any) -> None:
        with self._lock:
            subs = list(self._subs.get(topic, ()))
        for sub in subs:
            try:
                if _on_loop(sub.loop):
                    sub._offer(item)
                else:
                    sub.loop.call_soon_threadsafe(sub._offer, item)
            except RuntimeError:  # the subscriber's loop is closed: it is gone
                self.unsubscribe(sub)

    def has_log_subscribers(self, run_id: int) -> bool:
        with self._lock:
            return bool(self._subs.get(("logs", run_id)))


def _unchanged(event: Event) -> Event:
    return event


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
