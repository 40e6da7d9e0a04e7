"""Task definitions and run_task requests as data: launch types, Prepare and Build tasks.

moto registers any of these without running them, so what a real cluster would do with
them (clone, build, push) is not emulated here; these tests pin what we ask ECS for.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.executors.ecs_stages import build_spec, prepare_spec
from agent.executors.ecs_taskdef import (
    DOCKER_SOCKET,
    TaskDefinitionError,
    run_task_request,
    task_definition,
)
from agent.logs.writer import LogWriter
from store.models import EcsExecutorConfig
from tests.ecs.conftest import Moto, StateBox, spec

ROOT = Path("/data/workspaces")
WS = ROOT / "payments" / "abc1234"


def config(**kw: object) -> EcsExecutorConfig:
    fields: dict[str, object] = dict(cluster="c", efs_file_system_id="fs-1",
                                     efs_access_point_id="fsap-1")
    fields.update(kw)
    return EcsExecutorConfig(**fields)  # type: ignore[arg-type]


def test_same_stage_same_family_and_another_run_another_family() -> None:
    a = task_definition(config(), spec(run_id=1), ROOT)
    assert task_definition(config(), spec(run_id=1), ROOT)["family"] == a["family"]
    assert task_definition(config(), spec(run_id=2), ROOT)["family"] != a["family"]


def test_environment_is_an_override_not_part_of_the_definition() -> None:
    stage = spec(env={"API_KEY": "s3cret"})
    assert "s3cret" not in repr(task_definition(config(), stage, ROOT))
    request = run_task_request(config(), stage, "arn:def", ROOT)
    env = request["overrides"]["containerOverrides"][0]["environment"]
    assert {"name": "API_KEY", "value": "s3cret"} in env


def test_fargate_uses_awsvpc_and_task_level_size() -> None:
    cfg = config(launch_type="FARGATE", subnets=["subnet-1"], security_groups=["sg-1"])
    body = task_definition(cfg, spec(), ROOT)
    assert body["networkMode"] == "awsvpc" and body["requiresCompatibilities"] == ["FARGATE"]
    assert body["memory"] == "2048" and body["containerDefinitions"][0]["memory"] == 2048
    request = run_task_request(cfg, spec(), "arn:def", ROOT)
    assert request["launchType"] == "FARGATE"
    assert request["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == ["subnet-1"]


def test_a_capacity_provider_replaces_the_launch_type() -> None:
    request = run_task_request(config(capacity_provider="builders"), spec(), "arn:def", ROOT)
    assert request["capacityProviderStrategy"] == [{"capacityProvider": "builders",
                                                    "weight": 1}]
    assert "launchType" not in request


def test_fargate_without_efs_or_with_the_docker_socket_is_refused() -> None:
    with pytest.raises(TaskDefinitionError, match="EFS"):
        task_definition(config(launch_type="FARGATE", efs_file_system_id=None), spec(), ROOT)
    with pytest.raises(TaskDefinitionError, match="Docker socket"):
        task_definition(config(launch_type="FARGATE"), spec(mount_docker_socket=True), ROOT)


def test_a_workspace_outside_the_efs_root_is_refused() -> None:
    with pytest.raises(TaskDefinitionError, match="not under"):
        task_definition(config(), spec(workspace=Path("/elsewhere/x")), ROOT)


def test_prepare_fetches_the_exact_commit_into_the_workspace() -> None:
    stage = prepare_spec(3, "payments", "https://git.example/acme/pay.git", "abc1234", WS)
    container = task_definition(config(), stage, ROOT)["containerDefinitions"][0]
    assert container["image"].startswith("alpine/git")
    assert container["entryPoint"] == ["sh", "-c"]  # not the image's own `git` entry point
    assert container["workingDirectory"] == "/workspaces/payments/abc1234"
    script = container["command"][0]
    assert "git fetch -q --depth 1 https://git.example/acme/pay.git abc1234" in script
    assert "git checkout -q --detach abc1234" in script


def test_prepare_quotes_what_it_puts_in_the_shell() -> None:
    stage = prepare_spec(3, "payments", "https://x/$(reboot).git", "abc1234", WS)
    assert "'https://x/$(reboot).git'" in stage.command


def test_docker_build_mounts_the_instance_socket_and_pushes_the_sha_tag() -> None:
    stage = build_spec(3, "payments", WS, image_repository="1234.dkr.ecr.us-east-1."
                       "amazonaws.com/payments", sha="abc1234", context="svc")
    body = task_definition(config(), stage, ROOT)
    container = body["containerDefinitions"][0]
    assert {"sourceVolume": "docker-socket", "containerPath": DOCKER_SOCKET,
            "readOnly": False} in container["mountPoints"]
    assert {"name": "docker-socket", "host": {"sourcePath": DOCKER_SOCKET}} in body["volumes"]
    assert "docker build --pull -t 1234.dkr.ecr.us-east-1.amazonaws.com/payments:abc1234 " \
           "-f svc/Dockerfile svc" in container["command"][0]
    assert "docker push" in container["command"][0]


def test_build_for_a_pull_request_does_not_push() -> None:
    docker = build_spec(3, "payments", WS, image_repository="repo/payments", sha="abc1234",
                        push=False)
    kaniko = build_spec(3, "payments", WS, image_repository="repo/payments", sha="abc1234",
                        mode="kaniko", push=False)
    assert "docker build" in docker.command and "docker push" not in docker.command
    assert kaniko.command.endswith(" --no-push")


def test_kaniko_build_runs_on_fargate_without_a_socket() -> None:
    cfg = config(launch_type="FARGATE", subnets=["subnet-1"])
    stage = build_spec(3, "payments", WS, image_repository="repo/payments", sha="abc1234",
                       mode="kaniko")
    container = task_definition(cfg, stage, ROOT)["containerDefinitions"][0]
    assert "kaniko" in container["image"]
    assert all(m["containerPath"] != DOCKER_SOCKET for m in container["mountPoints"])
    assert "--destination repo/payments:abc1234" in container["command"][0]


def test_build_task_is_registered_and_started_on_the_cluster(
        moto: Moto, cluster: str, make_executor, writer: LogWriter) -> None:
    moto.set_task_transition("immediate")
    stage = build_spec(8, "payments", WS, image_repository="repo/payments", sha="abc1234")
    saved = StateBox()
    result = make_executor().run(stage, writer.stage_log(8, "Build", []), threading.Event(),
                                 saved)
    assert result.exit_code == 0  # moto: always 0; real failures: test_ecs_results.py
    ecs = moto.client("ecs")
    definition = ecs.describe_task_definition(
        taskDefinition=saved.states[0]["task_definition_arn"])["taskDefinition"]
    assert definition["containerDefinitions"][0]["image"] == "docker:27-cli"
    assert {"name": "docker-socket", "host": {"sourcePath": DOCKER_SOCKET}} in definition[
        "volumes"]
