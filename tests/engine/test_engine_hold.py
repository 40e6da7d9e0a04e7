"""Runs triggered while the Docker engine is away wait `queued` (#22 item 3), on the fake
executor: the engine's absence is the hold's `away` (the agent wires it to its engine
watch; tests/reliability/test_engine_restart.py stops a real engine)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.engine.engine_hold import needs_engine
from agent.runtime import Agent
from seamless_tui.fmt import run_status
from store.models import (
    DockerTargetConfig,
    NoTargetConfig,
    PipelineConfig,
    RunStatus,
    ServiceConfig,
    StageStatus,
)
from tests.engine.test_engine_logic import add_service, log_text, push
from tests.harness import Fakes, agent_config, agent_running, wait_run

AWAY = "Docker engine unreachable (ConnectionError: no socket)"


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    async with agent_running(tmp_path / "data", fakes=Fakes(),
                             docker_queue_wait_s=3) as running:
        running.store.create_pipeline(PipelineConfig(
            name="shop", auto_deploy=True, staging=DockerTargetConfig(),
            production=DockerTargetConfig()))
        yield running


async def test_a_run_waits_queued_while_the_engine_is_away_and_starts_when_it_answers(
        agent: Agent) -> None:
    away: list[str | None] = [AWAY]
    agent.engine.hold.away = lambda: away[0]
    run = push(agent, add_service(agent))
    held = await wait_run(agent, run.id, lambda r: r.waiting is not None, timeout=10)
    assert held.status is RunStatus.queued and held.started_at is None
    assert held.waiting == "waiting for the Docker engine (up to 3 s)"
    assert all(s.status is StageStatus.idle for s in held.stages)
    said = f"waiting for the Docker engine (up to 3 s) before starting: {AWAY}"
    await wait_run(agent, run.id, lambda r: said in log_text(agent, r, "Prepare"), timeout=5)
    assert "waiting for the Docker engine" in run_status(held).plain  # the TUI's status

    away[0] = None
    agent.engine.wake()
    done = await wait_run(agent, run.id, timeout=30)
    assert done.status is RunStatus.success, done
    assert done.waiting is None
    assert "the Docker engine answers again: the run starts" in log_text(agent, done,
                                                                         "Prepare")


async def test_a_run_the_engine_never_came_back_for_fails_saying_why(agent: Agent) -> None:
    agent.engine.hold.away = lambda: AWAY
    run = push(agent, add_service(agent))
    failed = await wait_run(agent, run.id, timeout=30)
    assert failed.status is RunStatus.failed and failed.started_at is None
    assert failed.error == (f"the Docker engine did not answer for 3 s: the run did not "
                            f"start ({AWAY}); rerun it when the engine is back")
    assert failed.waiting is None
    assert {s.status for s in failed.stages} == {StageStatus.skipped}


async def test_a_waiting_run_can_be_cancelled(agent: Agent) -> None:
    agent.engine.hold.away = lambda: AWAY
    run = push(agent, add_service(agent))
    await wait_run(agent, run.id, lambda r: r.waiting is not None, timeout=10)
    cancelled = agent.engine.cancel(run.id, "alice")
    assert cancelled.status is RunStatus.cancelled and cancelled.waiting is None
    assert cancelled.error == "cancelled by alice"


def test_which_runs_need_the_engine() -> None:
    def service(**fields: str | None) -> ServiceConfig:
        return ServiceConfig(name="api", pipeline="p", repo_url="https://e.com/a.git",
                             **fields)

    local = PipelineConfig(name="p", executor="local", staging=NoTargetConfig(),
                           production=NoTargetConfig())
    plain = service(dockerfile=None)
    assert not needs_engine(local, plain)
    assert needs_engine(local, service(dockerfile="Dockerfile"))  # Build on the engine
    assert needs_engine(local, service(dockerfile=None, compose_file="compose.yaml",
                                       integration_test_command="sh it.sh"))
    assert needs_engine(local.model_copy(update={"production": DockerTargetConfig()}),
                        plain)  # a Docker deploy
    assert needs_engine(local.model_copy(update={"executor": "docker"}), plain)
    assert not needs_engine(local.model_copy(update={"executor": "ecs"}),
                            service(dockerfile="Dockerfile"))  # built on the cluster


async def test_the_bound_holds_across_an_agent_restart(tmp_path: Path) -> None:
    """The wait counts from when the run began waiting, not from the agent's start: a run
    that waited, then the agent was down past the bound, fails at the next start."""
    data = tmp_path / "data"

    def started_away() -> Agent:  # away before the scheduler's first pass
        settings = agent_config(data, docker_queue_wait_s=3)
        agent = Agent(settings, Fakes().parts(settings))
        agent.engine.hold.away = lambda: AWAY
        return agent

    first = started_away()
    await first.start()
    try:
        first.store.create_pipeline(PipelineConfig(
            name="shop", staging=DockerTargetConfig(), production=DockerTargetConfig()))
        run = push(first, add_service(first))
        await wait_run(first, run.id, lambda r: r.waiting is not None, timeout=10)
    finally:
        await first.stop()
        first.close()
    await asyncio.sleep(3.5)  # the agent is down longer than the run may wait

    second = started_away()
    await second.start()
    try:
        failed = await wait_run(second, run.id, timeout=30)
        prepare = log_text(second, failed, "Prepare")
    finally:
        await second.stop()
        second.close()
    assert failed.status is RunStatus.failed, failed
    assert "the Docker engine did not answer for 3 s" in (failed.error or "")
    assert prepare.count("waiting for the Docker engine (up to 3 s) before starting") == 1, (
        prepare)
