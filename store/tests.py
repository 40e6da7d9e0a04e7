"""Test results: each collection of a stage's JUnit reports, each test's outcome per run,
flakiness, quarantines and per-service figures."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from store.configs import NotFound
from store.db import Database, iso, now
from store.models import (
    Quarantine,
    RunTestSummary,
    ServiceTestFigures,
    SlowTest,
    StageTestSummary,
    TestCaseResult,
    TestHistory,
    TestHistoryEntry,
    TestOutcome,
)

MESSAGE_MAX = 4_000  # characters of a failure message kept
TRACE_MAX = 16_000  # characters of a trace kept (its end: where the failure is)
SLOWEST_OVER = 20  # collections the slowest tests are averaged over
HISTORY_GLYPHS = {"passed": "✓", "failed": "✗", "error": "✗", "flaky": "~", "skipped": "-"}
_FAILING = ("failed", "error")
# A tuple, not a set: `in` tries identity first (an enum member's hash is Python code).
_SHOWN = (TestOutcome.failed, TestOutcome.error, TestOutcome.flaky)


class CaseRecord(NamedTuple):
    """One test case as read from a report (agent/engine/test_reports.py makes them): a
    plain tuple, as cheap to make as a report has cases."""

    classname: str
    name: str
    outcome: TestOutcome
    duration_s: float | None = None
    message: str | None = None
    trace: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One collection of a stage's reports (attempt 2 is a retry)."""

    run_id: int
    stage: str
    attempt: int
    service_id: int
    code_key: str  # the service's files at the run's sha: equal keys, equal code
    duration_s: float
    notes: Sequence[str] = ()


def _flaky_window(config_json: str) -> int:
    return int(json.loads(config_json).get("tests", {}).get("flaky_window", 50))


def _bounded(text: str | None, limit: int, *, keep_end: bool = False) -> str | None:
    if text is None or len(text) <= limit:
        return text
    cut = len(text) - limit
    if keep_end:
        return f"[{cut} characters cut]\n" + text[-limit:]
    return text[:limit] + f"\n[{cut} characters cut]"


