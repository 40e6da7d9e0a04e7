"""The log writer: stage output → masked lines → SQLite in batches → the bus.

Producers (executor threads) append records to one bounded deque; a single
writer thread drains it every ~100 ms (sooner once ~500 lines wait), gives the
batch consecutive ULIDs, inserts it in one transaction and then publishes it.
Ids are assigned in the writer thread, so id order is commit order: a client
resuming "after <ulid>" can never miss a line committed later with a smaller id.

Search: after a pass without a backlog, the writer indexes a chunk of the lines it stored
(store.log_index), keeping step with a stage streaming steadily; a backlog (a flood faster
than the inserts) is stored at full speed first and indexed once it eases.

Backpressure: when `max_pending` lines wait, producers block (the executor
thread, never the event loop), so a stage printing a million lines cannot grow
memory without bound; the container just waits on its pipe.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import datetime

from agent.bus import Bus
from agent.logs.masking import masker_for
from agent.logs.records import HOLD_S, HeldLines, Record
from agent.logs.stage_writer import StageLogWriter
from store.ids import new_ulids
from store.models import LogLine, LogStream
from store.space import is_storage_full
from store.store import Store

log = logging.getLogger(__name__)

BATCH_LINES = 500
MAX_BATCH_LINES = 5000  # a backlog drains in bigger transactions (fewer commits)
INTERVAL_S = 0.1
INDEX_LINES = 2000  # lines indexed per pass: the write lock is held ~10-20 ms
STOP_INDEX_S = 2.0  # on stop, how long to catch the index up (the rest is scanned)

_STREAMS = {s.value: s for s in LogStream}
_LOGLINE_FIELDS = frozenset(LogLine.model_fields)


def _log_line(row: tuple[str, int, str, str, str, str]) -> LogLine:
    """A LogLine without validation: the row was built by us (model_construct is ~4x
    slower, and this runs for every published line)."""
    line = object.__new__(LogLine)
    object.__setattr__(line, "__dict__", {
        "id": row[0], "run_id": row[1], "stage": row[2], "stream": _STREAMS[row[3]],
        "text": row[4], "ts": datetime.fromisoformat(row[5])})
    object.__setattr__(line, "__pydantic_fields_set__", _LOGLINE_FIELDS)
    object.__setattr__(line, "__pydantic_extra__", None)
    object.__setattr__(line, "__pydantic_private__", None)
    return line


class _LoopMarker:
    """A commit marker that wakes a coroutine (see LogWriter.committed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        self.loop = loop
        self.done = done

    def set(self) -> None:
        def settle() -> None:
            if not self.done.done():
                self.done.set_result(None)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop closed meanwhile
            pass


class LogWriter:
    def __init__(self, store: Store, bus: Bus, max_pending: int = 20_000,
                 interval_s: float = INTERVAL_S,
                 shared_secrets: Callable[[], Iterable[str]] = tuple) -> None:
        self.store = store
        self.shared_secrets = shared_secrets  # the agent's: masked in every stage's log
        self.bus = bus
        self.max_pending = max_pending
        self.interval_s = interval_s
        self.peak_pending = 0  # observed high-water mark (tests, metrics)
        self.lines_written = 0
        # Whole lists of records as the producers handed them (not one entry per line:
        # that cost a deque operation and an isinstance per line), and commit markers.
        self._queue: deque[list[Record] | threading.Event | _LoopMarker] = deque()
        self._pending = 0  # lines in the queue (the backpressure bound counts lines)
        self._count_lock = threading.Lock()
        self._put_lock = threading.Lock()
        self._space = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sync_lock = threading.Lock()
        self._holding: set[HeldLines] = set()  # stage logs with lines held back
        self._holding_lock = threading.Lock()
        self._lost: dict[tuple[int, str], int] = {}  # (run, stage) → lines not stored
        self._lost_lock = threading.Lock()
        self._unindexed: dict[tuple[int, str], None] = {}  # stages with lines to index

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Drain what is queued, then stop the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    @property
    def pending(self) -> int:
        return self._pending

    def stage_log(self, run_id: int, stage: str, secrets: list[str]) -> StageLogWriter:
        return StageLogWriter(self, run_id, stage,
                              masker_for((*secrets, *self.shared_secrets())))

    # -- producers --------------------------------------------------------------------
    def put(self, records: list[Record]) -> None:
        """Queue records; blocks while the queue is full (backpressure)."""
        if not records:
            return
        if not self.running:  # stopped (or never started): write in the caller's thread
            with self._sync_lock:
                self._write(list(records))
            return
        count = len(records)
        # The writer thread itself (releasing held lines) never waits for its own drain.
        waits = threading.current_thread() is not self._thread
        with self._put_lock:  # one producer at a time waits for space: the bound holds
            while (waits and self._pending + count > self.max_pending and self._pending
                   and self.running):
                self._wake.set()
                with self._space:
                    self._space.wait(0.05)
            with self._count_lock:
                self._queue.append(list(records))
                self._pending += count
                size = self._pending
        if size > self.peak_pending:
            self.peak_pending = size
        if size >= BATCH_LINES:
            self._wake.set()

    async def committed(self) -> None:
        """`wait_committed` for the event loop: no thread is tied up while it waits."""
        if not self.running:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append(_LoopMarker(loop, done))
        self._wake.set()
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(done), 0.5)
            except TimeoutError:
                if not self.running and self._thread is None:
                    return

    def wait_committed(self) -> None:
        """Block until every record queued before this call is committed."""
        if not self.running:
            return
        marker = threading.Event()
        self._queue.append(marker)
        self._wake.set()
        while not marker.wait(0.5):
            if not self.running and self._thread is None:
                return

    def hold(self, stage_log: HeldLines) -> None:
        """`stage_log` holds lines back: release them after HOLD_S if nothing came."""
        with self._holding_lock:
            self._holding.add(stage_log)

    def _release_held(self, older_than_s: float) -> None:
        with self._holding_lock:
            holding = list(self._holding)
        for stage_log in holding:
            stage_log.release_held(older_than_s)
            if not stage_log.holding:
                with self._holding_lock:
                    if not stage_log.holding:
                        self._holding.discard(stage_log)

    # -- the writer thread --------------------------------------------------------------
    def _run(self) -> None:
        queue = self._queue
        while True:
            if self._pending < BATCH_LINES and not self._stopping:
                self._wake.wait(self.interval_s)
                self._wake.clear()
            if self._holding:
                self._release_held(0.0 if self._stopping else HOLD_S)
            if not queue:
                if self._stopping:
                    self._index_some(deadline=time.monotonic() + STOP_INDEX_S)
                    return
                # Idle: index until the next tick is due or lines come in.
                self._index_some(deadline=time.monotonic() + self.interval_s)
                continue
            batch: list[Record] = []
            markers: list[threading.Event | _LoopMarker] = []
            with self._count_lock:
                while queue and len(batch) < MAX_BATCH_LINES:
                    item = queue.popleft()
                    if not isinstance(item, list):
                        markers.append(item)
                        continue
                    room = MAX_BATCH_LINES - len(batch)
                    if len(item) > room:  # a huge put: keep transactions bounded
                        queue.appendleft(item[room:])
                        item = item[:room]
                    batch.extend(item)
                self._pending -= len(batch)
            with self._space:
                self._space.notify_all()
            try:
                self._write(batch)
            except Exception as exc:  # a failing store must not kill the writer (or hang flush)
                self._count_lost(batch, exc)
            for marker in markers:
                marker.set()
            if self._pending < MAX_BATCH_LINES:  # no backlog: keep the index in step
                self._index_some()  # (a backlog is stored first, indexed once it eases)

    def _index_some(self, deadline: float | None = None) -> None:
        """Index stored lines for search (store.log_index), a chunk at a time: one chunk
        (after a pass of the loop), or chunks until `deadline` while nothing new is
        queued (lines, a flush waiting). A stage whose index cannot be written is
        searched by the scan (slower, still complete)."""
        while self._unindexed and (deadline is None or not self._queue or self._stopping):
            key = next(iter(self._unindexed))
            try:
                done = self.store.index_logs(*key, limit=INDEX_LINES) < INDEX_LINES
            except Exception as exc:  # a full disk, a closed store: not the lines
                log.debug("log search index of run %s %s not written: %s", *key, exc)
                done = True
            del self._unindexed[key]
            if not done:  # round robin: back of the line
                self._unindexed[key] = None
            if deadline is None or time.monotonic() > deadline:
                return

    def _count_lost(self, batch: list[Record], exc: Exception) -> None:
        """Lines that could not be stored are counted per stage: the stage fails with the
        count (see RunDriver._settle), nothing is lost silently."""
        with self._lost_lock:
            first = not self._lost
            for key, count in Counter((r[0], r[1]) for r in batch).items():
                self._lost[key] = self._lost.get(key, 0) + count
        if is_storage_full(exc) and not first:
            log.debug("could not store %d log lines: %s", len(batch), exc)
        else:  # once per full disk, every time for anything else
            log.error("could not store %d log lines", len(batch), exc_info=exc)

    def lost(self, run_id: int, stage: str) -> int:
        """How many of this stage's lines could not be stored; forgets the count."""
        with self._lost_lock:
            return self._lost.pop((run_id, stage), 0)

    def _write(self, batch: list[Record]) -> None:
        if not batch:
            return
        ids = new_ulids(len(batch))
        rows = [(i, *rec) for i, rec in zip(ids, batch, strict=True)]
        self.store.insert_log_rows(rows)
        self.lines_written += len(rows)
        self._unindexed.update(dict.fromkeys((rec[0], rec[1]) for rec in batch))
        # Building a LogLine per line costs more than storing it: skip when nobody listens.
        listened = [r for r in {rec[0] for rec in batch} if self.bus.has_log_subscribers(r)]
        for run_id in listened:
            self.bus.publish_logs(run_id, [_log_line(r) for r in rows if r[1] == run_id])
