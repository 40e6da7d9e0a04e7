"""The run engine's own logic on the fake executor, workspaces and deploy target
(tests/harness): skips, failures, cancel, timeouts, supersede, rerun, the approval gate,
restart recovery, containers made ahead. The real executors have their own tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.runtime import Agent
from store.models import (
    DEFAULT_STAGES,
    ApprovalStatus,
    DockerTargetConfig,
    PipelineConfig,
    RunInfo,
    RunKind,
    RunStatus,
    Service,
    ServiceConfig,
    StageStatus,
    Trigger,
    image_for,
)
from tests.harness import Fakes, agent_running, wait_run

SHA = "a" * 40


@pytest.fixture
async def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
async def agent(tmp_path: Path, fakes: Fakes) -> AsyncIterator[Agent]:
    async with agent_running(tmp_path / "data", fakes=fakes) as running:
        running.store.create_pipeline(PipelineConfig(
            name="shop", auto_deploy=True, staging=DockerTargetConfig(),
            production=DockerTargetConfig()))
        yield running


def add_service(agent: Agent, name: str = "payments", **fields: object) -> Service:
    """Every stage runs and takes no time, unless `fields` say otherwise."""
    config: dict[str, object] = dict(
        name=name, pipeline="shop", repo_url=f"https://example.com/{name}.git",
        code_quality_command="lines=2", unit_test_command="lines=3",
        compose_file="compose.yaml", integration_test_command="lines=1")
    config.update(fields)
    return agent.store.create_service(ServiceConfig(**config))  # type: ignore[arg-type]


def push(agent: Agent, service: Service, sha: str = SHA, kind: RunKind = RunKind.full,
         ) -> RunInfo:
    return agent.engine.submit(service, trigger=Trigger.push, kind=kind, sha=sha,
                               branch=service.branch)


def statuses(run: RunInfo) -> dict[str, str]:
    return {s.name: s.status.value for s in run.stages}


def log_text(agent: Agent, run: RunInfo, stage: str) -> str:
    return "\n".join(line.text for line in
                     agent.store.log_page(run.id, stage=stage, limit=10_000).lines)


async def test_a_push_runs_all_seven_stages_to_production(agent: Agent, fakes: Fakes) -> None:
    service = add_service(agent)
    run = await wait_run(agent, push(agent, service).id, timeout=10)

    assert run.status is RunStatus.success
    assert list(statuses(run).values()) == ["success"] * len(DEFAULT_STAGES)
    assert "Unit Test line 3" in log_text(agent, run, "Unit Test")
    assert fakes.target.live == {("payments", "staging"): image_for(service, SHA),
                                 ("payments", "production"): image_for(service, SHA)}
    assert fakes.executor.built == [image_for(service, SHA)]


async def test_a_failing_stage_fails_the_run_and_skips_the_rest(agent: Agent) -> None:
    service = add_service(agent, unit_test_command="lines=1 exit=3")
    run = await wait_run(agent, push(agent, service).id, timeout=10)

    assert run.status is RunStatus.failed
    assert statuses(run)["Unit Test"] == "failed" and run.stages[2].exit_code == 3
    assert {statuses(run)[s] for s in DEFAULT_STAGES[3:]} == {"skipped"}
    assert run.stages[3].error == "not run: Unit Test failed"
    assert "exit code 3" in (run.error or "")


async def test_stages_with_nothing_to_do_are_skipped_with_the_reason(agent: Agent) -> None:
    service = add_service(agent, code_quality_command=None, dockerfile=None,
                          compose_file=None, integration_test_command=None)
    run = await wait_run(agent, push(agent, service).id, timeout=10)

    assert run.status is RunStatus.success
    errors = {s.name: s.error for s in run.stages if s.status is StageStatus.skipped}
    assert errors == {
        "Code Quality": "no Code Quality command configured for payments",
        "Build": "no Dockerfile configured for payments",
        "Integration Test": "no Integration Test command configured for payments",
        "Deploy to Staging": "nothing to deploy: the Build stage was skipped",
        "Deploy to Production": "nothing to deploy: the Build stage was skipped"}
    assert "skipped: no Dockerfile" in log_text(agent, run, "Build")


async def test_cancel_ends_the_running_stage_and_skips_the_rest(agent: Agent) -> None:
    service = add_service(agent, unit_test_command="duration=60")
    run = push(agent, service)
    await wait_run(agent, run.id, lambda r: statuses(r)["Unit Test"] == "in_progress",
                   timeout=10)

    agent.engine.cancel(run.id, actor="tester")
    run = await wait_run(agent, run.id, timeout=10)

    assert run.status is RunStatus.cancelled and run.error == "cancelled by tester"
    assert statuses(run)["Unit Test"] == "cancelled"
    assert statuses(run)["Build"] == "skipped"


async def test_a_stage_past_its_timeout_fails_with_the_reason(agent: Agent) -> None:
    service = add_service(agent, unit_test_command="duration=60", stage_timeout_s=1)
    run = await wait_run(agent, push(agent, service).id, timeout=10)

    assert run.status is RunStatus.failed
    assert "timed out after 1 s" in (run.stages[2].error or "")


async def test_a_newer_push_supersedes_the_queued_run_of_its_branch(agent: Agent) -> None:
    service = add_service(agent, unit_test_command="duration=0.5")
    first = push(agent, service, "1" * 40)
    await wait_run(agent, first.id, lambda r: r.status is RunStatus.running, timeout=10)
    second, third = push(agent, service, "2" * 40), push(agent, service, "3" * 40)

    second = await wait_run(agent, second.id, timeout=10)
    assert second.status is RunStatus.superseded
    assert "superseded by run #3" in (second.error or "")
    assert (await wait_run(agent, first.id, timeout=10)).status is RunStatus.success
    assert (await wait_run(agent, third.id, timeout=10)).status is RunStatus.success


async def test_rerun_from_the_failed_stage_reuses_the_earlier_results(agent: Agent) -> None:
    service = add_service(agent, unit_test_command="exit=1")
    failed = await wait_run(agent, push(agent, service).id, timeout=10)
    agent.store.update_service(service.name, service.model_copy(
        update={"unit_test_command": "lines=1"}))

    rerun = await wait_run(agent, agent.engine.rerun(failed.id, "Unit Test", "tester").id,
                           timeout=10)

    assert rerun.status is RunStatus.success and rerun.rerun_of == failed.id
    assert [s.reused_from_run for s in rerun.stages[:2]] == [failed.id, failed.id]
    assert agent.store.count_log_lines(rerun.id, "Prepare") == 0
    assert "Unit Test line 1" in log_text(agent, rerun, "Unit Test")


async def test_production_waits_for_approval_and_deploys_once_approved(
        agent: Agent, fakes: Fakes) -> None:
    service = add_service(agent, auto_deploy=False)
    run = await wait_run(agent, push(agent, service).id,
                         lambda r: r.status is RunStatus.awaiting_approval, timeout=10)
    assert statuses(run)["Deploy to Production"] == "awaiting_approval"
    assert ("payments", "production") not in fakes.target.live

    with agent.bus.subscribe_events() as events:
        agent.engine.approve(run.id, actor="release-manager", comment="go")
        decided = await asyncio.wait_for(events.get(), 5)
    run = await wait_run(agent, run.id, timeout=10)

    assert decided.type == "approval" and decided.approval is not None
    assert decided.approval.status is ApprovalStatus.approved
    assert run.status is RunStatus.success
    assert fakes.target.live[("payments", "production")] == image_for(service, SHA)


async def test_a_rejected_run_ends_rejected_and_production_is_untouched(
        agent: Agent, fakes: Fakes) -> None:
    service = add_service(agent, auto_deploy=False)
    run = await wait_run(agent, push(agent, service).id,
                         lambda r: r.status is RunStatus.awaiting_approval, timeout=10)

    agent.engine.reject(run.id, actor="qa", comment="staging looks off")
    run = agent.store.get_run(run.id)

    assert run.status is RunStatus.rejected
    assert run.stages[-1].error == "rejected by qa: staging looks off"
    assert ("payments", "production") not in fakes.target.live


async def test_a_restarted_agent_follows_the_stage_it_left_running(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with agent_running(data, fakes=Fakes()) as first:
        first.store.create_pipeline(PipelineConfig(name="shop"))
        service = add_service(first, unit_test_command="lines=2 duration=1",
                              dockerfile=None, compose_file=None,
                              integration_test_command=None)
        run = push(first, service, kind=RunKind.partial)
        await wait_run(first, run.id, lambda r: statuses(r)["Unit Test"] == "in_progress",
                       timeout=10)
    # The first agent stopped mid-stage; the second finds the "container" still running.
    async with agent_running(data, fakes=Fakes()) as second:
        run = await wait_run(second, run.id, timeout=10)

    assert run.status is RunStatus.success
    assert statuses(run)["Unit Test"] == "success"


async def test_the_next_stage_container_is_made_ahead_and_dropped_after_a_failure(
        agent: Agent, fakes: Fakes) -> None:
    service = add_service(agent, code_quality_command="exit=2")
    run = await wait_run(agent, push(agent, service).id, timeout=10)

    assert run.status is RunStatus.failed
    assert (run.id, "Unit Test") in fakes.executor.made_ahead
    assert (run.id, "Integration Test") not in fakes.executor.made_ahead  # compose: not ahead
    assert run.id in fakes.executor.discarded
