"""The store queries behind the run page's log window."""

from __future__ import annotations

from pathlib import Path

from store.models import RunKind, Trigger
from store.store import Store
from tests.api.conftest import add_service
from tests.runpage.pages import lines


def test_first_error_numbers_and_permalinks_over_a_stage_log(tmp_path: Path) -> None:
    store = Store(tmp_path / "seamless.db")
    run = store.create_run(add_service(store, "a").id, trigger=Trigger.push,
                           kind=RunKind.full, sha="a" * 40)
    texts = [f"step {i}" for i in range(1, 101)]
    texts[59] = "\x1b[31mERROR\x1b[0m: step 60 broke"
    store.insert_log_lines(lines(run.id, "Build", texts))
    store.insert_log_lines(lines(run.id, "Unit Test", ["fail in another stage"]))
    error = store.first_error_line(run.id, "Build")
    assert error is not None and store.log_number(run.id, "Build", error.id) == 60
    # Bounded: an error past the scanned lines is not looked for (a huge clean log stays fast).
    assert store.first_error_line(run.id, "Build", scan=59) is None
    assert store.first_error_line(run.id, "Build", scan=60) == error
    window = store.log_from_number(run.id, "Build", 95, 10).lines
    assert [ln.text for ln in window] == [f"step {i}" for i in range(95, 101)]


def test_a_rotation_by_root_keeps_the_key_files_owner(tmp_path: Path) -> None:
    import os

    from agent.run_links import RunLinks, rotate_link_keys

    links = RunLinks(tmp_path / "link.key", "http://127.0.0.1:8787")
    if os.geteuid() == 0:
        os.chown(links.key_path, 65534, 65534)  # the service user's file (nobody here)
    before = links.key_path.stat()
    rotate_link_keys(links.key_path)
    after = links.key_path.stat()
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_mode & 0o777 == 0o600 and after.st_ino != before.st_ino
