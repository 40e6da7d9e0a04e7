"""The store: migrations, validation, runs, approvals, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from ulid import ULID

from store.ids import new_ulid
from store.models import (
    ApprovalStatus,
    LogLine,
    LogStream,
    PipelineConfig,
    Role,
    RunKind,
    ServiceConfig,
    Trigger,
)
from store.schema import MIGRATIONS
from store.store import Conflict, NotFound, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "seamless.db")
    s.create_pipeline(PipelineConfig(name="shop"))
    return s


def _service(store: Store, name: str = "payments") -> int:
    return store.create_service(ServiceConfig(name=name, pipeline="shop",
                                              repo_url="https://example.test/x.git")).id


def test_reopening_a_database_applies_no_migration_twice(tmp_path: Path) -> None:
    path = tmp_path / "seamless.db"
    Store(path).close()
    again = Store(path)
    assert again.schema_version == len(MIGRATIONS)
    assert again.query_one("PRAGMA journal_mode")[0] == "wal"  # type: ignore[index]


def test_invalid_service_config_is_rejected_field_by_field_and_never_stored(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        ServiceConfig(name="Bad Name!", pipeline="shop", repo_url="not a url",
                      branch="../../etc", compose_file="/abs/compose.yaml",
                      env={"1BAD": "x"})
    fields = {err["loc"][0] for err in info.value.errors()}
    assert fields == {"name", "repo_url", "branch", "compose_file", "env"}
    assert store.list_services() == []


def test_service_names_are_unique_and_need_an_existing_pipeline(store: Store) -> None:
    _service(store)
    with pytest.raises(Conflict):
        _service(store)
    with pytest.raises(NotFound):
        store.create_service(ServiceConfig(name="x", pipeline="nope",
                                           repo_url="https://example.test/x.git"))


def test_runs_are_numbered_per_service_and_listed_newest_first(store: Store) -> None:
    a, b = _service(store, "a"), _service(store, "b")
    for i in range(3):
        store.create_run(a, trigger=Trigger.push, kind=RunKind.full, sha=f"{i:07x}")
    store.create_run(b, trigger=Trigger.push, kind=RunKind.full, sha="bbbbbbb")
    runs = store.list_runs(service="a")
    assert [r.number for r in runs] == [3, 2, 1]
    assert len(runs[0].stages) == 7
    page2 = store.list_runs(service="a", before_id=runs[1].id)
    assert [r.number for r in page2] == [1]


def test_an_approval_is_decided_once(store: Store) -> None:
    run = store.create_run(_service(store), trigger=Trigger.push, kind=RunKind.full,
                           sha="abcdef1")
    store.create_approval(run_id=run.id, candidate_sha="abcdef1", production_sha=None,
                          commits=[], staging_health="GET /health → 200", expires_at=None)
    store.decide_approval(run.id, ApprovalStatus.approved, actor="ana", comment="ship it")
    with pytest.raises(ValueError, match="already approved"):
        store.decide_approval(run.id, ApprovalStatus.rejected, actor="bob")
    assert store.get_approval(run.id).actor == "ana"


def test_tokens_are_stored_hashed(store: Store) -> None:
    token, info = store.create_token("ci-bot", Role.deployer)
    raw = store.query("SELECT token_hash FROM api_tokens")[0][0]
    assert token not in raw and store.authenticate(token) == info
    store.revoke_token(info.id)
    assert store.authenticate(token) is None


def test_log_lines_older_than_the_retention_are_pruned(store: Store) -> None:
    run = store.create_run(_service(store), trigger=Trigger.push, kind=RunKind.full,
                           sha="abcdef1")
    old = datetime.now(UTC) - timedelta(hours=49)
    old_ids = sorted(str(ULID.from_timestamp(old.timestamp() + i / 1000)) for i in range(5))
    lines = [LogLine(id=old_ids[i], run_id=run.id, stage="Prepare", stream=LogStream.stdout,
                     text=f"old {i}", ts=old) for i in range(5)]
    lines += [LogLine(id=new_ulid(), run_id=run.id, stage="Prepare", stream=LogStream.stdout,
                      text="fresh", ts=datetime.now(UTC))]
    store.insert_log_lines(lines)
    assert store.prune_logs(timedelta(hours=48), batch=2) == 5
    assert [ln.text for ln in store.log_page(run.id).lines] == ["fresh"]


def test_log_pages_walk_backwards_from_the_tail_by_cursor(store: Store) -> None:
    run = store.create_run(_service(store), trigger=Trigger.push, kind=RunKind.full,
                           sha="abcdef1")
    store.insert_log_lines([LogLine(id=new_ulid(), run_id=run.id, stage="Build",
                                    stream=LogStream.stdout, text=str(i),
                                    ts=datetime.now(UTC)) for i in range(10)])
    tail = store.log_page(run.id, stage="Build", tail=True, limit=4)
    assert [ln.text for ln in tail.lines] == ["6", "7", "8", "9"]
    before = store.log_page(run.id, stage="Build", before=tail.lines[0].id, limit=4)
    assert [ln.text for ln in before.lines] == ["2", "3", "4", "5"]
    after = store.log_page(run.id, stage="Build", after=before.lines[-1].id, limit=2)
    assert [ln.text for ln in after.lines] == ["6", "7"]
