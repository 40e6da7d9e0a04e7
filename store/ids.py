"""Monotonic ULIDs: log-line ids that sort in the order the lines were written,
even when many arrive in the same millisecond (plain ULIDs are random there)."""

from __future__ import annotations

import threading
import time

from ulid import ULID

_lock = threading.Lock()
_last = 0


def new_ulid(ts: float | None = None) -> str:
    global _last
    millis = int((time.time() if ts is None else ts) * 1000)
    with _lock:
        candidate = int(ULID.from_timestamp(millis / 1000))
        # Same (or an earlier) millisecond: step one past the last id instead.
        value = candidate if (candidate >> 80) > (_last >> 80) else _last + 1
        _last = value
    return str(ULID.from_int(value))
