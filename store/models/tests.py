"""Test results from JUnit reports: per run and stage, per test across runs, quarantines
and per-service figures (agent/engine/test_stage.py collects them)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Report globs that cover the common test runners' JUnit output, relative to the checkout.
DEFAULT_REPORT_GLOBS: tuple[str, ...] = (
    "**/junit*.xml",                       # pytest --junitxml=junit.xml, jest-junit, vitest
    "**/*junit*.xml",
    "**/TEST-*.xml",                       # Maven Surefire / Failsafe, Gradle, Ant
    "**/target/surefire-reports/*.xml",
    "**/test-results/**/*.xml",            # gotestsum --junitfile test-results/…, Gradle
    "**/test-reports/**/*.xml",
    "**/reports/**/*.xml",
)


class TestOutcome(StrEnum):
    __test__ = False  # not a pytest class

    passed = "passed"
    failed = "failed"
    error = "error"
    skipped = "skipped"
    flaky = "flaky"  # failed, then passed on the same code (a retry, or the runner's rerun)

    @property
    def failing(self) -> bool:
        return self in (TestOutcome.failed, TestOutcome.error)


class TestsConfig(BaseModel):
    """A service's test reports and what to do about flaky tests."""

    __test__ = False  # not a pytest class

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reports: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REPORT_GLOBS), max_length=20,
        description="globs of JUnit XML reports in the checkout, collected after Unit Test "
                    "and Integration Test (written during the stage)")
    retry_flaky: bool = Field(
        False, description="run the stage once more when every failure is a known flaky test")
    retry_command: str | None = Field(
        None, description="the retry's command, with the failed tests filled in: {tests} "
                          "(classname::name), {names}, {classnames}, {pattern} (a|b); "
                          "None: the stage's command again",
        examples=["pytest -q {tests}", "go test ./... -run '^({pattern})$'"])
    flaky_window: int = Field(50, ge=5, le=1000,
                              description="runs of a test its flakiness score is taken over")
    max_report_mb: int = Field(64, ge=1, le=1024,
                               description="a larger report file is skipped, with a note")

    @field_validator("reports")
    @classmethod
    def _relative_globs(cls, v: list[str]) -> list[str]:
        for glob in v:
            parts = glob.replace("\\", "/").split("/")
            if not glob or glob.startswith("/") or ".." in parts or "\0" in glob:
                raise ValueError(f"{glob!r}: a report glob is relative to the checkout, "
                                 "without '..'")
        return v


class TestCaseResult(BaseModel):
    """One test in one run and stage (the last attempt's outcome)."""

    __test__ = False  # not a pytest class

    test_id: int
    classname: str
    name: str
    stage: str = ""
    outcome: TestOutcome
    duration_s: float | None = None
    message: str | None = None
    trace: str | None = None
    attempt: int = 1
    quarantined: bool = Field(False, description="in quarantine when it ran: its failure "
                                                "did not fail the stage")
    quarantined_now: bool = Field(False, description="in quarantine now")
    log_line: str | None = Field(None, description="ULID of the log line where its output "
                                                  "starts, when found")
    history: str = Field("", description="recent outcomes, oldest first: ✓ ✗ ~ (flaky) "
                                         "- (skipped)")
    flaky_score: float = 0.0


class StageTestSummary(BaseModel):
    stage: str
    attempts: int = 1
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0
    quarantined: int = 0  # failures of quarantined tests (not failing the stage)
    duration_s: float = 0.0
    retry_s: float = Field(0.0, description="time of the attempts a retry replaced")
    notes: list[str] = Field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped + self.flaky


class RunTestSummary(BaseModel):
    run_id: int
    service: str
    sha: str
    stages: list[StageTestSummary] = Field(default_factory=list)
    failures: list[TestCaseResult] = Field(
        default_factory=list, description="failing (and quarantined, flaky) tests first")


class TestHistoryEntry(BaseModel):
    __test__ = False  # not a pytest class

    run_id: int
    run_number: int
    sha: str
    branch: str | None = None
    stage: str
    attempt: int
    outcome: TestOutcome
    duration_s: float | None = None
    message: str | None = None
    quarantined: bool = False
    created_at: datetime


class Quarantine(BaseModel):
    test_id: int
    service: str
    classname: str
    name: str
    actor: str
    reason: str
    created_at: datetime
    expires_at: datetime


class TestHistory(BaseModel):
    __test__ = False  # not a pytest class

    test_id: int
    service: str
    classname: str
    name: str
    flaky_score: float = Field(0.0, description="flaky failures ÷ results over the window")
    quarantine: Quarantine | None = None
    entries: list[TestHistoryEntry] = Field(default_factory=list, description="newest first")


class QuarantineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    test: str = Field(..., min_length=1, max_length=2000,
                      description="classname::name (or the test id)")
    reason: str = Field(..., min_length=3, max_length=500)
    days: int = Field(14, ge=1, le=90, description="expires after this many days")


class SlowTest(BaseModel):
    test_id: int
    classname: str
    name: str
    mean_s: float
    runs: int


class ServiceTestFigures(BaseModel):
    service: str
    days: int
    runs: int = 0
    results: int = 0
    failure_rate: float = 0.0  # failing results ÷ results
    flaky_rate: float = 0.0  # flaky results (incl. flaky failures) ÷ results
    retry_s: float = 0.0  # time lost to retried attempts
    retries: int = 0
    quarantined: int = 0  # tests in quarantine now
    slowest: list[SlowTest] = Field(default_factory=list)


def test_key(classname: str, name: str) -> str:
    """How people name a test: `classname::name` (pytest's and the CLI's form)."""
    return f"{classname}::{name}" if classname else name
