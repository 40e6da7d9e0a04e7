"""The SQLite connection layer: WAL, one serialized writer, per-thread readers.

SQLite allows one writer at a time; readers never block it in WAL mode. Writes
go through `write()`, which takes a process-wide lock and `BEGIN IMMEDIATE`
(a deferred transaction that reads then writes can fail with "database is
locked" regardless of busy_timeout). Reads use a connection per thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from store.schema import MIGRATIONS


def now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime | None = None) -> str:
    return (ts or now()).astimezone(UTC).isoformat()


def _private_file(path: Path) -> None:
    """The database file 0600 before SQLite opens it: SQLite gives its -wal and -shm
    files the database file's mode, so they are 0600 too."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm"):
        try:
            os.chmod(f"{path}{suffix}", 0o600)
        except FileNotFoundError:
            pass


def _unchanged(text: str) -> str:
    return text


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Database:
    """Connections and transactions; the query mixins build on this."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            _private_file(Path(self.path))
        self._write_conn = _connect(self.path)
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Applied to free text the agent stores from outside (errors, health answers):
        # the agent sets its secret masker here, so no secret is ever written to disk.
        self.redact: Callable[[str], str] = _unchanged
        self.migrate()

    # -- transactions -----------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. Nested calls join the outer transaction."""
        with self._write_lock:
            conn = self._write_conn
            if conn.in_transaction:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def reader(self) -> sqlite3.Connection:
        # Inside a write transaction on this thread, read our own uncommitted rows.
        if self._write_conn.in_transaction and self._write_lock._is_owned():  # type: ignore[attr-defined]
            return self._write_conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return self.reader().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        return self.reader().execute(sql, params).fetchone()

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        with self.write() as conn:
            return conn.execute(sql, params)

    # -- lifecycle ----------------------------------------------------------------
    def migrate(self) -> None:
        with self._write_lock:
            version = self._write_conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._write_conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _split_sql(script):
                        self._write_conn.execute(statement)
                    self._write_conn.execute(f"PRAGMA user_version={number}")
                except BaseException:
                    self._write_conn.execute("ROLLBACK")
                    raise
                self._write_conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return int(self.query_one("PRAGMA user_version")[0])  # type: ignore[index]

    def integrity_check(self) -> str:
        return str(self.query_one("PRAGMA integrity_check")[0])  # type: ignore[index]

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._write_conn.close()


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line.split("--", 1)[0] + ("\n" if "--" in line else "")
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
