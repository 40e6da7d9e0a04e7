"""Log search through the trigram index (store.log_search) finds exactly what a scan of
the stage would: the same lines, line numbers, match counter and pages, whatever the
text, after retention pruned the oldest lines, on a database from before the index, and
with lines stored twice or out of order."""

from __future__ import annotations

import sqlite3
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ulid import ULID

from store.ids import new_ulids
from store.models import LogSearchPage, PipelineConfig, RunKind, ServiceConfig, Trigger
from store.schema import MIGRATIONS
from store.store import Store

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
TEXTS = [
    "compiling module {i}", "\x1b[31mERROR\x1b[0m test_{i} failed", "100% done ({i})",
    "a_b\\c \"quoted\" {i}", "Café ÉTÉ été {i}", "\u212a kelvin and k {i}",
    "ſtraße STRASSE {i}", "x" * 300 + " long {i}", "日本語のログ {i}", "",
]
NEEDLES = ["error", "ERROR", "Error test", "module 1", "0% d", "a_b\\c", '"quoted"', "été",
           "ÉTÉ", "k k", "kelvin", "ſtr", "STRASSE", "xxxx long", "日本語", "ログ 3", "10",
           "e", "%", "no such text", "odule 2"]


def _rows(run_id: int, stage: str, texts: list[str]) -> list[tuple[str, int, str, str, str,
                                                                      str]]:
    stamp = datetime.now(UTC).isoformat()
    return [(line_id, run_id, stage, "stdout", text, stamp)
            for line_id, text in zip(new_ulids(len(texts)), texts, strict=True)]


def _texts(count: int, start: int = 0) -> list[str]:
    return [TEXTS[i % len(TEXTS)].format(i=i) for i in range(start, start + count)]


def _expected(texts: list[str], needle: str) -> list[tuple[int, str]]:
    """(line number, text) of each line a case-insensitive (ASCII, as LIKE) substring
    search finds."""
    low = needle.translate(_ASCII_LOWER)
    return [(n, t) for n, t in enumerate(texts, start=1) if low in t.translate(_ASCII_LOWER)]


def _all_pages(store: Store, run_id: int, stage: str, needle: str, limit: int
               ) -> tuple[LogSearchPage, list[tuple[int, int, str]]]:
    first = store.search_log(run_id, stage, needle, limit=limit)
    found = [(m.number, m.index, m.text) for m in first.matches]
    cursor = first.next_cursor
    while cursor:
        page = store.search_log(run_id, stage, needle, after=cursor, limit=limit,
                                with_total=False)
        found += [(m.number, m.index, m.text) for m in page.matches]
        cursor = page.next_cursor
    return first, found


def _indexed(store: Store, run_id: int, stage: str) -> bool:
    return store._indexed_scope(run_id, stage) is not None


def _index_size(store: Store) -> int:
    row = store.query_one("SELECT COUNT(*) FROM log_search_rows")
    assert row is not None
    return int(row[0])


def _store(store: Store, rows: list[tuple[str, int, str, str, str, str]]) -> None:
    """As the log writer does: insert, then index what it inserted."""
    store.insert_log_rows(rows)
    for run_id, stage in dict.fromkeys((r[1], r[2]) for r in rows):
        while store.index_logs(run_id, stage, limit=97) == 97:
            pass


@pytest.mark.parametrize("indexed", [600, 333, 0], ids=["all", "a tail", "none"])
def test_search_finds_what_a_substring_search_finds_page_by_page(store: Store, indexed: int):
    texts = _texts(600)
    store.insert_log_rows(_rows(7, "Build", texts[:250]))
    store.insert_log_rows(_rows(7, "Unit Test", _texts(300)))  # interleaved: other stage
    store.insert_log_rows(_rows(7, "Build", texts[250:]))
    if indexed:  # the index may lag behind the lines: the tail after it is scanned
        assert store.index_logs(7, "Build", limit=indexed) == indexed
        assert _indexed(store, 7, "Build")
    for needle in NEEDLES:
        expected = _expected(texts, needle)
        first, found = _all_pages(store, 7, "Build", needle, limit=7)
        assert first.total == len(expected), needle
        assert found == [(n, i, t) for i, (n, t) in enumerate(expected, start=1)], needle


def test_a_page_before_a_cursor_has_the_lines_and_places_just_before_it(store: Store):
    texts = _texts(500)
    store.insert_log_rows(_rows(3, "Build", texts))
    store.index_logs(3, "Build", limit=200)  # the cursor's match falls in the tail
    _, found = _all_pages(store, 3, "Build", "module", limit=50)
    cursor = store.search_log(3, "Build", "module", limit=1000).matches[30].id
    back = store.search_log(3, "Build", "module", before=cursor, limit=4)
    assert [(m.number, m.index) for m in back.matches] == [f[:2] for f in found[26:30]]


