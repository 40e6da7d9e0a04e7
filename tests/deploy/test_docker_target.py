"""Blue-green deploys, failed health checks, rollbacks and pins on the real Docker engine."""

from __future__ import annotations

import io
import threading

import pytest

from agent.deploy.deployer import Deployer, RollbackError
from agent.logs.logger import LoggingStageLog
from store.models import (
    STAGE_DEPLOY_PRODUCTION,
    ApprovalStatus,
    DeploymentKind,
    DeploymentStatus,
    HealthCheck,
    NoTargetConfig,
    PipelineConfig,
)
from tests.deploy.conftest import PORT, FakeWorkspaces, make_run, make_service
from tests.deploy.hammer import Hammer
from tests.harness import wait_until
from tests.helpers import http_get


def deploy(deployer: Deployer, store, pipeline, service, image_pair, env="production"):
    sha, image = image_pair
    run = make_run(store, service, sha)
    log = LoggingStageLog("test")
    result = deployer.deploy_stage(run, service, pipeline, env, image, log)
    return result, log, run


def address(store, service, env="production") -> str:
    current = store.current_deployment(service.id, env)
    return store.deployment_target_state(current.id)["address"]


def version_at(url: str) -> str | None:
    answer = http_get(url + "/version")
    return answer[1].decode().strip() if answer and answer[0] == 200 else None


def test_blue_green_switch_serves_new_version_without_failed_requests(
        deployer, store, service_images, docker_client):
    pipeline, service = make_service(store, service_images.repo)
    result, log, _ = deploy(deployer, store, pipeline, service, service_images["v1"])
    assert result.ok, log.lines
    url = address(store, service)
    assert version_at(url) == "v1"

    with Hammer(url + "/version") as hammer:
        wait_until(lambda: hammer.ok > 20, what="requests before the switch")
        result, log, _ = deploy(deployer, store, pipeline, service, service_images["v2"])
        assert result.ok, log.lines
        seen = hammer.ok
        wait_until(lambda: hammer.ok > seen + 20, what="requests after the switch")
    assert hammer.failed == 0, hammer.errors
    assert set(hammer.bodies) == {"v1", "v2"}
    assert version_at(url) == "v2"
    assert address(store, service) == url  # the stable address did not move

    history = store.list_deployments(service_id=service.id, environment="production")
    assert [d.status for d in history] == [DeploymentStatus.active, DeploymentStatus.superseded]
    running = docker_client.containers.list(
        filters={"label": f"io.seamless.service={service.name}"})
    assert sorted(c.labels.get("io.seamless.colour", c.labels.get("io.seamless.role"))
                  for c in running) == ["front", "green"]


def test_staging_and_production_are_separate_containers_ports_and_networks(
        deployer, store, service_images, docker_client):
    pipeline, service = make_service(store, service_images.repo)
    assert deploy(deployer, store, pipeline, service, service_images["v1"], "staging")[0].ok
    assert deploy(deployer, store, pipeline, service, service_images["v2"], "production")[0].ok
    staging, production = address(store, service, "staging"), address(store, service)
    assert staging != production
    assert (version_at(staging), version_at(production)) == ("v1", "v2")
    networks = {c.name: list(c.attrs["NetworkSettings"]["Networks"]) for c in
                docker_client.containers.list(
                    filters={"label": f"io.seamless.service={service.name}"})}
    assert networks == {  # each front sits on its own environment's network only
        f"seamless-{service.name}-{env}-{part}": [f"seamless-{service.name}-{env}"]
        for env in ("staging", "production") for part in ("blue", "front")}


def test_failing_health_check_keeps_the_old_version_serving(
        deployer, store, service_images, docker_client):
    pipeline, service = make_service(store, service_images.repo)
    assert deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    url = address(store, service)

    result, log, _ = deploy(deployer, store, pipeline, service, service_images["broken"])
    assert not result.ok
    assert "health check failed" in result.error and "404" in result.error
    assert any("health check failed" in line for line in log.lines)
    assert version_at(url) == "v1"
    failed, live = store.list_deployments(service_id=service.id, environment="production")
    assert failed.status is DeploymentStatus.failed and "404" in failed.error
    assert live.status is DeploymentStatus.active and live.sha == service_images["v1"][0]
    names = [c.name for c in docker_client.containers.list(
        all=True, filters={"label": [f"io.seamless.service={service.name}",
                                     "io.seamless.colour"]})]
    assert names == [f"seamless-{service.name}-production-blue"]


