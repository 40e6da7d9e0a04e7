"""The log writer: batching into SQLite, ordering, masking, reassembly, backpressure."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from agent.bus import Bus
from agent.logs.records import MAX_LINE_BYTES
from agent.logs.timestamps import docker_ts_to_iso
from agent.logs.writer import LogWriter
from store.models import SECRET_MASK, LogStream
from store.store import Store


@pytest.fixture
def writer(store: Store) -> Iterator[LogWriter]:
    """A writer with a small backpressure bound (tests/conftest.py has the store)."""
    w = LogWriter(store, Bus(), max_pending=1000)
    w.start()
    yield w
    w.stop()


def texts(store: Store, run_id: int, stage: str | None = None) -> list[str]:
    return [ln.text for ln in store.log_page(run_id, stage=stage, limit=1_000_000).lines]


def test_lines_are_stored_in_order_with_increasing_ids(store: Store, writer: LogWriter) -> None:
    log = writer.stage_log(1, "Unit Test", [])
    for i in range(1200):
        log.write(f"line {i}")
    log.system("done")
    log.flush()
    page = store.log_page(1, limit=5000)
    assert [ln.text for ln in page.lines] == [f"line {i}" for i in range(1200)] + ["done"]
    assert page.lines[-1].stream is LogStream.system
    ids = [ln.id for ln in page.lines]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_chunks_are_reassembled_into_lines_per_stream(store: Store, writer: LogWriter) -> None:
    log = writer.stage_log(2, "Build", [])
    log.write_chunk(b"hel")
    log.write_chunk(b"err-a", LogStream.stderr)
    log.write_chunk(b"lo\r\nwor")
    log.write_chunk(b"\n", LogStream.stderr)
    log.write_chunk(b"ld\nunterminated")
    log.flush()
    lines = store.log_page(2, limit=100).lines
    assert [(ln.stream.value, ln.text) for ln in lines] == [
        ("stdout", "hello"), ("stderr", "err-a"), ("stdout", "world"),
        ("stdout", "unterminated")]


def test_very_long_lines_are_split(store: Store, writer: LogWriter) -> None:
    log = writer.stage_log(3, "Build", [])
    log.write_chunk(b"x" * (MAX_LINE_BYTES * 2 + 10) + b"\n")
    log.write_chunk(b"y" * (MAX_LINE_BYTES * 3))  # no newline yet: emitted in pieces anyway
    log.flush()
    lengths = [len(t) for t in texts(store, 3)]
    assert lengths[:3] == [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]
    assert sum(lengths[3:]) == MAX_LINE_BYTES * 3 and max(lengths) == MAX_LINE_BYTES


def test_secret_split_across_chunks_is_masked(store: Store, writer: LogWriter) -> None:
    secret = "hunter2-very-secret"
    log = writer.stage_log(4, "Unit Test", [secret])
    log.write_chunk(b"password=hunter2-ve")
    log.write_chunk(b"ry-secret ok\n")
    log.write(f"again {secret}")
    # A secret straddling the 64 KiB split of an endless line is not cut in two.
    log.write_chunk(b"z" * (MAX_LINE_BYTES - 5) + secret.encode() + b"z" * 200)
    log.flush()
    stored = texts(store, 4)
    assert stored[:2] == [f"password={SECRET_MASK} ok", f"again {SECRET_MASK}"]
    assert all(secret[:6] not in t for t in stored)
    assert SECRET_MASK in "".join(stored[2:])


def test_a_secret_split_across_stdout_and_stderr_is_masked_with_lines_between(
        store: Store, writer: LogWriter) -> None:
    # Docker copies the two pipes separately: the stderr half may come after more stdout.
    secret = "Zq7-Lima-Bravo-4417-Xray"
    log = writer.stage_log(9, "Unit Test", [secret])
    log.write_chunk(b"across streams: " + secret[:11].encode() + b"\n")
    log.write_chunk(b"more stdout\nand more\n")
    log.write_chunk(secret[11:].encode() + b" <- rest on stderr\n", LogStream.stderr)
    log.write_chunk(b"after\n")
    log.flush()
    stored = texts(store, 9)
    assert stored == [f"across streams: {SECRET_MASK}", "more stdout", "and more",
                      f"{SECRET_MASK} <- rest on stderr", "after"]


def test_blocks_of_many_lines_keep_every_line_its_encoding_and_its_mask(
        store: Store, writer: LogWriter) -> None:
    secret = "s3cr3t-value"
    log = writer.stage_log(5, "Unit Test", [secret])
    text = "".join(f"{i} \u00e9t\u00e9 {secret if i % 7 == 0 else 'ok'}\r\n" for i in range(500))
    data = text.encode() + b"x" * (MAX_LINE_BYTES + 3) + b"\nlast"
    cut = text.encode().index("\u00e9".encode()) + 1  # in the middle of a 2-byte character
    for piece in (data[:cut], data[cut:4000], data[4000:]):
        log.write_chunk(piece)
    log.flush()
    stored = texts(store, 5)
    assert stored[:500] == [f"{i} \u00e9t\u00e9 {SECRET_MASK if i % 7 == 0 else 'ok'}"
                            for i in range(500)]
    assert [len(t) for t in stored[500:502]] == [MAX_LINE_BYTES, 3]
    assert stored[502:] == ["last"]


def test_rewind_skips_the_lines_stored_per_stream_and_drops_a_half_line(
        store: Store, writer: LogWriter) -> None:
    first = writer.stage_log(6, "Unit Test", [])
    first.write_chunk(b"out1\nout2\nhalf-of-out3")
    first.write_chunk(b"err1\n", LogStream.stderr)
    first.system("a system line is not output: not counted")
    first.writer.wait_committed()
    # A fresh reader (an agent after a restart) reads the whole source again.
    second = writer.stage_log(6, "Unit Test", [])
    second.rewind()
    second.write_chunk(b"out1\nout2\nhalf-of-out3 and its end\nout4\n")
    second.write_chunk(b"err1\nerr2\n", LogStream.stderr)
    second.flush()
    lines = [(ln.stream.value, ln.text) for ln in store.log_page(6, limit=100).lines]
    assert [t for s, t in lines if s == "stdout"] == [
        "out1", "out2", "half-of-out3 and its end", "out4"]
    assert [t for s, t in lines if s == "stderr"] == ["err1", "err2"]


def test_docker_timestamps_become_store_timestamps() -> None:
    assert docker_ts_to_iso("2024-05-01T10:11:12.123456789Z") == \
        "2024-05-01T10:11:12.123456+00:00"
    assert docker_ts_to_iso("2024-05-01T10:11:12.1Z") == "2024-05-01T10:11:12.100000+00:00"
    assert docker_ts_to_iso("2024-05-01T10:11:12Z") == "2024-05-01T10:11:12.000000+00:00"


async def test_committed_batches_are_published_to_subscribers(store: Store) -> None:
    bus = Bus()
    writer = LogWriter(store, bus)
    writer.start()
    try:
        sub = bus.subscribe_logs(5)
        log = writer.stage_log(5, "Prepare", [])
        log.write("hello")
        log.write("world")
        import asyncio

        await asyncio.to_thread(log.flush)
        batch = await asyncio.wait_for(sub.get(), 5)
        assert [ln.text for ln in batch] == ["hello", "world"]
        assert batch[0].run_id == 5 and batch[0].stage == "Prepare"
        assert batch[0].id == store.log_page(5).lines[0].id
    finally:
        writer.stop()


def test_a_flood_of_lines_is_bounded_by_the_queue(store: Store) -> None:
    """200k lines from two producers: the queue never holds more than max_pending."""
    writer = LogWriter(store, Bus(), max_pending=2000)
    writer.start()
    try:
        def produce(run_id: int) -> None:
            log = writer.stage_log(run_id, "Unit Test", [])
            chunk = b"".join(b"%06d-some-output-of-a-noisy-test\n" % i for i in range(1000))
            for _ in range(100):
                log.write_chunk(chunk)
            log.flush()

        threads = [threading.Thread(target=produce, args=(r,)) for r in (6, 7)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.count_log_lines(6) == 100_000
        assert store.count_log_lines(7) == 100_000
        assert writer.peak_pending <= 2000
        assert writer.peak_pending > 0
    finally:
        writer.stop()


def test_writes_after_stop_are_stored_synchronously(store: Store) -> None:
    writer = LogWriter(store, Bus())
    log = writer.stage_log(8, "Prepare", [])
    log.write("no thread running")
    log.flush()
    assert texts(store, 8) == ["no thread running"]


def test_a_stage_log_is_indexed_for_search_once_written(store: Store, writer: LogWriter) -> None:
    """The writer indexes what it stored (store.log_index), so a search of a finished
    stage reads the index, not a scan of every line."""
    log = writer.stage_log(8, "Unit Test", [])
    for i in range(7000):
        log.write(f"test_{i} {'FAILED' if i % 1000 == 999 else 'ok'}")
    log.flush()
    deadline = time.monotonic() + 30
    while (store.query_one("SELECT COUNT(*) FROM log_search_rows") or [0])[0] < 7000:
        assert time.monotonic() < deadline, "the writer did not index the stage's lines"
        time.sleep(0.05)
    assert store._indexed_scope(8, "Unit Test") is not None
    found = store.search_log(8, "Unit Test", "failed")
    assert [(m.number, m.index) for m in found.matches] == [(n, n // 1000) for n in
                                                             range(1000, 7001, 1000)]
    assert found.total == 7
