"""ECS deploys against a moto server over HTTP; images pushed to the loopback registry."""

from __future__ import annotations

import pytest

from agent.logs.logger import LoggingStageLog
from store.models import (
    DeploymentKind,
    DeploymentStatus,
    DockerTargetConfig,
    EcsTargetConfig,
    PipelineConfig,
    ServiceConfig,
)
from tests.deploy.conftest import REGION, make_run
from tests.helpers import unique_name


@pytest.fixture
def ecs_service(store, moto_server, registry, monkeypatch):
    """A pipeline deploying production to an ECS service running task definition rev 1."""
    cluster = unique_name("cluster")
    ecs = moto_server.client("ecs")
    ecs.create_cluster(clusterName=cluster)
    pipeline = store.create_pipeline(PipelineConfig(
        name=unique_name("pl"), staging=DockerTargetConfig(),
        production=EcsTargetConfig(cluster=cluster, region=REGION, endpoint_url=moto_server,
                                   ecr_registry=registry.host, wait_delay_s=1,
                                   wait_max_attempts=3)))
    service = store.create_service(ServiceConfig(name=unique_name("svc"),
                                                 pipeline=pipeline.name, repo_url="/tmp/none"))
    family = ecs.register_task_definition(
        family=service.name, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="256", memory="512",
        containerDefinitions=[{"name": service.name, "image": "placeholder:0", "memory": 512,
                               "portMappings": [{"containerPort": 8080}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")  # read by moto at create_service
    ecs.create_service(cluster=cluster, serviceName=f"{service.name}-production",
                       taskDefinition=family, desiredCount=1)
    return pipeline, service, cluster, ecs


def service_image(ecs, cluster: str, name: str) -> tuple[str, str]:
    arn = ecs.describe_services(cluster=cluster, services=[name])["services"][0]["taskDefinition"]
    td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    return arn, td["containerDefinitions"][0]["image"]


def test_ecs_deploy_registers_a_revision_with_the_pushed_image_and_updates_the_service(
        deployer, store, ecs_service, service_images, registry):
    pipeline, service, cluster, ecs = ecs_service
    sha1, image1 = service_images["v1"]
    repo = image1.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    log = LoggingStageLog("t")
    result = deployer.deploy_stage(make_run(store, service, sha1), service, pipeline,
                                   "production", image1, log)
    assert result.ok, log.lines
    arn, image = service_image(ecs, cluster, f"{service.name}-production")
    assert arn.endswith(f"task-definition/{service.name}:2")
    assert image == f"{registry.host}/{repo}:{sha1}"
    assert sha1 in registry.tags(repo)
    dep = store.current_deployment(service.id, "production")
    assert dep.sha == sha1
    assert store.deployment_target_state(dep.id)["task_definition"] == arn
    assert any("stable" in line for line in log.lines)


def test_ecs_rollback_registers_a_revision_with_the_older_image(
        deployer, store, ecs_service, service_images, registry):
    pipeline, service, cluster, ecs = ecs_service
    for version in ("v1", "v2"):
        sha, image = service_images[version]
        assert deployer.deploy_stage(make_run(store, service, sha), service, pipeline,
                                     "production", image, LoggingStageLog("t")).ok
    sha1 = service_images["v1"][0]
    started = deployer.rollback(service, "production", sha1, actor="ops")
    deployer.wait_idle()
    done = store.get_deployment(started.id)
    assert (done.kind, done.status) == (DeploymentKind.rollback, DeploymentStatus.active)
    arn, image = service_image(ecs, cluster, f"{service.name}-production")
    assert arn.endswith(f"task-definition/{service.name}:4")
    assert image.endswith(f":{sha1}") and image.startswith(registry.host)


def test_ecs_deploy_to_a_missing_service_fails_clearly(
        deployer, store, ecs_service, service_images):
    pipeline, service, cluster, ecs = ecs_service
    ecs.delete_service(cluster=cluster, service=f"{service.name}-production", force=True)
    sha, image = service_images["v1"]
    result = deployer.deploy_stage(make_run(store, service, sha), service, pipeline,
                                   "production", image, LoggingStageLog("t"))
    assert not result.ok
    assert f"{service.name}-production" in result.error
    assert store.list_deployments(service_id=service.id)[0].status is DeploymentStatus.failed
