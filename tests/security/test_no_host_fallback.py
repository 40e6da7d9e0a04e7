"""Without a Docker engine, stages never run on the agent's host: with executor=auto they
wait for the engine (bounded) and fail with "Docker engine unreachable", and run in
containers once it answers again. Running on the host is an admin's explicit choice per
pipeline, and shows on every stage it ran. Against a real agent and the real engine."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.reliability.served import ServedAgent, stage, summary
from tests.reliability.socket_cut import CuttableEngineSocket
from tests.security.conftest import svc_name


@pytest.fixture
def marker() -> Iterator[Path]:
    """A file in the host's /tmp that a stage running on the host would create."""
    path = Path("/tmp") / f"seamless-host-marker-{uuid.uuid4().hex[:10]}"
    yield path
    path.unlink(missing_ok=True)


def add_probe_service(agent: ServedAgent, repo_url: str, marker: Path, **pipeline: object
                      ) -> str:
    agent.add_pipeline("shop", **pipeline)
    name = svc_name("nohost")
    agent.add_service(name, "shop", repo_url,
                      unit_test_command=f"id -u > {marker}; echo ran-as-$(id -u)")
    return name


@pytest.mark.docker
def test_with_the_engine_down_a_stage_fails_unreachable_and_nothing_runs_on_the_host(
        serve, hostile_repo, tmp_path: Path, marker: Path) -> None:
    repo = hostile_repo()
    agent: ServedAgent = serve(docker_host=f"unix://{tmp_path}/no-engine.sock",
                               config={"executor": "auto", "docker_wait_s": 3,
                                       "docker_queue_wait_s": 3})
    name = add_probe_service(agent, repo.url, marker)
    run = agent.wait_run(agent.trigger(name, repo.head_sha, kind="partial")["id"], timeout=90)

    assert not marker.exists(), "the stage ran on the agent's host"
    assert run["status"] == "failed", summary(run)
    assert "the run did not start (Docker engine unreachable" in run["error"], run["error"]
    assert stage(run, "Unit Test")["status"] == "skipped", summary(run)
    assert stage(run, "Unit Test")["executor"] is None  # never handed to any executor
    assert any("waiting for the Docker engine" in line
               for line in agent.log_lines(run["id"], "Prepare"))


@pytest.mark.docker
def test_a_stage_waiting_for_the_engine_runs_in_a_container_once_it_is_back(
        serve, hostile_repo, tmp_path: Path, marker: Path) -> None:
    repo = hostile_repo()
    engine = CuttableEngineSocket(tmp_path / "late-engine.sock")  # not listening yet
    agent: ServedAgent = serve(docker_host=engine.url,
                               config={"executor": "auto", "docker_wait_s": 90})
    try:
        name = add_probe_service(agent, repo.url, marker)
        run_id = agent.trigger(name, repo.head_sha, kind="partial")["id"]
        agent.wait_run(run_id, lambda r: any("waiting for the Docker engine" in line for line
                                             in agent.log_lines(r["id"], "Prepare")),
                       timeout=60)
        engine.start()
        run = agent.wait_run(run_id, timeout=90)
    finally:
        engine.cut()

    assert run["status"] == "success", summary(run)
    assert not marker.exists(), "the stage ran on the agent's host"
    assert stage(run, "Unit Test")["executor"] == "docker"
    log = agent.log_lines(run_id, "Prepare")  # the run waited queued, then started
    assert any("the Docker engine answers again" in line for line in log), log


@pytest.mark.docker
def test_the_local_executor_runs_only_when_an_admin_sets_it_and_each_stage_says_so(
        serve, hostile_repo, marker: Path) -> None:
    repo = hostile_repo()
    agent: ServedAgent = serve(config={"executor": "auto"})
    name = add_probe_service(agent, repo.url, marker, executor="local")
    run = agent.wait_run(agent.trigger(name, repo.head_sha, kind="partial")["id"], timeout=90)

    assert run["status"] == "success", summary(run)
    assert marker.exists()  # on the host, as the admin asked
    assert stage(run, "Unit Test")["executor"] == "local"
    assert any("local executor, set by an admin in pipeline 'shop'" in line
               for line in agent.log_lines(run["id"], "Unit Test"))
    deployer = agent.call("POST", "/api/v1/tokens", 201, json={"name": "d", "role": "deployer"})
    with agent.client(deployer["token"]) as c:
        refused = c.put("/api/v1/pipelines/shop", json={"name": "shop", "executor": "local"})
    assert refused.status_code == 403


def test_an_agent_config_asking_for_the_local_executor_is_refused_naming_the_fix(
        tmp_path: Path) -> None:
    """Running every stage on the host is not a host-wide switch: `seamless-agent serve`
    with `executor = "local"` in its config does not start, and says what to do instead."""
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nport = {free_port()}\n'
                      'executor = "local"\n')
    started = subprocess.run([str(Path(sys.executable).with_name("seamless-agent")), "serve",
                              "--config", str(config)], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "SEAMLESS_CONFIG": str(config)})
    assert started.returncode == 2, started.stdout + started.stderr
    assert 'executor = "local" is not an agent setting' in started.stderr
    assert '`executor = "local"` on the pipeline that needs it' in started.stderr
    assert "Traceback" not in started.stderr
    assert not (tmp_path / "data" / "seamless.db").exists()
