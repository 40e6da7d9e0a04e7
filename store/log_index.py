"""Search in a stage's log: an SQLite FTS5 trigram index beside `log_lines`, with the
plain LIKE scan as the exact reference.

The index narrows, LIKE decides: FTS5 (`detail=none`) returns the lines that hold the
term's rarer trigrams, and each one is checked with the same `LIKE` the scan uses, so a
match is exactly what the scan would find (ASCII case-insensitive substring). The index's
content table, `log_search_rows`, maps its row ids to line ids and keeps a copy of each
line's text: checking a candidate there is one rowid lookup, several times cheaper than a
lookup in `log_lines` by its text key (the copy costs disk; retention prunes both).

Lines are keyed in the index by an integer row id, `scope << 32 | n`: a scope is one
(run, stage), n counts its lines in id order. A stage's lines are one range of row ids,
so a page is a range read in line order, whatever else the database holds.

The index follows the lines, it is not in their insert: `index_logs` indexes a stage's
lines after the last one indexed (the log writer calls it when its queue is short, so a
flood of output is stored at full speed and indexed once it eases). A search reads the
index up to its last line and scans the tail after it. Terms shorter than a trigram,
stages whose lines came out of id order, and an SQLite without the trigram tokenizer are
searched by the scan alone.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from functools import cache

from store.db import Database

log = logging.getLogger(__name__)

# (id, run_id, stage, stream, text, ts-iso): a log_lines row.
Row = tuple[str, int, str, str, str, str]
SCOPE_BITS = 32
INDEX_CHUNK = 5000  # lines per index_logs transaction
_INDEX_SQL = ("CREATE VIRTUAL TABLE IF NOT EXISTS log_search USING fts5(text,"
              " content='log_search_rows', content_rowid='rowid', tokenize='trigram',"
              " detail='none', columnsize=0)")
STAGE = "run_id=? AND stage=?"


@cache
def _rows_sql(count: int) -> str:
    return ("INSERT INTO log_search_rows (rowid, line_id, text) VALUES "
            + ",".join(["(?,?,?)"] * count))


def _insert_chunked(conn: sqlite3.Connection, flat: list[object]) -> None:
    """Multi-row INSERTs of (rowid, line_id, text) triples: one statement step per chunk
    rather than per row (see LogQueries.insert_log_rows: fewer GIL hand-overs)."""
    start, total = 0, len(flat) // 3
    for chunk in (5000, 500, 50, 1):
        sql = _rows_sql(chunk)
        while total - start >= chunk:
            conn.execute(sql, flat[start * 3:(start + chunk) * 3])
            start += chunk


def unindex_lines(conn: sqlite3.Connection, where: str, params: Sequence[object]) -> None:
    """Take the log_lines rows (`l`) matching `where` out of the index, before they are
    deleted. (No index, no indexed rows: nothing to do.)"""
    rows = conn.execute(
        "SELECT m.rowid, m.text FROM log_lines l JOIN log_search_rows m ON m.line_id=l.id"
        f" WHERE {where}", params).fetchall()
    if not rows:
        return
    conn.executemany("INSERT INTO log_search (log_search, rowid, text)"
                     " VALUES ('delete', ?, ?)", rows)
    conn.executemany("DELETE FROM log_search_rows WHERE rowid=?", [(r[0],) for r in rows])


def scope_top(conn: sqlite3.Connection, scope: int) -> tuple[int, str | None]:
    """The scope's last row id used (its base when none) and the line it indexes."""
    base = scope << SCOPE_BITS
    last = conn.execute("SELECT rowid, line_id FROM log_search_rows WHERE rowid>=? AND"
                        " rowid<? ORDER BY rowid DESC LIMIT 1",
                        (base, base + (1 << SCOPE_BITS))).fetchone()
    return (int(last[0]), str(last[1])) if last else (base, None)


class LogSearchIndex(Database):
    """Keeps the index; `store.logs` calls `_keep_order` inside its inserts, the log
    writer `index_logs` (store.log_search answers the searches)."""

    log_index_ready = False

    def migrate(self) -> None:
        super().migrate()
        # Not in MIGRATIONS: an SQLite built without the trigram tokenizer must still
        # open the database (searches then scan).
        try:
            with self.write() as conn:
                conn.execute(_INDEX_SQL)
            self.log_index_ready = True
        except sqlite3.OperationalError as exc:
            log.warning("log search uses a full scan: SQLite %s cannot build a trigram "
                        "index (%s)", sqlite3.sqlite_version, exc)

    # -- upkeep ------------------------------------------------------------------------
    def index_logs(self, run_id: int, stage: str, limit: int = INDEX_CHUNK) -> int:
        """Index up to `limit` of the stage's lines after the last one indexed; how many
        it indexed (fewer than `limit`: the stage is caught up)."""
        if not self.log_index_ready:
            return 0
        with self.write() as conn:
            scope = self._scope(conn, run_id, stage)
            if scope is None:
                return 0
            top, top_line = scope_top(conn, scope)
            rows = conn.execute(f"SELECT id, text FROM log_lines WHERE {STAGE} AND id>?"
                                " ORDER BY id LIMIT ?",
                                (run_id, stage, top_line or "", limit)).fetchall()
            if not rows:
                return 0
            flat: list[object] = []
            for n, row in enumerate(rows, start=top + 1):
                flat += (n, row[0], row[1])
            _insert_chunked(conn, flat)
            # The index reads its text back from the rows just made.
            conn.execute("INSERT INTO log_search (rowid, text) SELECT rowid, text FROM"
                         " log_search_rows WHERE rowid>? AND rowid<=?", (top, top + len(rows)))
            return len(rows)

    def _scope(self, conn: sqlite3.Connection, run_id: int, stage: str) -> int | None:
        found = conn.execute("SELECT key, complete FROM log_search_scopes WHERE " + STAGE,
                             (run_id, stage)).fetchone()
        if found is None:
            cur = conn.execute("INSERT INTO log_search_scopes (run_id, stage, complete)"
                               " VALUES (?, ?, 1)", (run_id, stage))
            return int(cur.lastrowid or 0)
        return int(found[0]) if found[1] else None

    def _keep_order(self, conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
        """Called as lines are inserted: a line older than one already indexed would fall
        between the index and its tail, so its stage goes back to the scan for good.
        (Lines stored twice are ignored by the insert: they are no such line.)"""
        if not self.log_index_ready or not rows:
            return
        first: dict[tuple[int, str], str] = {}
        for row in rows:
            key = (row[1], row[2])
            if key not in first or row[0] < first[key]:
                first[key] = row[0]
        for (run_id, stage), line_id in first.items():
            found = conn.execute("SELECT key FROM log_search_scopes WHERE complete=1 AND "
                                 + STAGE, (run_id, stage)).fetchone()
            if found is None:
                continue
            _, top_line = scope_top(conn, int(found[0]))
            if top_line is None or line_id > top_line:
                continue
            older = [r[0] for r in rows if r[1] == run_id and r[2] == stage
                     and r[0] <= top_line]
            if len(self._mapped(conn, older)) < len(set(older)):
                conn.execute("UPDATE log_search_scopes SET complete=0 WHERE key=?",
                             (found[0],))

    def _mapped(self, conn: sqlite3.Connection, line_ids: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(line_ids), 500):
            chunk = line_ids[start:start + 500]
            found += [r[0] for r in conn.execute(
                "SELECT line_id FROM log_search_rows WHERE line_id IN"
                f" ({','.join('?' * len(chunk))})", chunk)]
        return found
