"""Deleting a service that still serves: 409 unless teardown=true, which stops its
colours, frees its stable ports and removes its images (real engine, real deploys)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from agent.api.app import create_app
from agent.config import AgentConfig
from agent.runtime import Agent
from store.models import DockerTargetConfig, PipelineConfig, Role, ServiceConfig
from tests.harness.server import ServerThread
from tests.helpers import free_port, port_open


def test_a_live_service_is_deleted_only_with_teardown(tmp_path: Path, sample_repo: Any,
                                                      docker_client, base_image: str) -> None:
    name = f"tear-{uuid.uuid4().hex[:8]}"
    repo = sample_repo(name)
    ports = {"staging": free_port(), "production": free_port()}
    agent = Agent(AgentConfig(data_dir=tmp_path / "data", executor="docker",
                              poll_enabled=False))
    agent.store.create_pipeline(PipelineConfig(
        name="shop", staging=DockerTargetConfig(port=ports["staging"]),
        production=DockerTargetConfig(port=ports["production"])))
    agent.store.create_service(ServiceConfig(
        name=name, pipeline="shop", repo_url=repo.url, branch=repo.current_branch,
        unit_test_command="true"))
    token, _ = agent.store.create_token("admin", Role.admin)
    server = ServerThread(create_app(agent)).start()
    mine = {"label": f"io.seamless.service={name}"}
    try:
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as api:
            run = api.post(f"/api/v1/services/{name}/trigger", json={}).json()
            deadline = time.monotonic() + 180
            while (status := api.get(f"/api/v1/runs/{run['id']}").json()["status"]) in (
                    "queued", "running"):
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
            assert status == "success"
            assert port_open("127.0.0.1", ports["production"])

            refused = api.delete(f"/api/v1/services/{name}")
            assert refused.status_code == 409
            assert refused.json()["detail"] == (
                f"service {name} is live in staging, production: delete it with "
                "teardown=true to stop its colours, free its stable ports and remove its "
                "images")
            assert docker_client.containers.list(filters=mine)  # still serving

            deploying = agent.deployer.lock(agent.store.get_service(name), "production")
            with deploying:  # as a deploy or rollback holds it
                busy = api.delete(f"/api/v1/services/{name}", params={"teardown": "true"})
            assert busy.status_code == 409
            assert busy.json()["detail"] == (
                f"a deploy or rollback of {name} to production is in progress: delete the "
                "service when it has ended (or cancel its run)")
            assert docker_client.containers.list(filters=mine)  # nothing removed under it
            assert api.get(f"/api/v1/services/{name}").status_code == 200

            gone = api.delete(f"/api/v1/services/{name}", params={"teardown": "true"})
            assert gone.status_code == 204, gone.text
            assert api.get(f"/api/v1/services/{name}").status_code == 404
        assert docker_client.containers.list(all=True, filters=mine) == []
        assert docker_client.images.list(filters=mine) == []
        assert not port_open("127.0.0.1", ports["staging"])
        assert not port_open("127.0.0.1", ports["production"])
    finally:
        server.stop()
        agent.close()
        for c in docker_client.containers.list(all=True, filters=mine):
            c.remove(force=True)
