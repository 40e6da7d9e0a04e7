"""The `StageLog` seam: where a stage's (or a deploy's) output goes.

Executors and deploy targets write through it; `agent.logs.writer` is the
implementation that masks, stamps, batches into SQLite and publishes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from store.models import LogStream

Frame = tuple[str, str, bytes]  # (stream name, ts-iso, payload that may end mid-line)


class StageLog(Protocol):
    """Where a stage's output goes: masked, timestamped, batched into SQLite, published."""

    def write(self, text: str, stream: LogStream = LogStream.stdout,
              ts: datetime | None = None) -> None:
        """One line (no trailing newline)."""

    def write_chunk(self, data: bytes, stream: LogStream = LogStream.stdout,
                    ts: datetime | None = None) -> None:
        """Raw bytes that may end mid-line; lines are reassembled."""

    def write_frames(self, frames: Iterable[Frame]) -> None:
        """Many pieces at once, each like one `write_chunk` (the executors' fast path)."""

    def system(self, text: str) -> None:
        """A line from the agent itself (shown distinctly)."""

    def flush(self) -> None:
        """Finish a partial last line and wait until everything is stored."""

    def rewind(self) -> None:
        """The source will be read again from its start: drop a partial line and skip
        the lines already stored."""


def write_frames_by_chunk(log: StageLog, frames: Iterable[Frame]) -> None:
    """`write_frames` for a simple StageLog: one `write_chunk` per piece."""
    for stream, stamp, data in frames:
        log.write_chunk(data, LogStream(stream), datetime.fromisoformat(stamp))