def test_after_retention_pruned_the_oldest_lines_numbers_count_from_the_first_left(
        store: Store):
    old = datetime.now(UTC) - timedelta(hours=49)
    old_ids = [str(ULID.from_timestamp(old.timestamp() + i / 1000)) for i in range(40)]
    texts = _texts(100)
    _store(store, [(old_ids[i], 5, "Build", "stdout", texts[i], old.isoformat())
                   for i in range(40)])
    _store(store, _rows(5, "Build", texts[40:]))
    indexed_before = _index_size(store)
    assert store.prune_logs(timedelta(hours=48), batch=15) == 40
    assert _index_size(store) == indexed_before - 40
    first, found = _all_pages(store, 5, "Build", "error", limit=3)
    expected = _expected(texts[40:], "error")
    assert found == [(n, i, t) for i, (n, t) in enumerate(expected, start=1)]
    assert all(store.log_number(5, "Build", m.id) == m.number for m in first.matches)


def test_deleting_a_service_takes_its_lines_out_of_the_index(store: Store):
    store.create_pipeline(PipelineConfig(name="shop"))
    service = store.create_service(ServiceConfig(name="payments", pipeline="shop",
                                                 repo_url="https://example.test/x.git"))
    run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full,
                           sha="abcdef1")
    _store(store, _rows(run.id, "Build", _texts(50)))
    _store(store, _rows(run.id + 1000, "Build", _texts(20)))  # another service's
    store.delete_service("payments")
    assert _index_size(store) == 20
    assert not _indexed(store, run.id, "Build")  # its scope went with it
    assert store.search_log(run.id + 1000, "Build", "module").total == 2


def test_lines_stored_twice_are_found_once(store: Store):
    rows = _rows(4, "Build", _texts(30))
    _store(store, rows)
    _store(store, rows[10:20] + _rows(4, "Build", _texts(5, start=30)))
    texts = _texts(35)
    first, found = _all_pages(store, 4, "Build", "module", limit=100)
    assert found == [(n, i, t) for i, (n, t) in enumerate(_expected(texts, "module"), 1)]
    assert _indexed(store, 4, "Build")


def test_lines_older_than_ones_already_indexed_fall_back_to_the_scan(store: Store):
    late = _rows(6, "Build", _texts(10, start=10))
    early = [(str(ULID.from_timestamp(1_600_000_000 + i)), *r[1:])
             for i, r in enumerate(_rows(6, "Build", _texts(10)))]
    _store(store, late)
    _store(store, early)  # ids sort before the lines indexed already
    assert not _indexed(store, 6, "Build")
    first, found = _all_pages(store, 6, "Build", "module", limit=2)
    assert found == [(n, i, t) for i, (n, t) in enumerate(_expected(_texts(20), "module"), 1)]


def test_a_database_from_before_the_index_is_searched_and_keeps_growing(tmp_path: Path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:9], start=1):  # 10: the index
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version={number}")
    old = _rows(9, "Build", _texts(40))
    conn.executemany("INSERT INTO log_lines VALUES (?,?,?,?,?,?)", old)
    conn.close()
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        store.insert_log_rows(_rows(9, "Build", _texts(40, start=40)))  # the run goes on
        for step in ("not indexed yet", "indexed from its first line", "and a new tail"):
            if step == "indexed from its first line":
                store.index_logs(9, "Build")
            if step == "and a new tail":
                store.insert_log_rows(_rows(9, "Build", _texts(40, start=80)))
            expected = _expected(_texts(120 if step == "and a new tail" else 80), "error")
            first, found = _all_pages(store, 9, "Build", "error", limit=4)
            assert first.total == len(expected), step
            assert found == [(n, i, t) for i, (n, t) in enumerate(expected, start=1)], step
            assert _indexed(store, 9, "Build") == (step != "not indexed yet")
    finally:
        store.close()


@pytest.mark.parametrize("needle", ["ab", "é"])
def test_terms_shorter_than_a_trigram_are_found_by_the_scan(store: Store, needle: str):
    texts = ["xaby", "AB", "été", "nothing"]
    store.insert_log_rows(_rows(2, "Build", texts))
    _, found = _all_pages(store, 2, "Build", needle, limit=10)
    assert found == [(n, i, t) for i, (n, t) in enumerate(_expected(texts, needle), 1)]
