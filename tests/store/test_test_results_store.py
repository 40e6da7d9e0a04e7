"""Test results in the store: quarantines expire unless renewed, flakiness is counted on
equal code (not across a change), a test is found by classname::name or a unique name."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.configs import NotFound
from store.db import iso, now
from store.models import PipelineConfig, RunKind, ServiceConfig, TestOutcome, Trigger
from store.store import Store
from store.tests import Attempt, CaseRecord


@pytest.fixture
def store(tmp_path: Path) -> Store:
    db = Store(tmp_path / "seamless.db")
    db.create_pipeline(PipelineConfig(name="shop"))
    db.create_service(ServiceConfig(name="pay", pipeline="shop",
                                    repo_url="https://example.invalid/pay.git"))
    return db


def record(store: Store, code: str, outcome: TestOutcome, name: str = "test_a") -> int:
    service = store.get_service("pay")
    run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full,
                           sha=code.ljust(40, "0"), branch="main")
    store.record_tests(Attempt(run.id, "Unit Test", 1, service.id, code, 1.0),
                       [CaseRecord("tests.t", name, outcome, 0.1)])
    return run.id


def test_a_quarantine_expires_unless_renewed(store: Store) -> None:
    record(store, "k1", TestOutcome.failed)
    service = store.get_service("pay")
    test_id = store.find_test(service.id, "tests.t::test_a")
    store.quarantine_test(test_id, "alice", "flaky", days=14)
    assert store.quarantined_ids(service.id) == {test_id}

    store.execute("UPDATE test_quarantine SET expires_at=?", (iso(now()),))  # 14 days on
    assert store.quarantined_ids(service.id) == set()
    assert store.list_quarantines(service.id) == []

    renewed = store.quarantine_test(test_id, "bob", "still flaky", days=14)
    assert (renewed.actor, renewed.reason) == ("bob", "still flaky")
    assert store.quarantined_ids(service.id) == {test_id}


def test_flakiness_counts_only_flips_on_equal_code(store: Store) -> None:
    record(store, "k1", TestOutcome.passed)
    record(store, "k2", TestOutcome.failed)  # new code, new failure: a regression
    test_id = store.find_test(store.get_service("pay").id, "test_a")
    assert store.flaky_score(test_id) == 0
    record(store, "k2", TestOutcome.passed)  # the same code passes: it was a flake
    assert store.flaky_score(test_id) == pytest.approx(1 / 3)
    assert store.history_glyphs(test_id) == "✓✗✓"


def test_a_test_is_found_by_its_full_name_or_a_unique_name(store: Store) -> None:
    record(store, "k1", TestOutcome.passed)
    service = store.get_service("pay")
    run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full,
                           sha="f" * 40, branch="main")
    store.record_tests(Attempt(run.id, "Unit Test", 1, service.id, "k9", 1.0),
                       [CaseRecord("tests.other", "test_a", TestOutcome.passed, 0.1)])
    with pytest.raises(NotFound, match="more than one test is called 'test_a'"):
        store.find_test(service.id, "test_a")
    assert store.find_test(service.id, "tests.other::test_a") != store.find_test(
        service.id, "tests.t::test_a")
    with pytest.raises(NotFound, match="no test 'nope'"):
        store.find_test(service.id, "nope")


def test_an_attempt_is_stored_once_per_test_with_its_quarantined_failures_held(
        store: Store) -> None:
    service = store.get_service("pay")
    record(store, "k1", TestOutcome.passed, name="test_held")  # the test is known
    held = store.find_test(service.id, "tests.t::test_held")
    run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full,
                           sha="b" * 40, branch="main")
    attempt = Attempt(run.id, "Unit Test", 1, service.id, "k2", 1.0)
    cases = [CaseRecord("tests.t", "test_new", TestOutcome.failed, 0.2, "boom", "trace"),
             CaseRecord("tests.t", "test_held", TestOutcome.error, 0.1, "held"),
             CaseRecord("tests.t", "test_ok", TestOutcome.passed, 0.1),
             # The same test again (a second report file): the first one counts.
             CaseRecord("tests.t", "test_new", TestOutcome.passed, 0.3),
             CaseRecord("tests.u", "test_skip", TestOutcome.skipped, None)]
    ids = store.record_tests(attempt, cases, {held})
    assert set(ids) == {("tests.t", "test_new"), ("tests.t", "test_held")}
    summary = store.stage_test_summaries(run.id)[0]
    assert (summary.passed, summary.failed, summary.errors, summary.skipped,
            summary.quarantined) == (1, 1, 0, 1, 1)
    failures = store.run_test_summary(run.id).failures
    assert [(f.name, f.outcome, f.quarantined, f.message) for f in failures] == [
        ("test_new", "failed", False, "boom"), ("test_held", "error", True, "held")]

    # Collected again (a restarted agent): the attempt's results are replaced, not added.
    store.record_tests(attempt, [CaseRecord("tests.t", "test_new", TestOutcome.passed, 0.2)])
    summary = store.stage_test_summaries(run.id)[0]
    assert (summary.passed, summary.failed, summary.quarantined) == (1, 0, 0)
    assert store.run_test_summary(run.id).failures == []
