"""The report shapes of the common runners, read as a user would expect: Surefire's rerun
passes are flaky, errors and skips kept apart, a bare <testsuite> root, nested suites,
a case without classname named by its top suite (the file), a bad time attribute tolerated, and the
default globs finding each runner's file."""

from __future__ import annotations

from pathlib import Path

from agent.engine.test_reports import find_reports, parse_report
from store.models import (
    DEFAULT_REPORT_GLOBS,
    PipelineConfig,
    RunKind,
    ServiceConfig,
    TestOutcome,
    Trigger,
)
from store.store import Store
from store.tests import Attempt

SUREFIRE = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="shop.CartTest" tests="4" failures="0" errors="1" skipped="1">
  <testcase name="adds" classname="shop.CartTest" time="0.010"/>
  <testcase name="retries" classname="shop.CartTest" time="0.2">
    <flakyFailure message="expected 1 but was 0" type="AssertionError">trace</flakyFailure>
  </testcase>
  <testcase name="db" classname="shop.CartTest" time="abc">
    <error message="connection refused" type="java.net.ConnectException">at Db.open</error>
  </testcase>
  <testcase name="slow" classname="shop.CartTest"><skipped/></testcase>
</testsuite>
"""
JEST = """<testsuites name="jest tests">
  <testsuite name="cart.test.js">
    <testsuite name="nested">
      <testcase name="totals"><failure>Expected 3, received 2</failure></testcase>
    </testsuite>
  </testsuite>
</testsuites>
"""


def test_surefire_reruns_errors_and_skips(tmp_path: Path) -> None:
    report = tmp_path / "TEST-shop.CartTest.xml"
    report.write_text(SUREFIRE)
    cases = {c.name: c for c in parse_report(report)}

    assert cases["adds"].outcome is TestOutcome.passed
    assert cases["retries"].outcome is TestOutcome.flaky
    assert cases["retries"].message == "expected 1 but was 0"
    assert cases["db"].outcome is TestOutcome.error
    assert (cases["db"].message, cases["db"].trace) == ("connection refused", "at Db.open")
    assert cases["db"].duration_s is None  # time="abc": kept, without a duration
    assert cases["slow"].outcome is TestOutcome.skipped


def test_nested_suites_and_a_case_without_classname(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(JEST)
    (case,) = parse_report(report)
    # named by its top suite (Jest's: the test file)
    assert (case.classname, case.name, case.outcome) == ("cart.test.js", "totals",
                                                         TestOutcome.failed)
    assert case.trace == "Expected 3, received 2"


def test_the_default_globs_find_each_runners_reports(tmp_path: Path) -> None:
    files = ["junit.xml", "reports/junit-vitest.xml", "web/jest-junit.xml",
             "test-results/unit.xml", "svc/target/surefire-reports/TEST-shop.CartTest.xml",
             "build/test-results/test/TEST-shop.ApiTest.xml"]
    ignored = ["coverage.xml", "node_modules/pkg/junit.xml", "pom.xml"]
    for name in files + ignored:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<testsuites/>")
    found = find_reports(tmp_path, list(DEFAULT_REPORT_GLOBS), {}, [])
    assert sorted(str(p.relative_to(tmp_path)) for p in found) == sorted(files)


def test_odd_times_and_text_are_stored_as_read(tmp_path: Path) -> None:
    """Cases travel to SQLite as JSON: an infinite time (not JSON) has no duration, and a
    message with quotes, non-ASCII text and control-looking escapes comes back unchanged."""
    report = tmp_path / "junit.xml"
    message = 'expected "ü€😀" \\n got \\u0000 <tag> & \'quotes\''
    report.write_text(
        '<testsuite name="s"><testcase classname="c" name="inf" time="inf"/>'
        '<testcase classname="c" name="nan" time="NaN"/>'
        '<testcase classname="c" name="big" time="1e308"/>'
        f'<testcase classname="c" name="odd" time="2"><failure message="'
        f'{message.replace("&", "&amp;").replace("<", "&lt;").replace(chr(34), "&quot;")}'
        '">line 1\nline 2</failure></testcase></testsuite>')
    cases = parse_report(report)
    assert [c.duration_s for c in cases] == [None, None, 1e308, 2.0]

    store = Store(tmp_path / "seamless.db")
    store.create_pipeline(PipelineConfig(name="shop"))
    service = store.create_service(ServiceConfig(name="pay", pipeline="shop",
                                                 repo_url="https://example.invalid/pay.git"))
    run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full,
                           sha="a" * 40, branch="main")
    store.record_tests(Attempt(run.id, "Unit Test", 1, service.id, "k", 1.0), cases)
    (failure,) = store.run_test_summary(run.id).failures
    assert (failure.name, failure.message, failure.trace, failure.duration_s) == (
        "odd", message, "line 1\nline 2", 2.0)
    assert store.stage_test_summaries(run.id)[0].passed == 3
    store.close()
