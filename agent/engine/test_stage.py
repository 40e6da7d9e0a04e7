"""Unit Test and Integration Test with their JUnit reports: after the command, the reports
it wrote are collected and stored; they decide the stage with its exit code. Failing
reports fail a passing command; a failure of a quarantined test fails nothing (it shows
and is counted); when every failure is a known flaky test and the service asks for it,
the stage runs once more (only the failed tests, with a command template)."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.engine.test_reports import Reports, Snapshot, find_reports, read_reports, snapshot
from agent.logs import StageLog
from agent.stage_result import StageResult
from store.models import (
    DEFAULT_REPORT_GLOBS,
    STAGE_INTEGRATION_TEST,
    STAGE_UNIT_TEST,
    TestOutcome,
    TestsConfig,
    test_key,
)
from store.store import Store
from store.tests import Attempt, CaseRecord

TESTED_STAGES = (STAGE_UNIT_TEST, STAGE_INTEGRATION_TEST)
_NAMED = 5  # failing tests named in a stage's error
_LOG_LOOKUPS = 20  # failing tests whose first log line is looked up

RunOnce = Callable[[str | None], StageResult]  # the command (None: the stage's own) → result


@dataclass(frozen=True)
class TestStageRun:
    """Where a test stage runs and what its service asks of its reports."""

    __test__ = False  # not a pytest class

    run_id: int
    service_id: int
    stage: str
    sha: str
    workspace: Path  # the checkout
    reports_dir: Path  # the service's folder in it: the report globs start there
    paths: list[str]  # the service's paths (monorepo): its code, for flake detection
    config: TestsConfig


@dataclass
class Collected:
    reports: Reports
    ids: dict[tuple[str, str], int]  # of the failed, errored and flaky cases
    held: set[int]  # quarantined test ids
    # The cases that did not simply pass, read once: a report has tens of thousands.
    notable: list[CaseRecord] = field(init=False)

    def __post_init__(self) -> None:
        passed = TestOutcome.passed
        self.notable = [c for c in self.reports.cases if c.outcome is not passed]

    def failing(self) -> list[CaseRecord]:
        return [c for c in self.notable if c.outcome.failing
                and self.ids[(c.classname, c.name)] not in self.held]

    def held_failures(self) -> list[CaseRecord]:
        return [c for c in self.notable if c.outcome.failing
                and self.ids[(c.classname, c.name)] in self.held]


class TestResults:
    """Runs a test stage's attempts and collects their reports into the store."""

    __test__ = False  # not a pytest class

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, where: TestStageRun, log: StageLog, run_once: RunOnce,
            cancelled: Callable[[], bool]) -> StageResult:
        config, stage, run_id = where.config, where.stage, where.run_id
        code_key = _code_key(where.workspace, where.sha, where.paths)
        folder, globs = where.reports_dir, config.reports  # globs: from the service's folder
        before = snapshot(folder, globs)
        started = time.time()
        result = run_once(None)
        if result.cancelled or result.skipped or cancelled():
            return result
        first = self._collect(where, 1, code_key, before, started, log)
        if first is None:
            return result
        decided = _decide(stage, result, first, log)
        failing = first.failing()
        if decided.ok or not config.retry_flaky or not failing or result.timed_out:
            return decided
        ids = [first.ids[(c.classname, c.name)] for c in failing]
        if not self.store.known_flaky(ids, config.flaky_window):
            log.system("not retried: not every failure is a known flaky test")
            return decided
        command = _retry_command(config.retry_command, failing)
        log.system(f"retrying {stage} once: every failure is a known flaky test "
                   f"({_names(failing)})" + (f": `{command}`" if command else ""))
        self.store.mark_retried(run_id, stage, 1)
        before = snapshot(folder, globs)
        started = time.time()
        again = run_once(command)
        if again.cancelled or cancelled():
            return again
        second = self._collect(where, 2, code_key, before, started, log, previous=first)
        if second is None:  # the retry wrote no report: its exit code decides
            return again
        return _decide(stage, again, second, log)

    def after_restart(self, where: TestStageRun, log: StageLog, result: StageResult,
                      started_at: float) -> StageResult:
        """A test stage a restarted agent followed to its end: the reports written since
        the stage started decide it with its exit code (no retry: its first attempt's
        decision was lost with the agent)."""
        if result.cancelled or result.skipped:
            return result
        before = snapshot(where.reports_dir, where.config.reports, older_than=started_at)
        collected = self._collect(where, 1, _code_key(where.workspace, where.sha, where.paths),
                                  before, started_at, log)
        return result if collected is None else _decide(where.stage, result, collected, log)

    def _collect(self, where: TestStageRun, attempt: int, code_key: str, before: Snapshot,
                 started: float, log: StageLog, previous: Collected | None = None
                 ) -> Collected | None:
        run_id, stage, globs = where.run_id, where.stage, where.config.reports
        notes: list[str] = []
        paths = find_reports(where.reports_dir, globs, before, notes)
        reports = read_reports(where.reports_dir, paths, where.config.max_report_mb, notes)
        for note in reports.notes:
            log.system(f"test reports: {note}")
        if not reports.files:
            # Said only when the service named its reports: with the default globs a
            # service without JUnit output gets no note on every run.
            if not reports.notes and list(globs) != list(DEFAULT_REPORT_GLOBS):
                log.system("test reports: none written during this stage (tests.reports: "
                           f"{', '.join(globs[:3])}{', …' if len(globs) > 3 else ''})")
            return None
        if previous is not None:
            reports.cases = _merged(previous.reports.cases, reports.cases)
        held = self.store.quarantined_ids(where.service_id)
        ids = self.store.record_tests(
            Attempt(run_id=run_id, stage=stage, attempt=attempt, service_id=where.service_id,
                    code_key=code_key, duration_s=time.time() - started, notes=reports.notes),
            reports.cases, held)
        collected = Collected(reports, ids, held)
        log.flush()  # the stage's output stored: find where each failure's output starts
        lines = {}
        shown = [c for c in collected.notable
                 if c.outcome.failing or c.outcome is TestOutcome.flaky]
        for case in shown[:_LOG_LOOKUPS]:
            line = self.store.first_log_line(run_id, stage, case.name)
            if line is not None:
                lines[ids[(case.classname, case.name)]] = line
        if lines:
            self.store.set_test_log_lines(run_id, stage, attempt, lines)
        counts = _counts(collected)
        log.system(f"test reports: {len(reports.files)} file(s), {counts}")
        return collected


