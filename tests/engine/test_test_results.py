"""Test stages with JUnit reports, on the fake executor (the reports are what a real test
runner writes; tests/executors/test_junit_docker.py runs them in real containers): a
passing command with failing reports, real failures, a flake that passes on retry, a
quarantined test, malformed, huge and escaping reports."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.executors.base import StageSpec
from agent.runtime import Agent
from store.models import (
    NoTargetConfig,
    PipelineConfig,
    RunInfo,
    RunKind,
    RunStatus,
    Service,
    ServiceConfig,
    TestsConfig,
    Trigger,
)
from tests.harness import Fakes, agent_running, wait_run
from tests.junit_fixtures import junit_xml, many_cases

SHA = "b" * 40
FLAKY = ("tests.test_pay", "test_refund")


@pytest.fixture
async def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
async def agent(tmp_path: Path, fakes: Fakes) -> AsyncIterator[Agent]:
    async with agent_running(tmp_path / "data", fakes=fakes) as running:
        running.store.create_pipeline(PipelineConfig(
            name="shop", staging=NoTargetConfig(), production=NoTargetConfig()))
        yield running


def add_service(agent: Agent, unit: str = "exit=0", **tests: object) -> Service:
    return agent.store.create_service(ServiceConfig(
        name="payments", pipeline="shop", repo_url="https://example.com/payments.git",
        unit_test_command=unit, dockerfile=None, tests=TestsConfig(**tests)))  # type: ignore[arg-type]


def writes(fakes: Fakes, reports: Callable[[StageSpec], dict[str, str] | None]) -> None:
    """Each Unit Test run writes the files `reports(spec)` names into its workspace."""
    def write(spec: StageSpec) -> None:
        if spec.stage != "Unit Test":
            return
        for name, text in (reports(spec) or {}).items():
            path = spec.workspace / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    fakes.executor.on_run = write


async def push(agent: Agent, service: Service, sha: str = SHA) -> RunInfo:
    run = agent.engine.submit(service, trigger=Trigger.push, kind=RunKind.full, sha=sha,
                              branch="main")
    return await wait_run(agent, run.id, timeout=30)


def unit_log(agent: Agent, run: RunInfo) -> str:
    return "\n".join(line.text for line in
                     agent.store.log_page(run.id, stage="Unit Test", limit=10_000).lines)


def stage(run: RunInfo, name: str = "Unit Test") -> tuple[str, str | None]:
    found = next(s for s in run.stages if s.name == name)
    return found.status.value, found.error


async def test_a_passing_command_with_failing_reports_fails_and_says_so(
        agent: Agent, fakes: Fakes) -> None:
    cases = [*many_cases(1204), ("tests.test_pay", "test_refund", "failed")]
    writes(fakes, lambda spec: {"junit.xml": junit_xml(cases)})
    run = await push(agent, add_service(agent, "exit=0 lines=2"))

    assert run.status is RunStatus.failed
    status, error = stage(run)
    assert status == "failed"
    assert error == ("Unit Test: the command passed but its test reports show 1 failed "
                     "test(s): tests.test_pay::test_refund")
    assert "test reports: 1 file(s), 1 failed / 1,204 passed" in unit_log(agent, run)
    summary = agent.store.run_test_summary(run.id)
    assert [(s.stage, s.failed, s.passed) for s in summary.stages] == [("Unit Test", 1, 1204)]
    failure = summary.failures[0]
    assert (failure.name, failure.outcome, failure.message) == (
        "test_refund", "failed", "assert 1 == 2")
    assert failure.trace and "assert 1 == 2" in failure.trace
    assert failure.history == "✗"


async def test_a_real_failure_names_its_tests_and_builds_their_history(
        agent: Agent, fakes: Fakes) -> None:
    state = {"fail": False}
    writes(fakes, lambda spec: {"reports/junit.xml": junit_xml(
        [("tests.test_cart", "test_total", "failed" if state["fail"] else "passed"),
         ("tests.test_cart", "test_empty", "passed")])})
    service = add_service(agent, "exit=0")
    for sha in ("1" * 40, "2" * 40):
        assert (await push(agent, service, sha)).status is RunStatus.success
    state["fail"] = True
    agent.store.update_service(service.name, ServiceConfig(**{
        **service.model_dump(include=set(ServiceConfig.model_fields)),
        "unit_test_command": "exit=1"}))
    run = await push(agent, service, "3" * 40)

    status, error = stage(run)
    assert (status, error) == ("failed", "1 failed test(s): tests.test_cart::test_total "
                                         "(exit code 1)")
    failure = agent.store.run_test_summary(run.id).failures[0]
    assert failure.history == "✓✓✗"
    test_id = agent.store.find_test(service.id, "tests.test_cart::test_total")
    history = agent.store.test_history(test_id)
    assert [e.outcome.value for e in history.entries] == ["failed", "passed", "passed"]
    assert history.flaky_score == 0  # it failed on new code: not a flake


async def test_a_flake_is_retried_once_and_passes(agent: Agent, fakes: Fakes) -> None:
    """Failed and passed on the same sha (a rerun) = flaky; the next time it fails, the
    stage runs once more with only the failed test, and passes."""
    outcomes = iter(["failed", "passed", "failed", "passed"])
    commands: list[str] = []

    def report(spec: StageSpec) -> dict[str, str]:
        commands.append(spec.command)
        cases = [FLAKY + (next(outcomes),)]
        if spec.command == "exit=0":  # the full suite; the retry runs only the failed test
            cases += many_cases(20)
        return {"junit.xml": junit_xml(cases)}

    writes(fakes, report)
    service = add_service(agent, "exit=0", retry_flaky=True,
                          retry_command="exit=0 only={names}")
    first = await push(agent, service)
    assert stage(first)[0] == "failed"  # not known as flaky yet: no retry
    assert "not retried: not every failure is a known flaky test" in unit_log(agent, first)
    rerun = await wait_run(agent, agent.engine.rerun(first.id, None, actor="t").id, timeout=30)
    assert rerun.status is RunStatus.success  # same sha, passed: now it is a known flake
    test_id = agent.store.find_test(service.id, "test_refund")
    assert agent.store.flaky_score(test_id) == 0.5

    commands.clear()
    retried = await push(agent, service, "c" * 40)
    assert retried.status is RunStatus.success, stage(retried)
    assert commands == ["exit=0", "exit=0 only=test_refund"]  # only the failed test
    summary = agent.store.run_test_summary(retried.id).stages[0]
    assert (summary.attempts, summary.flaky, summary.passed, summary.failed) == (2, 1, 20, 0)
    assert summary.retry_s > 0
    log = unit_log(agent, retried)
    assert "retrying Unit Test once: every failure is a known flaky test " \
           "(tests.test_pay::test_refund)" in log
    figures = agent.store.service_test_figures(service.id, service.name)
    assert figures.retries == 1 and figures.flaky_rate > 0


async def test_the_retry_without_a_template_runs_the_stage_command_again(
        agent: Agent, fakes: Fakes) -> None:
    outcomes = iter(["failed", "passed", "failed", "passed"])
    writes(fakes, lambda spec: {"junit.xml": junit_xml([FLAKY + (next(outcomes),)])})
    service = add_service(agent, "exit=1", retry_flaky=True)
    first = await push(agent, service)
    await wait_run(agent, agent.engine.rerun(first.id, None, actor="t").id, timeout=30)
    # exit=1 always: the command decides, whatever the reports
    run = await push(agent, service, "d" * 40)
    assert stage(run)[0] == "failed"
    assert fakes.executor.started.count((run.id, "Unit Test")) == 2  # retried once, no more


async def test_a_quarantined_failure_does_not_fail_the_stage_but_is_counted(
        agent: Agent, fakes: Fakes) -> None:
    writes(fakes, lambda spec: {"junit.xml": junit_xml(
        [FLAKY + ("failed",), *many_cases(5)])})
    service = add_service(agent, "exit=1")
    first = await push(agent, service)
    assert stage(first)[0] == "failed"
    test_id = agent.store.find_test(service.id, "tests.test_pay::test_refund")
    held = agent.store.quarantine_test(test_id, "alice", "flaky on CI, see #123")
    assert (held.expires_at - held.created_at).days == 14

    run = await push(agent, service, "e" * 40)
    assert run.status is RunStatus.success, stage(run)
    assert "reports show only quarantined failures: the stage passes" in unit_log(agent, run)
    summary = agent.store.run_test_summary(run.id)
    assert (summary.stages[0].quarantined, summary.stages[0].failed) == (1, 0)
    assert summary.failures[0].quarantined and summary.failures[0].name == "test_refund"

    agent.store.release_test(test_id)
    assert stage(await push(agent, service, "f" * 40))[0] == "failed"


async def test_malformed_huge_and_escaping_reports_are_noted_and_never_break_the_agent(
        agent: Agent, fakes: Fakes, tmp_path: Path) -> None:
    outside = tmp_path / "host-secret.xml"
    outside.write_text(junit_xml([("x", "y", "failed")]))
    big_message = "x" * (50 * 1024 * 1024)  # a 50 MB failure message in one report

    def report(spec: StageSpec) -> dict[str, str]:
        link = spec.workspace / "junit-link.xml"
        if not link.is_symlink():
            os.symlink(outside, link)
        return {"junit-broken.xml": "<testsuites><testsuite><testcase name='a'>",
                "junit-html.xml": "<html><body>not junit</body></html>",
                "junit-big.xml": junit_xml([("tests.test_big", "test_huge", "failed")],
                                           message="boom", trace=big_message)}

    writes(fakes, report)
    run = await push(agent, add_service(agent, "exit=1"))

    log = unit_log(agent, run)
    assert "test reports: skipped report junit-broken.xml: not valid JUnit XML" in log
    assert "test reports: skipped report junit-html.xml: not valid JUnit XML" in log
    assert "test reports: skipped a report: test report 'junit-link.xml' leaves the " \
           "repository" in log
    assert stage(run) == ("failed", "1 failed test(s): tests.test_big::test_huge "
                                    "(exit code 1)")
    failure = agent.store.run_test_summary(run.id).failures[0]
    assert failure.trace is not None and len(failure.trace) < 20_000  # bounded
    assert failure.trace.startswith("[")  # its end kept, the cut said

    # Over the size limit: skipped with a note; the exit code decides.
    service = agent.store.get_service("payments")
    agent.store.update_service("payments", ServiceConfig(**{
        **service.model_dump(include=set(ServiceConfig.model_fields)),
        "tests": TestsConfig(max_report_mb=10)}))
    run = await push(agent, agent.store.get_service("payments"), "9" * 40)
    assert "skipped report junit-big.xml: 50 MB is over the 10 MB limit" in unit_log(agent, run)
    assert stage(run) == ("failed", "exit code 1")


async def test_reports_of_an_earlier_stage_are_not_collected_again(
        agent: Agent, fakes: Fakes) -> None:
    writes(fakes, lambda spec: {"junit.xml": junit_xml([FLAKY + ("passed",)])})
    service = agent.store.create_service(ServiceConfig(
        name="cart", pipeline="shop", repo_url="https://example.com/cart.git",
        unit_test_command="exit=0", integration_test_command="duration=2.5",
        dockerfile=None))
    run = await push(agent, service)
    assert run.status is RunStatus.success
    stages = agent.store.run_test_summary(run.id).stages
    assert [s.stage for s in stages] == ["Unit Test"]


async def test_a_secret_in_a_failure_message_is_masked(agent: Agent, fakes: Fakes) -> None:
    secret = "hunter2-very-secret-value"
    writes(fakes, lambda spec: {"junit.xml": junit_xml(
        [FLAKY + ("failed",)], message=f"token={secret}", trace=f"got {secret}")})
    service = agent.store.create_service(ServiceConfig(
        name="payments", pipeline="shop", repo_url="https://example.com/payments.git",
        unit_test_command="exit=1", dockerfile=None, secrets={"API_TOKEN": secret}))
    run = await push(agent, service)
    failure = agent.store.run_test_summary(run.id).failures[0]
    assert secret not in (failure.message or "") + (failure.trace or "")
    assert "token=" in (failure.message or "")


async def test_a_restarted_agent_collects_the_reports_of_the_stage_it_followed(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    fakes = Fakes()
    writes(fakes, lambda spec: {"junit.xml": junit_xml([FLAKY + ("failed",)])})
    async with agent_running(data, fakes=fakes) as first:
        first.store.create_pipeline(PipelineConfig(
            name="shop", staging=NoTargetConfig(), production=NoTargetConfig()))
        service = add_service(first, "exit=0 duration=1.5")
        run = first.engine.submit(service, trigger=Trigger.push, kind=RunKind.partial,
                                  sha=SHA, branch="main")
        await wait_run(first, run.id, lambda r: stage(r)[0] == "in_progress", timeout=10)
    # The first agent stopped mid-stage; the second follows the "container" to its end.
    async with agent_running(data, fakes=Fakes()) as second:
        run = await wait_run(second, run.id, timeout=15)
        assert stage(run) == ("failed", "Unit Test: the command passed but its test reports "
                                        "show 1 failed test(s): tests.test_pay::test_refund")
        assert second.store.run_test_summary(run.id).stages[0].failed == 1
