"""Search in a stage's log (`GET /runs/{id}/logs/search`): the trigram index of
store.log_index up to its last line, a LIKE scan of the tail after it; the scan alone
where there is no index to read.

Every match is checked with the same `LIKE` the scan uses, so the index only makes the
search fast, never different: ASCII case-insensitive substrings, `%` and `_` literal.
"""

from __future__ import annotations

from store.log_index import SCOPE_BITS, STAGE, LogSearchIndex, scope_top
from store.models import LogMatch, LogSearchPage

# Choosing the trigrams a search reads (see _Indexed._selective): each is probed for its
# first PROBE hits; one that needs fewer than PROBE * SPARSE lines for them is too common.
PROBE = 256
SPARSE = 8
MAX_PROBES = 12  # a long term: trigrams spread over it
MAX_TRIGRAMS_READ = 3

# A match: (line id, text, 1-based line number).
Match = tuple[str, str, int]


def like_pattern(needle: str) -> str:
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def trigrams(needle: str) -> list[str]:
    return list(dict.fromkeys(needle[i:i + 3] for i in range(len(needle) - 2)))


def fts_query(grams: list[str]) -> str:
    """Trigrams as an FTS5 query, ANDed (`detail=none` keeps no positions, so no
    phrases: the LIKE check puts them in order)."""
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


class LogSearch(LogSearchIndex):
    def search_log(self, run_id: int, stage: str, needle: str, *, after: str | None = None,
                   before: str | None = None, limit: int = 100, with_total: bool = True
                   ) -> LogSearchPage:
        """Lines of one stage containing `needle` (case-insensitive for ASCII, as SQL LIKE),
        in id order after `after`, or the ones just before `before` (still in id order).
        Each match carries its 1-based line number and its 1-based place among all
        matches (the first of a page counted once, the others follow)."""
        pattern = like_pattern(needle)
        scope = self._indexed_scope(run_id, stage) if len(needle) >= 3 else None
        matching: _Scan | _Indexed
        if scope is None:
            matching = _Scan(self, run_id, stage, pattern)
        else:
            matching = _Indexed(self, scope, trigrams(needle),
                                _Scan(self, run_id, stage, pattern))
        rows = matching.page(after, before, limit)
        index = 1 if after is None and before is None or not rows else \
            matching.count(before=rows[0][0]) + 1
        matches = [LogMatch(id=line_id, number=number, index=index + n, text=text)
                   for n, (line_id, text, number) in enumerate(rows)]
        total = None
        if with_total and after is None and before is None and len(rows) < limit:
            total = len(rows)  # the whole log fit in this page: no second count
        elif with_total:
            total = matching.count()
        more = len(rows) == limit
        return LogSearchPage(matches=matches, total=total,
                             next_cursor=matches[-1].id if matches and more else None)

    def _indexed_scope(self, run_id: int, stage: str) -> int | None:
        if not self.log_index_ready:
            return None
        row = self.query_one("SELECT key FROM log_search_scopes WHERE complete=1 AND "
                             + STAGE, (run_id, stage))
        return int(row[0]) if row else None

    def _count_lines(self, where: str, params: tuple[object, ...]) -> int:
        row = self.query_one(f"SELECT COUNT(*) FROM log_lines WHERE {where}", params)
        return int(row[0]) if row else 0


class _Scan:
    """Matches by LIKE over the stage's lines after `floor` (all of them by default),
    numbered by counting lines (once up to the first match, then across the gaps between
    matches: a page costs its own span) from `offset` (the lines up to the floor)."""

    def __init__(self, db: LogSearch, run_id: int, stage: str, pattern: str) -> None:
        self.db, self.stage, self.pattern = db, (run_id, stage), pattern
        self.floor = ""  # every ULID sorts after it
        self.offset = 0

    def _where(self, after: str | None, before: str | None, like: bool = True
               ) -> tuple[str, tuple[object, ...]]:
        where = STAGE + " AND id>?"
        params: list[object] = [*self.stage, max(after or "", self.floor)]
        if like:
            where += " AND text LIKE ? ESCAPE '\\'"
            params.append(self.pattern)
        if before is not None:
            where += " AND id<?"
            params.append(before)
        return where, tuple(params)

    def page(self, after: str | None, before: str | None, limit: int) -> list[Match]:
        where, params = self._where(after, before)
        order = "DESC" if before is not None and after is None else "ASC"
        rows = sorted(self.db.query(f"SELECT id, text FROM log_lines WHERE {where} ORDER BY"
                                    f" id {order} LIMIT ?", (*params, limit)),
                      key=lambda r: r[0])
        out: list[Match] = []
        number = self.offset
        previous: str | None = None
        for line_id, text in rows:
            where, params = self._where(previous, line_id, like=False)
            number += self.db._count_lines(where, params) + 1
            out.append((line_id, text, number))
            previous = line_id
        return out

    def count(self, before: str | None = None) -> int:
        return self.db._count_lines(*self._where(None, before))


