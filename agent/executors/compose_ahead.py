"""A run's compose check (`compose config` + the policy check), started while Build runs:
a compose v1 start-up costs about half a second of CPU, and Integration Test would
otherwise pay it before `up`. Integration Test takes the result when it asks with the
same inputs (project, workspace, compose file, env, opt-ins); otherwise it checks anew.

Nothing is trusted that `up` does not use: the result is the resolved config `up` is
given, checked as it is given. Results nobody takes (Integration Test skipped, the run
cancelled) are dropped oldest first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
KEPT = 16  # results waiting at once (one per run between Build and Integration Test)
WAIT_S = 120.0  # longer than `compose config`'s own 60 s bound


class ChecksAhead(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: OrderedDict[Hashable, Future[T]] = OrderedDict()

    def start(self, key: Hashable, check: Callable[[], T]) -> None:
        """Run `check` in a thread; `take(key, …)` gets what it returned or raised."""
        future: Future[T] = Future()
        with self._lock:
            self._pending[key] = future
            while len(self._pending) > KEPT:
                self._pending.popitem(last=False)
        threading.Thread(target=_fill, args=(future, check), daemon=True,
                         name="compose-check-ahead").start()

    def take(self, key: Hashable, check: Callable[[], T]) -> T:
        """The result started for `key` (its exception raised here), else `check()`."""
        with self._lock:
            future = self._pending.pop(key, None)
        if future is None:
            return check()
        try:
            return future.result(timeout=WAIT_S)
        except TimeoutError:
            return check()


def _fill(future: Future[T], check: Callable[[], T]) -> None:
    try:
        future.set_result(check())
    except BaseException as exc:  # handed to the taker, raised where the check would be
        future.set_exception(exc)
