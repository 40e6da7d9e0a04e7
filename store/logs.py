"""Log lines: batched inserts (indexed for search: store.log_index), pages by ULID
cursor, retention pruning."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from itertools import chain

from store.db import iso, now
from store.ids import ulid_floor
from store.log_index import INDEX_CHUNK, unindex_lines
from store.log_search import LogSearch
from store.models import ERROR_WORDS, LogContext, LogLine, LogPage

# Rows per multi-row INSERT, largest first (5000 x 6 = 30000 parameters, under
# SQLite's default limit of 32766); fewer than the smallest go through executemany.
_INSERT_CHUNKS = (5000, 500, 50)


@cache
def _insert_sql(rows: int) -> str:
    return ("INSERT OR IGNORE INTO log_lines (id, run_id, stage, stream, text, ts) VALUES "
            + ",".join(["(?,?,?,?,?,?)"] * rows))


# SQLite's LIKE is case-insensitive for ASCII: as the TUI's check of the lines it has.
_READS_LIKE_AN_ERROR = " OR ".join(f"text LIKE '%{word}%'" for word in ERROR_WORDS)


class LogQueries(LogSearch):
    def insert_log_lines(self, lines: Sequence[LogLine]) -> None:
        """One transaction for a whole batch: ~100x faster than a commit per line. The
        lines are indexed for search at once (tests, seeds; the log writer indexes as
        it goes, see store.log_search)."""
        if not lines:
            return
        rows = [(ln.id, ln.run_id, ln.stage, ln.stream.value, ln.text, iso(ln.ts))
                for ln in lines]
        with self.write() as conn:
            self._keep_order(conn, rows)
            conn.executemany(
                "INSERT OR IGNORE INTO log_lines (id, run_id, stage, stream, text, ts)"
                " VALUES (?,?,?,?,?,?)", rows)
        for run_id, stage in dict.fromkeys((r[1], r[2]) for r in rows):
            while self.index_logs(run_id, stage) == INDEX_CHUNK:
                pass

    def insert_log_rows(self, rows: Sequence[tuple[str, int, str, str, str, str]]) -> None:
        """The log writer's fast path: rows already shaped as
        (id, run_id, stage, stream, text, ts-iso), no model per line.

        Multi-row INSERTs instead of executemany: executemany steps (and releases the
        GIL) once per row, and with the log pump thread waiting for the GIL every
        release can cost a thread switch. A few fixed chunk sizes keep the statements
        in sqlite3's statement cache."""
        if not rows:
            return
        flat = list(chain.from_iterable(rows))
        width = 6
        start, total = 0, len(rows)
        with self.write() as conn:
            self._keep_order(conn, rows)
            for chunk in _INSERT_CHUNKS:
                sql = _insert_sql(chunk)
                while total - start >= chunk:
                    conn.execute(sql, flat[start * width:(start + chunk) * width])
                    start += chunk
            if start < total:
                conn.executemany(_insert_sql(1), rows[start:])

    def log_page(
        self,
        run_id: int,
        *,
        stage: str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 1000,
        tail: bool = False,
    ) -> LogPage:
        """Lines after `after` (oldest first), or with `tail`/`before` the newest ones
        before a cursor — what a log pane needs to page backwards."""
        where, params = ["run_id=?"], [run_id]  # type: ignore[list-item]
        if stage is not None:
            where.append("stage=?")
            params.append(stage)  # type: ignore[arg-type]
        if after is not None:
            where.append("id>?")
            params.append(after)  # type: ignore[arg-type]
        if before is not None:
            where.append("id<?")
            params.append(before)  # type: ignore[arg-type]
        backwards = tail or before is not None
        order = "DESC" if backwards else "ASC"
        rows = self.query(
            f"SELECT * FROM log_lines WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?",
            (*params, limit))
        lines = [LogLine(**dict(r)) for r in rows]
        if backwards:
            lines.reverse()
        next_cursor = lines[-1].id if lines else after
        return LogPage(lines=lines, next_cursor=next_cursor)

    def log_context(self, run_id: int, stage: str, line_id: str, lines: int) -> LogContext:
        """Up to `lines` lines of the stage before `line_id`, the line itself and up to
        `lines` after it: what a viewer shows around a match, in the same answer."""
        older = self.query("SELECT * FROM log_lines WHERE run_id=? AND stage=? AND id<?"
                           " ORDER BY id DESC LIMIT ?", (run_id, stage, line_id, lines + 1))
        newer = self.query("SELECT * FROM log_lines WHERE run_id=? AND stage=? AND id>=?"
                           " ORDER BY id LIMIT ?", (run_id, stage, line_id, lines + 2))
        # One more each way than is sent: whether there are more.
        shown = [LogLine(**dict(r)) for r in chain(reversed(older[:lines]), newer[:lines + 1])]
        return LogContext(lines=shown, more_before=len(older) > lines,
                          more_after=len(newer) > lines + 1)

    def log_number(self, run_id: int, stage: str, line_id: str) -> int:
        """The 1-based line number of `line_id` in its stage's log (lines before it + 1)."""
        return self._count("run_id=? AND stage=? AND id<?", (run_id, stage, line_id)) + 1

    def has_log_line(self, run_id: int, stage: str, line_id: str) -> bool:
        return self.query_one("SELECT 1 FROM log_lines WHERE id=? AND run_id=? AND stage=?",
                              (line_id, run_id, stage)) is not None

    def log_from_number(self, run_id: int, stage: str, number: int, limit: int) -> LogPage:
        """`limit` lines of a stage starting at line `number` (1-based): a line permalink."""
        rows = self.query("SELECT * FROM log_lines WHERE run_id=? AND stage=? ORDER BY id"
                          " LIMIT ? OFFSET ?", (run_id, stage, limit, max(number - 1, 0)))
        lines = [LogLine(**dict(r)) for r in rows]
        return LogPage(lines=lines, next_cursor=lines[-1].id if lines else None)

    def first_error_line(self, run_id: int, stage: str, scan: int = 200_000
                         ) -> LogLine | None:
        """The first line that reads like an error (error, fail, traceback, panic:
        case-insensitive) among the stage's first `scan` lines: where a reader of a failed
        stage starts. Bounded so a huge log without one costs a fraction of a second."""
        # The stage's first `scan` lines in id order, read only until the first match
        # (0.4 ms for an error 500 lines in; a bound found first by OFFSET walked all
        # `scan` index entries every time: 14 ms). A log without one reads all `scan`.
        found = self.query_one(
            "SELECT id FROM (SELECT id, text FROM log_lines WHERE run_id=? AND stage=?"
            f" ORDER BY id LIMIT ?) WHERE {_READS_LIKE_AN_ERROR} LIMIT 1", (run_id, stage, scan))
        row = found and self.query_one("SELECT * FROM log_lines WHERE id=?", (found[0],))
        return LogLine(**dict(row)) if row else None

    def _count(self, where: str, params: tuple[object, ...]) -> int:
        row = self.query_one(f"SELECT COUNT(*) FROM log_lines WHERE {where}", params)
        return int(row[0]) if row else 0

    def count_log_lines(self, run_id: int, stage: str | None = None) -> int:
        if stage is None:
            row = self.query_one("SELECT COUNT(*) FROM log_lines WHERE run_id=?", (run_id,))
        else:
            row = self.query_one("SELECT COUNT(*) FROM log_lines WHERE run_id=? AND stage=?",
                                 (run_id, stage))
        return int(row[0]) if row else 0

    def log_line_counts(self, run_id: int, stage: str) -> dict[str, int]:
        """Stored lines of a stage per stream (where a re-read of its source resumes)."""
        rows = self.query("SELECT stream, COUNT(*) FROM log_lines WHERE run_id=? AND stage=?"
                          " GROUP BY stream", (run_id, stage))
        return {r[0]: int(r[1]) for r in rows}

    def last_log_ts(self, run_id: int, stage: str) -> str | None:
        row = self.query_one(
            "SELECT ts FROM log_lines WHERE run_id=? AND stage=? ORDER BY id DESC LIMIT 1",
            (run_id, stage))
        return row[0] if row else None

    def prune_logs(self, retention: timedelta, batch: int = 5000) -> int:
        """Delete lines older than the retention, in small batches so writers keep going."""
        cutoff = ulid_floor(now() - retention)
        total = 0
        while True:
            with self.write() as conn:
                oldest = "id IN (SELECT id FROM log_lines WHERE id<? LIMIT ?)"
                unindex_lines(conn, f"l.{oldest}", (cutoff, batch))
                cur = conn.execute(f"DELETE FROM log_lines WHERE {oldest}", (cutoff, batch))
            total += cur.rowcount
            if cur.rowcount < batch:
                return total
