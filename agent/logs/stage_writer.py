"""The `StageLog` of one stage: output pieces → whole lines per stream → masked →
queued on the log writer (agent.logs.writer) in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import datetime

from agent.logs.masking import SecretMasker
from agent.logs.records import HOLD_S, MAX_LINE_BYTES, Record, RecordSink
from agent.logs.timestamps import iso_ts
from store.models import LogStream


class StageLogWriter:
    """The `StageLog` of one stage: reassembles lines per stream, masks, queues."""

    def __init__(self, writer: RecordSink, run_id: int, stage: str, masker: SecretMasker) -> None:
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
