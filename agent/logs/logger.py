"""A StageLog for deploy work that belongs to no run stage (rollbacks from the API):
lines go to the agent's logger and are kept in memory for whoever started the work."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime

from agent.logs import Frame, write_frames_by_chunk
from store.models import LogStream

log = logging.getLogger("seamless.deploy")


class LoggingStageLog:
    def __init__(self, prefix: str, keep: int = 1000) -> None:
        self.prefix = prefix
        self.lines: list[str] = []
        self._keep = keep
        self._partial = b""
        self._lock = threading.Lock()

    def write(self, text: str, stream: LogStream = LogStream.stdout,
              ts: datetime | None = None) -> None:
        with self._lock:
            self.lines.append(text)
            del self.lines[:-self._keep]
        log.info("%s: %s", self.prefix, text)

    def write_chunk(self, data: bytes, stream: LogStream = LogStream.stdout,
                    ts: datetime | None = None) -> None:
        *complete, self._partial = (self._partial + data).split(b"\n")
        for line in complete:
            self.write(line.decode(errors="replace"), stream, ts)

    def write_frames(self, frames: Iterable[Frame]) -> None:
        write_frames_by_chunk(self, frames)

    def system(self, text: str) -> None:
        self.write(text, LogStream.system)

    def flush(self) -> None:
        if self._partial:
            self.write(self._partial.decode(errors="replace"))
            self._partial = b""

    def rewind(self) -> None:
        """Deploy work is never read again from a source: only the partial line goes."""
        self._partial = b""
