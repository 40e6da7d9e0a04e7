"""The log writer: stage output → masked lines → SQLite in batches → the bus.

Producers (executor threads) append records to one bounded deque; a single
writer thread drains it every ~100 ms (sooner once ~500 lines wait), gives the
batch consecutive ULIDs, inserts it in one transaction and then publishes it.
Ids are assigned in the writer thread, so id order is commit order: a client
resuming "after <ulid>" can never miss a line committed later with a smaller id.

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
from agent.logs.masking import SecretMasker, masker_for
from agent.logs.timestamps import iso_ts
from store.ids import new_ulids
from store.models import LogLine, LogStream
from store.space import is_storage_full
from store.store import Store

log = logging.getLogger(__name__)

# (run_id, stage, stream, text, ts-iso): the shape of a row minus its id.
Record = tuple[int, str, str, str, str]
MAX_LINE_BYTES = 64 * 1024
BATCH_LINES = 500
MAX_BATCH_LINES = 5000  # a backlog drains in bigger transactions (fewer commits)
INTERVAL_S = 0.1
# How long a line ending with the beginning of a secret waits for the next line.
HOLD_S = 3.0

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
        self._holding: set[StageLogWriter] = set()  # stage logs with lines held back
        self._holding_lock = threading.Lock()
        self._lost: dict[tuple[int, str], int] = {}  # (run, stage) → lines not stored
        self._lost_lock = threading.Lock()

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

    def hold(self, stage_log: StageLogWriter) -> None:
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
                    return
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
        # Building a LogLine per line costs more than storing it: skip when nobody listens.
        listened = [r for r in {rec[0] for rec in batch} if self.bus.has_log_subscribers(r)]
        for run_id in listened:
            self.bus.publish_logs(run_id, [_log_line(r) for r in rows if r[1] == run_id])


class StageLogWriter:
    """The `StageLog` of one stage: reassembles lines per stream, masks, queues."""

    def __init__(self, writer: LogWriter, run_id: int, stage: str, masker: SecretMasker) -> None:
        self.writer = writer
        self.run_id = run_id
        self.stage = stage
        self.masker = masker
        self.last_ts: str | None = None  # ts of the newest line handed over
        self._partial: dict[str, tuple[bytes, str]] = {}  # stream → (bytes, ts of 1st piece)
        self._skip: dict[str, int] = {}  # stream → lines to drop (stored already: rewind)
        self._lock = threading.Lock()
        self._hold_lock = threading.Lock()
        self._held: list[Record] = []  # masked lines waiting for the next one (see _masked)
        self._held_at = 0.0

    def write(self, text: str, stream: LogStream = LogStream.stdout,
              ts: datetime | None = None) -> None:
        stamp = iso_ts(ts)
        records: list[Record] = []
        for line in text.split("\n"):
            self._emit_text(line.removesuffix("\r"), stream.value, stamp, records)
        self._put(records)

    def system(self, text: str) -> None:
        self.write(text, LogStream.system)

    def write_chunk(self, data: bytes, stream: LogStream = LogStream.stdout,
                    ts: datetime | None = None) -> None:
        records: list[Record] = []
        with self._lock:
            self._feed(stream.value, data, iso_ts(ts), records)
        self._put(records)

    def write_frames(self, frames: Iterable[tuple[str, str, bytes]]) -> None:
        """Fast path for executors: many (stream, ts-iso, bytes) pieces, one queue put."""
        records: list[Record] = []
        append = records.append
        feed = self._feed
        partial = self._partial
        run_id, stage, mask = self.run_id, self.stage, self.masker.active
        with self._lock:
            fast = not partial and not mask and not self._skip
            for stream, stamp, data in frames:
                # Most pieces are exactly one whole line: skip the reassembly machinery.
                # (`find + 1 == len > 0`: one "\n", at the end, and not an empty piece.)
                if (fast and data.find(b"\n") + 1 == len(data) > 0
                        and len(data) <= MAX_LINE_BYTES and data[-2:-1] != b"\r"):
                    append((run_id, stage, stream, data[:-1].decode("utf-8", "replace"), stamp))
                else:
                    feed(stream, data, stamp, records)
                    fast = not partial and not mask and not self._skip
        self._put(records)

    def flush(self) -> None:
        self._finish_partial_lines()
        self.writer.wait_committed()

    async def flush_async(self) -> None:
        """`flush` for the event loop."""
        self._finish_partial_lines()
        await self.writer.committed()

    def _finish_partial_lines(self) -> None:
        records: list[Record] = []
        with self._lock:
            for stream, (data, stamp) in list(self._partial.items()):
                self._emit_lines(data, stream, stamp, stamp, records)
            self._partial.clear()
        self._put(records, final=True)

    def rewind(self) -> None:
        """The source is about to be read again from its start (a re-attach after a
        restart, or a fresh read of an exited container): drop a half-received line and
        skip, per stream, as many whole lines as this stage has stored already. Counting
        lines rather than comparing timestamps is exact whatever stamped them."""
        with self._lock:
            self._partial.clear()
        with self._hold_lock:  # lines held back were never stored: the re-read sends them
            self._held = []
        self.writer.wait_committed()
        counts = self.writer.store.log_line_counts(self.run_id, self.stage)
        with self._lock:
            self._skip = {s: n for s, n in counts.items() if s != LogStream.system.value and n}

    # -- internals ----------------------------------------------------------------------
    def _put(self, records: list[Record], final: bool = False) -> None:
        if self._skip:
            records = self._skipped(records)
        if not self.masker.active:
            self._queue(records)
            return
        # Masked and queued under one lock: held lines and new ones keep their order.
        with self._hold_lock:
            self._queue(self._masked(records, final))

    def _queue(self, records: list[Record]) -> None:
        if records:
            self.last_ts = records[-1][4]
            self.writer.put(records)

    def _masked(self, records: list[Record], final: bool) -> list[Record]:
        """Mask the new lines together with the ones held back (every stream, in arrival
        order), then hold back again a tail that ends with the beginning of a secret: the
        next line may finish it. `final` (a flush) lets it go. Caller holds _hold_lock."""
        held_since = self._held_at if self._held else None
        if self._held:
            records = self._held + records
            self._held = []
        if not records:
            return records
        texts = [r[3] for r in records]
        masked = self.masker.mask_lines(texts)
        if masked is not texts:
            records = [(r[0], r[1], r[2], t, r[4]) if t is not r[3] else r
                       for r, t in zip(records, masked, strict=True)]
        hold_from = len(records) - (0 if final else self.masker.unfinished_tail(masked))
        records, waiting = self._masked_across_streams(records)
        if waiting is not None and not final:
            expired = held_since is not None and waiting == 0 \
                and time.monotonic() - held_since >= HOLD_S
            if not expired:
                hold_from = min(hold_from, waiting)
        if hold_from < len(records):
            self._held = records[hold_from:]
            records = records[:hold_from]
            # A hold that starts where the last one did keeps its clock: a stream that
            # goes on talking cannot keep a line back for ever.
            self._held_at = held_since if held_since is not None and hold_from == 0 \
                else time.monotonic()
            self.writer.hold(self)
        return records

    def _masked_across_streams(self, records: list[Record]) -> tuple[list[Record], int | None]:
        """Mask each line that ends with a secret's beginning together with the next line
        of the other stream. Returns the records and the index of the first such line
        whose other stream has not spoken yet (None when there is none)."""
        opens = self.masker.open_lines([r[3] for r in records])
        waiting = None
        for i in opens:
            j = next((j for j in range(i + 1, len(records))
                      if records[j][2] != records[i][2]), None)
            if j is None:
                waiting = i if waiting is None else min(waiting, i)
                continue
            pair = self.masker.mask_lines([records[i][3], records[j][3]])
            for k, text in zip((i, j), pair, strict=True):
                if text != records[k][3]:
                    r = records[k]
                    records[k] = (r[0], r[1], r[2], text, r[4])
        return records, waiting

    def release_held(self, older_than_s: float = 0.0) -> None:
        """Let lines go that waited `older_than_s` for a next line (the writer thread's
        timer). Skipped while a producer is putting: it takes the held lines along."""
        if not self._hold_lock.acquire(blocking=False):
            return
        try:
            if self._held and time.monotonic() - self._held_at >= older_than_s:
                records, self._held = self._held, []
                self._queue(records)
        finally:
            self._hold_lock.release()

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def _skipped(self, records: list[Record]) -> list[Record]:
        """Drop the records a rewind counted as stored (rows, so a long line's pieces
        count one each, as they were stored)."""
        kept = []
        with self._lock:
            skip = self._skip
            for record in records:
                if skip.get(record[2]):
                    skip[record[2]] -= 1
                else:
                    kept.append(record)
            self._skip = {s: n for s, n in skip.items() if n}
        return kept

    def _feed(self, stream: str, data: bytes, stamp: str, out: list[Record]) -> None:
        pending = self._partial.pop(stream, None)
        line_stamp = stamp
        if pending is not None:
            data = pending[0] + data
            line_stamp = pending[1]  # a line is stamped when its first byte arrived
        last = data.rfind(b"\n")
        if last >= 0:
            self._emit_lines(data[:last], stream, line_stamp, stamp, out)
            data = data[last + 1:]
            if not data:
                return
        while len(data) > MAX_LINE_BYTES:  # an endless line: emit it in pieces (masking
            # sees the pieces joined, so a secret cut in two is still found)
            cut = MAX_LINE_BYTES
            self._emit_text(data[:cut].decode("utf-8", "replace"), stream, line_stamp, out)
            data = data[cut:]
        self._partial[stream] = (data, line_stamp)

    def _emit_lines(self, block: bytes, stream: str, first_stamp: str, stamp: str,
                    out: list[Record]) -> None:
        """Whole lines (without the last newline) in one decode and split, several times
        cheaper than one of each per line and with the same lines: a "\n" byte never sits
        inside a UTF-8 sequence. Masking happens in `_put`, over every stream at once."""
        text = block.decode("utf-8", "replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [line.removesuffix("\r") for line in lines]
        run_id, stage = self.run_id, self.stage
        if len(block) > MAX_LINE_BYTES and max(map(len, lines)) > MAX_LINE_BYTES:
            for line in lines:  # a very long line among them: cut into pieces
                self._emit_text(line, stream, first_stamp, out)
                first_stamp = stamp
            return
        out.append((run_id, stage, stream, lines[0], first_stamp))
        out.extend([(run_id, stage, stream, line, stamp) for line in lines[1:]])

    def _emit_text(self, text: str, stream: str, stamp: str, out: list[Record]) -> None:
        if len(text) <= MAX_LINE_BYTES:
            out.append((self.run_id, self.stage, stream, text, stamp))
            return
        for start in range(0, len(text), MAX_LINE_BYTES):
            out.append((self.run_id, self.stage, stream, text[start:start + MAX_LINE_BYTES],
                        stamp))