def test_rollback_restores_the_old_response_is_recorded_and_pins(
        deployer, store, service_images, events):
    pipeline, service = make_service(store, service_images.repo)
    sha1 = service_images["v1"][0]
    assert deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    assert deploy(deployer, store, pipeline, service, service_images["v2"])[0].ok
    url = address(store, service)

    started = deployer.rollback(service, "production", sha1[:12], actor="alice")
    assert started.status is DeploymentStatus.in_progress
    assert started.kind is DeploymentKind.rollback
    deployer.wait_idle()
    assert version_at(url) == "v1"
    rollback, v2, v1 = store.list_deployments(service_id=service.id, environment="production")
    assert (rollback.kind, rollback.status, rollback.actor, rollback.sha) == (
        DeploymentKind.rollback, DeploymentStatus.active, "alice", sha1)
    assert v2.status is DeploymentStatus.rolled_back
    assert deployer.is_pinned(service, "production") == sha1
    assert any(e.type == "deployment" and e.deployment.kind is DeploymentKind.rollback
               and e.deployment.status is DeploymentStatus.active for e in events)

    # A later automatic deploy of a newer commit is skipped, visibly.
    result, log, _ = deploy(deployer, store, pipeline, service, service_images["v2"])
    assert result.skipped and "pinned" in result.error
    assert any("pinned" in line for line in log.lines)
    assert version_at(url) == "v1"

    # Approving a newer deploy clears the pin and deploys it.
    run = make_run(store, service, service_images["v2"][0])
    deployer.build_approval(run, service)
    store.decide_approval(run.id, ApprovalStatus.approved, actor="bob")
    result = deployer.deploy_stage(run, service, pipeline, "production",
                                   service_images["v2"][1], LoggingStageLog("t"))
    assert result.ok
    assert deployer.is_pinned(service, "production") is None
    assert version_at(url) == "v2"


def test_rollback_waits_for_a_running_deploy_of_the_same_environment(
        deployer, store, service_images):
    pipeline, service = make_service(store, service_images.repo)
    assert deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    url = address(store, service)
    slow = threading.Thread(target=deploy, args=(deployer, store, pipeline, service,
                                                 service_images["slow"]))
    slow.start()
    wait_until(lambda: store.list_deployments(service_id=service.id)[0].status
               is DeploymentStatus.in_progress, what="slow deploy in progress")
    rollback = deployer.rollback(service, "production", service_images["v1"][0], actor="ops")
    slow.join(60)
    deployer.wait_idle()
    slow_dep = store.list_deployments(service_id=service.id)[1]
    rollback = store.get_deployment(rollback.id)
    assert slow_dep.status is DeploymentStatus.rolled_back  # it went live, then was replaced
    assert rollback.status is DeploymentStatus.active
    assert rollback.finished_at > slow_dep.finished_at
    assert version_at(url) == "v1"


def test_rollback_to_an_image_that_no_longer_exists_is_refused(
        deployer, store, service_images):
    pipeline, service = make_service(store, service_images.repo)
    gone = store.create_deployment(service_id=service.id, environment="production",
                                   sha="e" * 40, image=f"{service_images.repo}:{'e' * 40}",
                                   kind=DeploymentKind.deploy)
    store.finish_deployment(gone.id, DeploymentStatus.active)
    history = deployer.history(service, "production")
    assert history[0].image_exists is False
    with pytest.raises(RollbackError, match="no longer exists"):
        deployer.rollback(service, "production", "e" * 40, actor="ops")
    with pytest.raises(RollbackError, match="never live"):
        deployer.rollback(service, "production", "f" * 40, actor="ops")
    assert deployer.is_pinned(service, "production") is None


def test_no_deploy_target_fails_the_stage_clearly(deployer, store, service_images):
    _, service = make_service(store, service_images.repo)
    config = store.get_pipeline(service.pipeline).model_dump(
        exclude={"id", "created_at", "updated_at"})
    pipeline = store.update_pipeline(service.pipeline, PipelineConfig(
        **{**config, "production": NoTargetConfig()}))
    result, log, _ = deploy(deployer, store, pipeline, service, service_images["v1"])
    assert not result.ok and not result.skipped
    assert result.error == "no deploy target configured for production"
    assert store.list_deployments(service_id=service.id) == []


