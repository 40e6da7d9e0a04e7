"""The shape of a stored log line as producers hand it over, and the seam between a
stage's log (which reassembles and masks lines) and the writer (which stores them)."""

from __future__ import annotations

from typing import Protocol

from store.store import Store

# (run_id, stage, stream, text, ts-iso): the shape of a row minus its id.
Record = tuple[int, str, str, str, str]
MAX_LINE_BYTES = 64 * 1024
# How long a line ending with the beginning of a secret waits for the next line.
HOLD_S = 3.0


class HeldLines(Protocol):
    """A stage log that may hold lines back (see StageLogWriter._masked)."""

    @property
    def holding(self) -> bool: ...

    def release_held(self, older_than_s: float = 0.0) -> None: ...


class RecordSink(Protocol):
    """Where a stage log queues its lines: the LogWriter."""

    store: Store

    def put(self, records: list[Record]) -> None: ...

    def hold(self, stage_log: HeldLines) -> None: ...

    def wait_committed(self) -> None: ...

    async def committed(self) -> None: ...
