"""The whole pipeline through the engine: build, staging, approval gate, production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.runtime import Agent
from store.models import (
    ApprovalStatus,
    DockerTargetConfig,
    PipelineConfig,
    RunStatus,
    ServiceConfig,
)
from store.store import Store
from tests.engine.conftest import push, stage_statuses, wait_run
from tests.harness import agent_running
from tests.helpers import free_port, http_get, unique_name

FAST_STAGES = dict(code_quality_command="sh lint.sh", unit_test_command="sh test.sh",
                   compose_file=None, integration_test_command=None)


@pytest.fixture
async def deploying_agent(tmp_path: Path, base_image: str, docker_client
                          ) -> AsyncIterator[tuple[Agent, dict[str, int]]]:
    ports = {"staging": free_port(), "production": free_port()}
    async with agent_running(tmp_path / "data") as agent:
        agent.store.create_pipeline(PipelineConfig(
            name="shop", staging=DockerTargetConfig(port=ports["staging"]),
            production=DockerTargetConfig(port=ports["production"])))
        yield agent, ports
    store = Store(agent.config.db_path)  # a test may have closed the agent's own
    services = [s.name for s in store.list_services()]
    store.close()
    _remove_deployments(docker_client, services)


def _remove_deployments(docker_client, services: list[str]) -> None:
    """This test's own containers and networks only: other runs share the engine."""
    import docker.errors

    for name in services:
        for container in docker_client.containers.list(
                all=True, filters={"label": f"io.seamless.service={name}"}):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        for network in docker_client.networks.list(names=[f"seamless-{name}-"]):
            try:
                network.remove()
            except docker.errors.NotFound:
                pass


def _version(port: int) -> str | None:
    answer = http_get(f"http://127.0.0.1:{port}/version")
    return answer[1].decode().strip() if answer and answer[0] == 200 else None


async def test_auto_deploy_takes_a_push_to_production(deploying_agent, sample_repo) -> None:
    agent, ports = deploying_agent
    repo = sample_repo("payments", version="v1")
    service = agent.store.create_service(ServiceConfig(
        name=unique_name("flow"), pipeline="shop", repo_url=repo.url, **FAST_STAGES))

    run = await wait_run(agent, push(agent, service, repo.head_sha).id, timeout=180)

    assert run.status is RunStatus.success, (run.error, stage_statuses(run))
    assert _version(ports["staging"]) == "v1" and _version(ports["production"]) == "v1"
    production = agent.store.current_deployment(service.id, "production")
    assert production is not None and production.sha == repo.head_sha


async def test_without_auto_deploy_the_run_waits_for_approval_across_a_restart(
        deploying_agent, sample_repo, tmp_path: Path) -> None:
    agent, ports = deploying_agent
    repo = sample_repo("inventory", version="v1")
    service = agent.store.create_service(ServiceConfig(
        name=unique_name("flow"), pipeline="shop", repo_url=repo.url, auto_deploy=False,
        **FAST_STAGES))
    run = push(agent, service, repo.head_sha)
    run = await wait_run(agent, run.id, lambda r: r.status is RunStatus.awaiting_approval,
                         timeout=180)
    assert stage_statuses(run)["Deploy to Production"] == "awaiting_approval"
    assert _version(ports["staging"]) == "v1" and _version(ports["production"]) is None
    approval = agent.store.get_approval(run.id)
    assert approval.candidate_sha == repo.head_sha and approval.production_sha is None
    assert approval.staging_health and "200" in approval.staging_health

    # The agent restarts while the approval waits: it is still pending afterwards.
    await agent.stop()
    agent.close()
    async with agent_running(agent.config.data_dir) as again:
        assert again.store.get_approval(run.id).status is ApprovalStatus.pending
        again.engine.approve(run.id, actor="release-manager", comment="go")
        run = await wait_run(again, run.id, timeout=120)
        assert run.status is RunStatus.success, run.error
        assert _version(ports["production"]) == "v1"
        decided = again.store.get_approval(run.id)
        assert decided.actor == "release-manager" and decided.comment == "go"
