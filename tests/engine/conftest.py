"""An agent on a temp data dir, with the run engine started on the test's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
from tests.harness import agent_running, wait_run
from tests.sample_repo import SampleRepo

__all__ = ["add_service", "log_text", "push", "stage_statuses", "wait_run"]

FINAL = FINISHED_RUN_STATUSES


@pytest.fixture
async def agent(tmp_path: Path, base_image: str) -> AsyncIterator[Agent]:
    async with agent_running(tmp_path / "data") as running:
        yield running


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


def stage_statuses(run: RunInfo) -> dict[str, str]:
    return {s.name: s.status.value for s in run.stages}


def log_text(agent: Agent, run_id: int, stage: str) -> str:
    page = agent.store.log_page(run_id, stage=stage, limit=100_000)
    return "\n".join(line.text for line in page.lines)