def test_approval_shows_candidate_vs_production_commits_and_staging_health(
        deployer, store, service_images, events):
    pipeline, service = make_service(store, service_images.repo, auto_deploy=False)
    assert deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    result, _, run = deploy(deployer, store, pipeline, service, service_images["v2"], "staging")
    assert result.ok
    approval = deployer.build_approval(run, service)
    assert approval.status is ApprovalStatus.pending
    assert (approval.candidate_sha, approval.production_sha) == (
        service_images["v2"][0], service_images["v1"][0])
    assert [c.message for c in approval.commits] == ["release v2"]
    assert approval.staging_health.startswith("active: GET /health → 200")
    assert approval.expires_at is not None
    assert deployer.workspaces.between_calls == [(service_images["v1"][0],
                                                  service_images["v2"][0])]
    assert any(e.type == "approval" for e in events)
    assert deployer.build_approval(run, service).id == approval.id  # idempotent on re-entry
    assert store.get_stage(run.id, STAGE_DEPLOY_PRODUCTION).status.value == "idle"


def test_production_serves_while_no_agent_runs_and_a_new_one_reconciles(
        deployer, store, bus, service_images, docker_client, fronts_dir):
    pipeline, service = make_service(store, service_images.repo)
    assert deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    url = address(store, service)
    deployer.close()  # the agent went away: the front is not the agent's
    assert version_at(url) == "v1"
    front = docker_client.containers.get(f"seamless-{service.name}-production-front")
    front.remove(force=True)  # lost while no agent ran
    assert version_at(url) is None
    restarted = Deployer(store, bus, FakeWorkspaces(), lambda: docker_client, fronts_dir)
    try:
        assert restarted.reconcile_fronts()["served"] == 1
        assert version_at(url) == "v1"
        assert deploy(restarted, store, pipeline, service, service_images["v2"])[0].ok
        assert version_at(url) == "v2"
    finally:
        restarted.close()


def test_without_a_health_path_the_images_healthcheck_decides(
        deployer, store, service_images, docker_client):
    tag = f"{service_images.repo}:{'9' * 40}"
    # Tagged under the session's repository: its teardown removes it.
    docker_client.images.build(fileobj=io.BytesIO((
        f"FROM {service_images['v1'][1]}\n"
        "HEALTHCHECK --interval=1s --timeout=2s --retries=2"
        f" CMD wget -qO- http://127.0.0.1:{PORT}/version\n").encode()), tag=tag, rm=True)
    pipeline, service = make_service(store, service_images.repo, health_check=HealthCheck(
        path=None, timeout_s=15, interval_s=0.2))
    result, log, _ = deploy(deployer, store, pipeline, service, ("9" * 40, tag))
    assert result.ok, log.lines
    assert store.deployment_target_state(store.current_deployment(
        service.id, "production").id)["health"].startswith("HEALTHCHECK healthy")
    # An image with no HEALTHCHECK cannot be checked: refused, not waved through.
    result, _, _ = deploy(deployer, store, pipeline, service, service_images["v2"])
    assert not result.ok and "no HEALTHCHECK" in result.error


def _request_lines(container) -> list[str]:
    """The front's per-request log lines (`<epoch>.<ms> <colour> <status> ...`)."""
    raw = container.logs(stdout=True, stderr=False).decode(errors="replace")
    return [line for line in raw.splitlines()
            if len(line.split()) >= 4 and line.split()[1] in ("blue", "green")]


def test_the_front_logs_requests_only_while_asked(
        deployer, store, service_images, docker_client, fronts_dir):
    """Outside canary windows a log line per request is pure cost (the engine's log
    pipeline): the front logs none; `request_log(True)` turns them on live."""
    pipeline, service = make_service(store, service_images.repo)
    result, log, _ = deploy(deployer, store, pipeline, service, service_images["v1"])
    assert result.ok, log.lines
    url = address(store, service)
    target = deployer.target_for(service, pipeline, "production")
    front = target.front(service, "production", int(url.rsplit(":", 1)[1]))  # type: ignore[attr-defined]
    container = front.container()
    for _ in range(20):
        assert version_at(url) == "v1"
    assert _request_lines(container) == []
    front.request_log(True)
    for _ in range(10):
        assert version_at(url) == "v1"
    wait_until(lambda: len(_request_lines(container)) >= 10, timeout=10,
               what="the request lines")
    assert all(line.split()[1] == "blue" for line in _request_lines(container))
    front.request_log(False)
    logged = len(_request_lines(container))
    for _ in range(10):
        assert version_at(url) == "v1"
    assert len(_request_lines(container)) == logged
    # A front restarted by itself comes back as the agent last set it (the map file).
    front.request_log(True)
    container.restart(timeout=5)
    wait_until(lambda: version_at(url) == "v1", timeout=30, what="the restarted front")
    for _ in range(5):
        assert version_at(url) == "v1"
    wait_until(lambda: len(_request_lines(container)) >= logged + 5, timeout=10,
               what="request lines after the restart")
