"""Filters on the server's own log: no token in it, no flood of one repeated line.

- A browser may still put `?token=` on a WebSocket URL (it cannot set headers);
  uvicorn writes the URL to its access and error logs. `TokenScrubber` blanks
  the value in every record's message and arguments before any handler sees it.
- Under a file-descriptor shortage the accept loop logs the same error in a
  tight loop (895 MB in 70 s). `RepeatLimiter` lets a few copies of a line
  through per window and then counts, noting the count on the next copy let
  through.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

_TOKEN = re.compile(r"((?:[?&;]|%3F|%26)(?:access_token|token|sig)(?:=|%3D))[^&\s\"' ]+",
                    re.IGNORECASE)
_BEARER = re.compile(r"(\b(?:sls_)[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+")
SCRUBBED_LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "asyncio", "fastapi",
                    "starlette", "websockets", "seamless.agent")


def scrub(text: str) -> str:
    return _BEARER.sub(r"\1…", _TOKEN.sub(r"\1***", text))


def _scrub_arg(value: Any) -> Any:
    return scrub(value) if isinstance(value, str) else value


class TokenScrubber(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
        return True


class RepeatLimiter(logging.Filter):
    """At most `burst` copies of one (logger, message) per `window_s`."""

    def __init__(self, burst: int = 5, window_s: float = 10.0) -> None:
        super().__init__()
        self.burst, self.window_s = burst, window_s
        self._seen: dict[tuple[str, str], list[float]] = {}  # key → [start, count, dropped]
        self._lock = threading.Lock()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            key = (record.name, record.getMessage()[:300])
        except Exception:  # a bad format string is the handler's problem, not ours
            return True
        now = time.monotonic()
        with self._lock:
            state = self._seen.get(key)
            if state is None or now - state[0] > self.window_s:
                dropped = int(state[2]) if state else 0
                if len(self._seen) > 1000:  # bounded: forget old keys
                    self._seen.clear()
                self._seen[key] = [now, 1, 0]
                if dropped:
                    record.msg = f"{record.getMessage()} (and {dropped} more like it, not logged)"
                    record.args = ()
                return True
            state[1] += 1
            if state[1] <= self.burst:
                return True
            state[2] += 1
            self.dropped += 1
            return False


_installed = False


def install() -> None:
    """Once per process: scrub tokens and limit repeats on the server's loggers."""
    global _installed
    if _installed:
        return
    _installed = True
    scrubber, limiter = TokenScrubber(), RepeatLimiter()
    for name in SCRUBBED_LOGGERS:
        logger = logging.getLogger(name)
        logger.addFilter(scrubber)
        if name != "uvicorn.access":  # one line per request, and its formatter needs args
            logger.addFilter(limiter)
