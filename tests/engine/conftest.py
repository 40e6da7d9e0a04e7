"""An agent on a temp data dir, with the run engine started on the test's loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.runtime import Agent
from store.models import (
    FINISHED_RUN_STATUSES,
    NoTargetConfig,
    PipelineConfig,
    RunInfo,
    RunKind,
    Service,
    ServiceConfig,
    Trigger,
)
from tests.sample_repo import SampleRepo

FINAL = FINISHED_RUN_STATUSES


@pytest.fixture
async def agent(tmp_path: Path, base_image: str) -> AsyncIterator[Agent]:
    config = AgentConfig(data_dir=tmp_path / "data", port=0, poll_enabled=False,
                         executor="docker", max_parallel_runs=4)
    instance = Agent(config)
    await instance.start()
    yield instance
    await instance.stop()
    instance.close()


def add_service(agent: Agent, repo: SampleRepo, *, name: str | None = None,
                pipeline: str = "shop", **overrides: object) -> Service:
    """A pipeline without deploy targets and a service running the sample repo's scripts."""
    try:
        agent.store.get_pipeline(pipeline)
    except LookupError:
        agent.store.create_pipeline(PipelineConfig(
            name=pipeline, staging=NoTargetConfig(), production=NoTargetConfig()))
    fields: dict[str, object] = dict(
        name=name or repo.name, pipeline=pipeline, repo_url=repo.url,
        code_quality_command="sh lint.sh", unit_test_command="sh test.sh",
        compose_file="compose.yaml", integration_test_command="sh integration.sh")
    fields.update(overrides)
    return agent.store.create_service(ServiceConfig(**fields))  # type: ignore[arg-type]


def push(agent: Agent, service: Service, sha: str, kind: RunKind = RunKind.full,
         **kw: object) -> RunInfo:
    trigger = Trigger.push if kind is RunKind.full else Trigger.pull_request
    return agent.engine.submit(service, trigger=trigger, kind=kind, sha=sha,
                               branch=service.branch, **kw)  # type: ignore[arg-type]


async def wait_run(agent: Agent, run_id: int, until: Callable[[RunInfo], bool] | None = None,
                   timeout: float = 120.0) -> RunInfo:
    """Poll the store until the run is final (or `until` holds)."""
    check = until or (lambda r: r.status in FINAL)
    deadline = time.monotonic() + timeout
    while True:
        run = agent.store.get_run(run_id)
        if check(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.status}: "
                                 f"{[(s.name, s.status.value) for s in run.stages]}")
        await asyncio.sleep(0.05)


def stage_statuses(run: RunInfo) -> dict[str, str]:
    return {s.name: s.status.value for s in run.stages}


def log_text(agent: Agent, run_id: int, stage: str) -> str:
    page = agent.store.log_page(run_id, stage=stage, limit=100_000)
    return "\n".join(line.text for line in page.lines)