class TestQueries(Database):
    # -- recording ---------------------------------------------------------------------
    def record_tests(self, attempt: Attempt, cases: Sequence[CaseRecord],
                     quarantined: set[int] | None = None) -> dict[tuple[str, str], int]:
        """Store one attempt's cases (messages bounded and masked) and its summary; returns
        (classname, name) → test id of its failed, errored and flaky cases. `quarantined`:
        test ids whose failure does not count.

        Set-based: the cases go to SQLite as one JSON array and are matched with the
        service's tests there, in one statement, in key order (appends, not page splits);
        no per-case Python objects or lookups — a report has tens of thousands of cases."""
        redact = self.redact
        payload = json.dumps([c if c.message is None and c.trace is None else c._replace(
            message=redact(_bounded(c.message, MESSAGE_MAX) or "") or None,
            trace=redact(_bounded(c.trace, TRACE_MAX, keep_end=True) or "") or None)
            for c in cases], ensure_ascii=False)
        run_id, stage, number = attempt.run_id, attempt.stage, attempt.attempt
        held = json.dumps(sorted(quarantined or ()))
        where = (run_id, stage, number)
        with self.write() as conn:
            conn.execute("DELETE FROM test_results WHERE run_id=? AND stage=? AND attempt=?",
                         where)
            stored = self._insert_results(conn, where, attempt.service_id, payload, held)
            if stored < len(cases):  # new tests (or one test twice: the first counts)
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO test_cases (service_id, classname, name)"
                    " SELECT DISTINCT ?, j.value->>0, j.value->>1 FROM json_each(?) j"
                    " ORDER BY 2, 3", (attempt.service_id, payload))
                if cursor.rowcount:
                    self._insert_results(conn, where, attempt.service_id, payload, held)
            counts = dict.fromkeys(("passed", "failed", "error", "skipped", "flaky", "held"), 0)
            for outcome, n in conn.execute(
                    "SELECT CASE WHEN quarantined THEN 'held' ELSE outcome END, COUNT(*)"
                    " FROM test_results WHERE run_id=? AND stage=? AND attempt=? GROUP BY 1",
                    where):
                counts[outcome] = n
            conn.execute(
                "INSERT OR REPLACE INTO test_reports (run_id, stage, attempt, service_id,"
                " code_key, passed, failed, errors, skipped, flaky, quarantined, duration_s,"
                " notes, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*where, attempt.service_id, attempt.code_key, counts["passed"],
                 counts["failed"], counts["error"], counts["skipped"], counts["flaky"],
                 counts["held"], attempt.duration_s,
                 json.dumps([redact(n) for n in attempt.notes]), iso()))
            shown = json.dumps([c[:2] for c in cases if c.outcome in _SHOWN])
            return {(r[0], r[1]): r[2] for r in conn.execute(
                "SELECT c.classname, c.name, c.id FROM json_each(?) j CROSS JOIN test_cases c"
                " ON c.service_id=? AND c.classname=j.value->>0 AND c.name=j.value->>1",
                (shown, attempt.service_id))}

    @staticmethod
    def _insert_results(conn: sqlite3.Connection, where: tuple[int, str, int],
                        service_id: int, payload: str, held: str) -> int:
        """The cases of the JSON payload whose test is known, stored; how many."""
        return conn.execute(
            "INSERT OR IGNORE INTO test_results (run_id, stage, attempt, case_id, outcome,"
            " duration_s, message, trace, quarantined)"
            " SELECT ?, ?, ?, c.id, j.value->>2, j.value->>3, j.value->>4, j.value->>5,"
            "  j.value->>2 IN ('failed', 'error') AND c.id IN (SELECT value FROM json_each(?))"
            # CROSS JOIN: SQLite's "this order" — the cases, each finding its test by the
            # unique index (the other way round is a scan of the service's tests per case).
            " FROM json_each(?) j CROSS JOIN test_cases c ON c.service_id=?"
            "  AND c.classname=j.value->>0 AND c.name=j.value->>1"
            " ORDER BY c.id, j.key", (*where, held, payload, service_id)).rowcount

    def mark_retried(self, run_id: int, stage: str, attempt: int) -> None:
        self.execute("UPDATE test_reports SET retried=1 WHERE run_id=? AND stage=? AND attempt=?",
                     (run_id, stage, attempt))

    def set_test_log_lines(self, run_id: int, stage: str, attempt: int,
                           lines: dict[int, str]) -> None:
        with self.write() as conn:
            conn.executemany(
                "UPDATE test_results SET log_line=? WHERE run_id=? AND stage=? AND attempt=?"
                " AND case_id=?", [(ulid, run_id, stage, attempt, case_id)
                                   for case_id, ulid in lines.items()])

    def first_log_line(self, run_id: int, stage: str, needle: str) -> str | None:
        """The id of the stage's first log line that contains `needle`."""
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_") + "%"
        row = self.query_one("SELECT id FROM log_lines WHERE run_id=? AND stage=? AND text"
                             " LIKE ? ESCAPE '\\' ORDER BY id LIMIT 1", (run_id, stage, pattern))
        return str(row[0]) if row else None

    # -- flakiness -------------------------------------------------------------------------
    def _results_of(self, case_id: int, limit: int, columns: str = "tr.*"
                    ) -> list[sqlite3.Row]:
        """The test's results, newest run (and attempt) first, walking its service's
        collections (by run) and looking each one's row up by primary key: no index over
        every result by test, so storing a run's results only appends."""
        return self.query(
            f"SELECT {columns}, rep.code_key FROM test_cases c"
            " JOIN test_reports rep ON rep.service_id=c.service_id"
            " JOIN test_results tr ON tr.run_id=rep.run_id AND tr.stage=rep.stage"
            " AND tr.attempt=rep.attempt AND tr.case_id=c.id"
            + (" JOIN runs r ON r.id=rep.run_id" if "r." in columns else "")
            + " WHERE c.id=? ORDER BY rep.run_id DESC, rep.attempt DESC LIMIT ?",
            (case_id, limit))

    def flaky_score(self, case_id: int, window: int = 50) -> float:
        """Runs in which the test was flaky ÷ runs, over its last `window` runs. Flaky: it
        failed and passed on the same code (a retry, a rerun of the sha, or another sha
        with the service's files unchanged), or its runner reported a rerun pass."""
        rows = self._results_of(case_id, window * 3, "tr.run_id, tr.outcome")
        runs = list(dict.fromkeys(r[0] for r in rows))[:window]
        rows = [r for r in rows if r[0] >= runs[-1]] if runs else []
        if not rows:
            return 0.0
        passed_on = {r[2] for r in rows if r[1] in ("passed", "flaky")}
        flaky_runs = {r[0] for r in rows
                      if r[1] == "flaky" or (r[1] in _FAILING and r[2] in passed_on)}
        return len(flaky_runs) / len({r[0] for r in rows})

    def known_flaky(self, case_ids: Iterable[int], window: int = 50) -> bool:
        """Every one of these tests has been flaky within its window (stops at the first
        that has not)."""
        return all(self.flaky_score(case_id, window) > 0 for case_id in case_ids)

    # -- quarantine ------------------------------------------------------------------------
    def quarantined_ids(self, service_id: int) -> set[int]:
        return {r[0] for r in self.query(
            "SELECT q.case_id FROM test_quarantine q JOIN test_cases c ON c.id=q.case_id"
            " WHERE c.service_id=? AND q.expires_at>?", (service_id, iso()))}

    def quarantine_test(self, case_id: int, actor: str, reason: str, days: int = 14
                        ) -> Quarantine:
        """Quarantine (or renew) a test until `days` from now."""
        stamp = now()
        self.execute(
            "INSERT INTO test_quarantine (case_id, actor, reason, created_at, expires_at)"
            " VALUES (?,?,?,?,?) ON CONFLICT(case_id) DO UPDATE SET actor=excluded.actor,"
            " reason=excluded.reason, created_at=excluded.created_at,"
            " expires_at=excluded.expires_at",
            (case_id, actor, self.redact(reason), iso(stamp), iso(stamp + timedelta(days=days))))
        found = self.get_quarantine(case_id)
        assert found is not None
        return found

    def release_test(self, case_id: int) -> bool:
        return self.execute("DELETE FROM test_quarantine WHERE case_id=?",
                            (case_id,)).rowcount > 0

    def get_quarantine(self, case_id: int, *, active: bool = True) -> Quarantine | None:
        rows = self._quarantines("WHERE q.case_id=?" + (" AND q.expires_at>?" if active else ""),
                                 (case_id, iso()) if active else (case_id,))
        return rows[0] if rows else None

    def list_quarantines(self, service_id: int | None = None) -> list[Quarantine]:
        if service_id is None:
            return self._quarantines("WHERE q.expires_at>?", (iso(),))
        return self._quarantines("WHERE c.service_id=? AND q.expires_at>?", (service_id, iso()))

    def _quarantines(self, where: str, params: tuple[object, ...]) -> list[Quarantine]:
        return [Quarantine(test_id=r["case_id"], service=r["service"], classname=r["classname"],
                           name=r["name"], actor=r["actor"], reason=r["reason"],
                           created_at=r["created_at"], expires_at=r["expires_at"])
                for r in self.query(
                    "SELECT q.*, c.classname, c.name, s.name AS service FROM test_quarantine q"
                    " JOIN test_cases c ON c.id=q.case_id JOIN services s ON s.id=c.service_id "
                    + where + " ORDER BY q.expires_at", params)]

    # -- reading ---------------------------------------------------------------------------
    def find_test(self, service_id: int, test: str) -> int:
        """A test's id from `classname::name`, a bare unique name, or the id itself."""
        if test.isascii() and test.isdigit():
            row = self.query_one("SELECT id FROM test_cases WHERE id=? AND service_id=?",
                                 (int(test), service_id))
            if row:
                return int(row[0])
        classname, sep, name = test.rpartition("::")
        if sep:
            row = self.query_one("SELECT id FROM test_cases WHERE service_id=? AND classname=?"
                                 " AND name=?", (service_id, classname, name))
            if row:
                return int(row[0])
        rows = self.query("SELECT id FROM test_cases WHERE service_id=? AND name=? LIMIT 2",
                          (service_id, test))
        if len(rows) == 1:
            return int(rows[0][0])
        if rows:
            raise NotFound(f"more than one test is called {test!r}: give classname::name")
        raise NotFound(f"no test {test!r} in this service's results")

    def test_history(self, case_id: int, limit: int = 100) -> TestHistory:
        """The test's results across runs, newest first, with its flakiness score over its
        service's window and its quarantine."""
        case = self.query_one("SELECT c.*, s.name AS service, s.config FROM test_cases c"
                              " JOIN services s ON s.id=c.service_id WHERE c.id=?", (case_id,))
        if case is None:
            raise NotFound(f"no test with id {case_id}")
        window = _flaky_window(case["config"])
        rows = self._results_of(case_id, limit,
                                "tr.*, r.number, r.sha, r.branch, r.created_at")
        return TestHistory(
            test_id=case_id, service=case["service"], classname=case["classname"],
            name=case["name"], flaky_score=self.flaky_score(case_id, window),
            quarantine=self.get_quarantine(case_id),
            entries=[TestHistoryEntry(
                run_id=r["run_id"], run_number=r["number"], sha=r["sha"], branch=r["branch"],
                stage=r["stage"], attempt=r["attempt"], outcome=r["outcome"],
                duration_s=r["duration_s"], message=r["message"],
                quarantined=bool(r["quarantined"]), created_at=r["created_at"])
                for r in rows])

    def history_glyphs(self, case_id: int, limit: int = 10) -> str:
        """The test's last `limit` runs (last attempt of each), oldest first: ✓✓✗✓~."""
        last: dict[tuple[int, str], str] = {}  # (run, stage) → its last attempt's outcome
        for r in self._results_of(case_id, limit * 3, "tr.run_id, tr.stage, tr.outcome"):
            last.setdefault((r[0], r[1]), r[2])
        outcomes = list(last.values())[:limit]
        return "".join(HISTORY_GLYPHS.get(o, "?") for o in reversed(outcomes))

    def stage_test_summaries(self, run_id: int) -> list[StageTestSummary]:
        """Per stage with reports: the last attempt's counts, with the retries before it."""
        by_stage: dict[str, StageTestSummary] = {}
        for r in self.query("SELECT * FROM test_reports WHERE run_id=? ORDER BY stage, attempt",
                            (run_id,)):
            prior = by_stage.get(r["stage"])
            summary = StageTestSummary(
                stage=r["stage"], attempts=r["attempt"], passed=r["passed"], failed=r["failed"],
                errors=r["errors"], skipped=r["skipped"], flaky=r["flaky"],
                quarantined=r["quarantined"], duration_s=r["duration_s"],
                notes=[*(prior.notes if prior else []), *json.loads(r["notes"])],
                retry_s=(prior.retry_s + prior.duration_s) if prior else 0.0)
            by_stage[r["stage"]] = summary
        return list(by_stage.values())

    def run_test_summary(self, run_id: int, limit: int = 200) -> RunTestSummary:
        """A run's test summary per stage and its failing tests first (then quarantined
        failures, then flaky passes), each with message, trace and recent history."""
        run = self.query_one("SELECT r.sha, r.service_id, s.name, s.config FROM runs r"
                             " JOIN services s ON s.id=r.service_id WHERE r.id=?", (run_id,))
        if run is None:
            raise NotFound(f"no run with id {run_id}")
        window = _flaky_window(run["config"])
        rows = self.query(
            "SELECT tr.*, c.classname, c.name FROM test_results tr"
            " JOIN test_cases c ON c.id=tr.case_id"
            " WHERE tr.run_id=? AND (tr.outcome IN ('failed','error','flaky'))"
            " AND tr.attempt=(SELECT MAX(attempt) FROM test_reports rep"
            "  WHERE rep.run_id=tr.run_id AND rep.stage=tr.stage)"
            " ORDER BY CASE WHEN tr.outcome='flaky' THEN 2 ELSE tr.quarantined END,"
            " tr.stage, c.classname, c.name LIMIT ?", (run_id, limit))
        held_now = self.quarantined_ids(run["service_id"])
        failures = [TestCaseResult(
            test_id=r["case_id"], classname=r["classname"], name=r["name"], stage=r["stage"],
            outcome=r["outcome"], duration_s=r["duration_s"], message=r["message"],
            trace=r["trace"], attempt=r["attempt"], quarantined=bool(r["quarantined"]),
            quarantined_now=r["case_id"] in held_now,
            log_line=r["log_line"], history=self.history_glyphs(r["case_id"]),
            flaky_score=self.flaky_score(r["case_id"], window)) for r in rows]
        return RunTestSummary(run_id=run_id, service=run["name"], sha=run["sha"],
                              stages=self.stage_test_summaries(run_id), failures=failures)

    def service_test_figures(self, service_id: int, service: str, days: int = 30,
                             slowest: int = 10) -> ServiceTestFigures:
        """Over `days`: failure and flaky rates, retries; the slowest tests by their mean
        over the service's last SLOWEST_OVER collections."""
        since = iso(now() - timedelta(days=days))
        last = ("rep.attempt=(SELECT MAX(attempt) FROM test_reports r2"
                " WHERE r2.run_id=rep.run_id AND r2.stage=rep.stage)")
        totals = self.query_one(
            "SELECT COUNT(DISTINCT run_id) AS runs, SUM(passed+failed+errors+flaky+quarantined)"
            " AS results, SUM(failed+errors+quarantined) AS failing, SUM(flaky) AS flaky"
            f" FROM test_reports rep WHERE service_id=? AND created_at>=? AND {last}",
            (service_id, since))
        retries = self.query_one(
            "SELECT COUNT(*), COALESCE(SUM(duration_s), 0) FROM test_reports"
            " WHERE service_id=? AND created_at>=? AND retried=1", (service_id, since))
        slow = self.query(
            "SELECT tr.case_id, c.classname, c.name, AVG(tr.duration_s) AS mean, COUNT(*) AS n"
            " FROM test_reports rep JOIN test_results tr ON tr.run_id=rep.run_id"
            " AND tr.stage=rep.stage AND tr.attempt=rep.attempt"
            " JOIN test_cases c ON c.id=tr.case_id"
            f" WHERE rep.service_id=? AND rep.created_at>=? AND {last}"
            # The latest collections only: a big suite's every result over 30 days is
            # millions of rows, and /metrics asks on each scrape.
            " AND rep.run_id>=COALESCE((SELECT run_id FROM test_reports WHERE service_id=?"
            f"  ORDER BY run_id DESC LIMIT 1 OFFSET {SLOWEST_OVER - 1}), 0)"
            " AND tr.duration_s IS NOT NULL AND tr.outcome!='skipped'"
            " GROUP BY tr.case_id ORDER BY mean DESC LIMIT ?",
            (service_id, since, service_id, slowest))
        assert totals is not None and retries is not None
        results = int(totals["results"] or 0)
        return ServiceTestFigures(
            service=service, days=days, runs=int(totals["runs"] or 0), results=results,
            failure_rate=(int(totals["failing"] or 0) / results) if results else 0.0,
            flaky_rate=(int(totals["flaky"] or 0) / results) if results else 0.0,
            retries=int(retries[0]), retry_s=float(retries[1]),
            quarantined=len(self.quarantined_ids(service_id)),
            slowest=[SlowTest(test_id=r["case_id"], classname=r["classname"], name=r["name"],
                              mean_s=round(float(r["mean"]), 3), runs=r["n"]) for r in slow])