class _Indexed:
    """Matches by the trigram index over the stage's row-id range, each checked by LIKE,
    then the tail's by the scan.

    A stage's row ids are consecutive in line order and only its oldest lines are ever
    deleted (retention), so a line's number is its row id past the first one left."""

    _FROM = ("FROM log_search f JOIN log_search_rows m ON m.rowid=f.rowid"
             " WHERE log_search MATCH ? AND f.rowid>=? AND f.rowid<?"
             " AND m.text LIKE ? ESCAPE '\\'")

    def __init__(self, db: LogSearch, scope: int, grams: list[str], tail: _Scan) -> None:
        self.db, self.pattern, self.tail = db, tail.pattern, tail
        self.low = scope << SCOPE_BITS
        conn = db.reader()
        top, top_line = scope_top(conn, scope)
        self.high = top + 1  # past the last line indexed
        self.top_line = top_line or ""
        first = conn.execute("SELECT MIN(rowid) FROM log_search_rows WHERE rowid>=? AND"
                             " rowid<?", (self.low, self.high)).fetchone()
        self.first = int(first[0]) if first and first[0] is not None else self.high
        tail.floor, tail.offset = self.top_line, self.high - self.first
        self.match = fts_query(self._selective(grams)) if top_line else ""

    def _selective(self, grams: list[str]) -> list[str]:
        """The trigrams worth reading: the rarest, and the few others that are not in
        most lines (measured on their first PROBE hits in the stage). A trigram in every
        line filters nothing and costs a read of a million row ids; LIKE checks the rest."""
        if len(grams) > MAX_PROBES:
            step = len(grams) / MAX_PROBES
            grams = [grams[int(i * step)] for i in range(MAX_PROBES)]
        spans = []
        for gram in grams:
            row = self.db.query_one(
                "SELECT COUNT(*), MAX(rowid) FROM (SELECT rowid FROM log_search WHERE"
                " log_search MATCH ? AND rowid>=? AND rowid<? ORDER BY rowid LIMIT ?)",
                (fts_query([gram]), self.low, self.high, PROBE))
            hits, last = (int(row[0]), row[1]) if row else (0, None)
            if hits < PROBE or last is None:  # rarer than PROBE in the stage: enough
                return [gram]
            spans.append((int(last) - self.low, gram))
        spans.sort(reverse=True)  # the widest span to reach PROBE hits: the rarest
        rare = [gram for span, gram in spans[1:] if span >= PROBE * SPARSE]
        return [spans[0][1], *rare[:MAX_TRIGRAMS_READ - 1]]

    def _bound(self, line_id: str, *, after: bool) -> int:
        """Where a cursor line sits in the range: the row id just past it (`after`) or
        its own. A cursor that is not in the index (pruned meanwhile) falls between."""
        if line_id > self.top_line:
            return self.high
        row = self.db.query_one("SELECT rowid FROM log_search_rows WHERE line_id=?",
                                (line_id,))
        if row is not None and self.low <= row[0] < self.high:
            return int(row[0]) + int(after)
        row = self.db.query_one(
            "SELECT rowid FROM log_search_rows WHERE line_id>? AND rowid>=? AND rowid<?"
            " ORDER BY line_id LIMIT 1", (line_id, self.low, self.high))
        return int(row[0]) if row else self.high

    def _indexed_page(self, low: int, high: int, order: str, limit: int) -> list[Match]:
        if not self.match or low >= high:
            return []
        rows = self.db.query(f"SELECT m.line_id, m.text, f.rowid {self._FROM}"
                             f" ORDER BY f.rowid {order} LIMIT ?",
                             (self.match, low, high, self.pattern, limit))
        return [(r[0], r[1], int(r[2]) - self.first + 1) for r in rows]

    def page(self, after: str | None, before: str | None, limit: int) -> list[Match]:
        low = self._bound(after, after=True) if after is not None else self.low
        high = self._bound(before, after=False) if before is not None else self.high
        if before is not None and after is None:  # backwards: the tail first
            out = self.tail.page(None, before, limit)
            out = self._indexed_page(low, high, "DESC", limit - len(out)) + out
        else:
            out = self._indexed_page(low, high, "ASC", limit)
            if len(out) < limit:
                out += self.tail.page(after, before, limit - len(out))
        return sorted(out, key=lambda r: r[0])

    def count(self, before: str | None = None) -> int:
        high = self._bound(before, after=False) if before is not None else self.high
        row = self.db.query_one(f"SELECT COUNT(*) {self._FROM}",
                                (self.match, self.low, high, self.pattern)) \
            if self.match and self.low < high else None
        return (int(row[0]) if row else 0) + self.tail.count(before)
