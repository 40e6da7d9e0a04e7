"""The report shapes of the common runners, read as a user would expect: Surefire's rerun
passes are flaky, errors and skips kept apart, a bare <testsuite> root, nested suites,
a case without classname named by its top suite (the file), a bad time attribute tolerated, and the
default globs finding each runner's file."""

from __future__ import annotations

from pathlib import Path

from agent.engine.test_reports import find_reports, parse_report
from store.models import DEFAULT_REPORT_GLOBS, TestOutcome

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
