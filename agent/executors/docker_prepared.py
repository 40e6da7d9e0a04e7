"""Container work kept off a stage's critical path.

`ReadyContainers`: the container of the stage that will probably run next is
created while the current stage runs, so the next stage starts at once. A ready
container is only used for exactly the spec it was made for; anything else (a
failed create, a changed spec, a run that ended early) is discarded.

`Reaper`: a finished stage's container is removed in the background, so the
next stage (or the run's final status) does not wait for the engine to delete
it. Anything left behind by a crash is found by label at the next start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

from agent.executors.base import StageSpec

log = logging.getLogger(__name__)

READY_WAIT_S = 30.0


class Reaper:
    def __init__(self, remove: Callable[[str], None]) -> None:
        self._remove = remove
        self._pending: list[str] = []
        self._busy = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, container_id: str) -> None:
        with self._cond:
            self._pending.append(container_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="container-reaper",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted container is removed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._pending, timeout=60.0):
                    self._thread = None  # idle: a later submit starts a fresh thread
                    return
                container_id = self._pending.pop(0)
                self._busy += 1
            try:
                self._remove(container_id)
            except Exception:  # the remover logs; the reaper must outlive one failure
                log.exception("could not remove container %s", container_id[:12])
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()


class ReadyContainers:
    def __init__(self, create: Callable[[StageSpec], str], discard: Callable[[str], None]
                 ) -> None:
        self._create = create
        self._discard = discard
        self._ready: dict[str, tuple[StageSpec, Future[str | None]]] = {}
        self._lock = threading.Lock()

    def prepare(self, spec: StageSpec) -> None:
        """Start creating `spec`'s container in the background."""
        if not spec.container_name:
            return
        future: Future[str | None] = Future()
        with self._lock:
            if spec.container_name in self._ready:
                return
            self._ready[spec.container_name] = (spec, future)
        threading.Thread(target=self._create_into, args=(spec, future), daemon=True,
                         name="container-precreate").start()

    def take(self, spec: StageSpec) -> str | None:
        """The ready container for exactly this spec, or None (create it now)."""
        with self._lock:
            entry = self._ready.pop(spec.container_name, None)
        if entry is None:
            return None
        made_for, future = entry
        try:
            container_id = future.result(READY_WAIT_S)
        except TimeoutError:  # the engine is slow: create anew, drop this one when made
            future.add_done_callback(self._discard_result)
            return None
        if made_for != spec and container_id:
            self._discard(container_id)
            return None
        return container_id

    def discard_run(self, run_id: int) -> None:
        """Drop the containers made for a run that will not use them."""
        with self._lock:
            names = [n for n, (s, _) in self._ready.items() if s.run_id == run_id]
            entries = [self._ready.pop(n) for n in names]
        for _, future in entries:
            future.add_done_callback(self._discard_result)

    def _discard_result(self, future: Future[str | None]) -> None:
        container_id = future.result()  # never raises: _create_into settles it with None
        if container_id:
            self._discard(container_id)

    def _create_into(self, spec: StageSpec, future: Future[str | None]) -> None:
        try:
            future.set_result(self._create(spec))
        except Exception as exc:  # the stage creates it again and reports what is wrong
            log.debug("could not create %s ahead of time: %s", spec.container_name, exc)
            future.set_result(None)
