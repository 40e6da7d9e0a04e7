"""The data dir's free space against a floor, and how a full disk shows up.

Below the floor the agent takes no new runs (the API answers 507) and /healthz says why;
it resumes by itself: every check reads the file system again (statvfs costs
microseconds). A write that failed with "disk full" — SQLite's SQLITE_FULL or ENOSPC —
is recognised by `is_storage_full` wherever it surfaces (API, CLI, log writer).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class StorageFull(RuntimeError):
    """New work refused: the data dir is below its free-space floor (or a write failed
    because the disk is full). The message says how much is free and what to do."""


def is_storage_full(exc: BaseException) -> bool:
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS


@dataclass(frozen=True)
class Space:
    free_bytes: int
    floor_bytes: int
    path: str

    @property
    def low(self) -> bool:
        return self.free_bytes < self.floor_bytes

    @property
    def detail(self) -> str:
        free = f"{self.free_bytes / MB:.1f} MB free in {self.path}"
        if not self.low:
            return free
        return (f"{free}, below the floor of {self.floor_bytes / MB:.0f} MB (min_free_mb):"
                " new runs are refused until space is freed")

    def as_json(self) -> dict[str, object]:
        return {"state": "low" if self.low else "ok", "free_mb": round(self.free_bytes / MB, 1),
                "floor_mb": round(self.floor_bytes / MB), "detail": self.detail}


class SpaceGuard:
    def __init__(self, path: Path, floor_mb: int) -> None:
        self.path = path
        self.floor_bytes = floor_mb * MB

    def check(self) -> Space:
        try:
            st = os.statvfs(self.path)
            free = st.f_bavail * st.f_frsize
        except OSError:  # the dir is gone or unreadable: report it, do not take work
            free = 0
        return Space(free_bytes=free, floor_bytes=self.floor_bytes, path=str(self.path))

    def require(self) -> None:
        """Raise StorageFull while below the floor."""
        space = self.check()
        if space.low:
            raise StorageFull(f"the agent's disk is almost full: {space.detail}")
