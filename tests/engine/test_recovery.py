"""kill -9 the agent mid-stage, start it again: each run continues where it was."""

from __future__ import annotations

from pathlib import Path

from store.models import NoTargetConfig, PipelineConfig, RunStatus, ServiceConfig
from store.store import Store
from tests.engine.conftest import log_text, wait_run
from tests.harness import AgentProcess, agent_running, wait_until
from tests.helpers import free_port

SLOW_PRINTER = ("i=0; while [ $i -lt 30 ]; do echo line-$i; i=$((i+1)); sleep 0.1; done")


def _seed(data: Path, repo_url: str) -> None:
    store = Store(data / "seamless.db")
    store.create_pipeline(PipelineConfig(name="shop", staging=NoTargetConfig(),
                                         production=NoTargetConfig()))
    store.create_service(ServiceConfig(
        name="orders", pipeline="shop", repo_url=repo_url, code_quality_command=None,
        unit_test_command=SLOW_PRINTER, dockerfile=None))
    store.close()


def _start_and_kill_mid_stage(data: Path, sha: str) -> int:
    """`seamless-agent serve` in its own process runs one stage a while, then kill -9."""
    agent = AgentProcess(data.parent, data, free_port(),
                         {"executor": "docker", "poll_enabled": False, "log_level": "info"})
    agent.start()
    try:
        api = agent.api()
        run_id = int(api.post("/api/v1/services/orders/trigger",
                              {"sha": sha, "kind": "partial"})["id"])
        api.close()
        store = Store(data / "seamless.db")
        wait_until(lambda: store.count_log_lines(run_id, "Unit Test") >= 6, timeout=60,
                   what="the unit test stage printing")
        store.close()
    finally:
        agent.kill()
    return run_id


async def test_a_stage_still_running_is_reattached_without_gap_or_duplicate(
        tmp_path: Path, sample_repo, base_image) -> None:
    repo = sample_repo("orders")
    data = tmp_path / "data"
    _seed(data, repo.url)
    run_id = _start_and_kill_mid_stage(data, repo.head_sha)

    async with agent_running(data) as agent:
        run = await wait_run(agent, run_id)
        assert run.status is RunStatus.success, run.error
        lines = [ln for ln in log_text(agent, run_id, "Unit Test").splitlines()
                 if ln.startswith("line-")]
        assert lines == [f"line-{i}" for i in range(30)]
        assert agent.store.integrity_check() == "ok"


async def test_a_stage_whose_container_vanished_fails_with_a_reason(
        tmp_path: Path, sample_repo, docker_client) -> None:
    repo = sample_repo("orders")
    data = tmp_path / "data"
    _seed(data, repo.url)
    run_id = _start_and_kill_mid_stage(data, repo.head_sha)
    instance = Store(data / "seamless.db").instance_id()
    mine = [f"io.seamless.run={run_id}", f"io.seamless.agent={instance}"]
    for container in docker_client.containers.list(all=True, filters={"label": mine}):
        container.remove(force=True)

    async with agent_running(data) as agent:
        run = await wait_run(agent, run_id)
        assert run.status is RunStatus.failed
        assert "container was gone" in (run.stages[2].error or "")