def _decide(stage: str, result: StageResult, collected: Collected, log: StageLog
            ) -> StageResult:
    """The stage's result from its exit code and its reports."""
    failing, held = collected.failing(), collected.held_failures()
    if held:
        log.system(f"quarantined, not failing the stage: {len(held)} failed test(s) "
                   f"({_names(held)})")
    if result.ok and failing:
        error = (f"{stage}: the command passed but its test reports show {len(failing)} "
                 f"failed test(s): {_names(failing)}")
        log.system(error)
        return StageResult(exit_code=result.exit_code, error=error)
    if not result.ok and not result.error and not result.timed_out and held and not failing:
        log.system(f"the command exited {result.exit_code}, and its reports show only "
                   "quarantined failures: the stage passes")
        return StageResult(exit_code=0)
    if not result.ok and failing and not result.error:
        return StageResult(exit_code=result.exit_code, timed_out=result.timed_out, error=(
            f"{len(failing)} failed test(s): {_names(failing)} (exit code {result.exit_code})"))
    return result


def _merged(before: list[CaseRecord], after: list[CaseRecord]) -> list[CaseRecord]:
    """A retry's cases over the first attempt's: tests not run again keep their outcome;
    a test that failed and now passed is flaky."""
    again = {(c.classname, c.name): c for c in after}
    merged = []
    for case in before:
        new = again.pop((case.classname, case.name), None)
        if new is None:
            merged.append(case)
        elif case.outcome.failing and new.outcome is TestOutcome.passed:
            merged.append(CaseRecord(new.classname, new.name, TestOutcome.flaky,
                                     new.duration_s, case.message, case.trace))
        else:
            merged.append(new)
    return merged + list(again.values())


def _retry_command(template: str | None, failing: list[CaseRecord]) -> str | None:
    if not template:
        return None
    quote = shlex.quote
    return template.format_map({
        "tests": " ".join(quote(test_key(c.classname, c.name)) for c in failing),
        "names": " ".join(quote(c.name) for c in failing),
        "classnames": " ".join(quote(n) for n in dict.fromkeys(c.classname for c in failing)),
        "pattern": "|".join(c.name for c in failing),
    })


def _names(cases: list[CaseRecord]) -> str:
    shown = ", ".join(test_key(c.classname, c.name) for c in cases[:_NAMED])
    return shown + (f" and {len(cases) - _NAMED} more" if len(cases) > _NAMED else "")


def _counts(collected: Collected) -> str:
    by: dict[str, int] = {}
    for case in collected.notable:
        by[case.outcome.value] = by.get(case.outcome.value, 0) + 1
    passed = len(collected.reports.cases) - len(collected.notable)
    held = len(collected.held_failures())
    parts = [f"{by.get('failed', 0) + by.get('error', 0) - held:,} failed", f"{passed:,} passed"]
    parts += [f"{n:,} {label}" for label, n in (("flaky", by.get("flaky", 0)),
                                                ("skipped", by.get("skipped", 0)),
                                                ("quarantined", held)) if n]
    return " / ".join(parts)


def _code_key(workspace: Path, sha: str, paths: list[str]) -> str:
    """The service's files at the checkout: runs with equal keys ran the same code (a rerun,
    or a commit that changed none of the service's paths); the sha where git cannot say."""
    if not (workspace / ".git").exists():
        return sha
    whole = paths == ["**"]
    args = ["rev-parse", "HEAD^{tree}"] if whole else ["ls-tree", "-r", "HEAD"]
    try:
        out = subprocess.run(["git", "-C", str(workspace), *args], capture_output=True,
                             text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return sha
    if out.returncode != 0 or not out.stdout.strip():
        return sha
    if whole:
        return f"tree:{out.stdout.strip()}"
    from wcmatch import glob as wcglob

    matcher = wcglob.compile(paths, flags=wcglob.GLOBSTAR | wcglob.DOTGLOB)
    mine = [line for line in out.stdout.splitlines()
            if matcher.match(line.partition("\t")[2])]
    return "paths:" + hashlib.sha256("\n".join(mine).encode()).hexdigest()
