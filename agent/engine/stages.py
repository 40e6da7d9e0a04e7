"""What each default stage does for a service: its command, image, environment."""

from __future__ import annotations

from pathlib import Path

from agent.executors.base import StageSpec, container_name, stage_labels
from agent.executors.secret_files import MOUNT as SECRETS_MOUNT
from agent.executors.socket_stages import started_by_env
from store.models import (
    STAGE_CODE_QUALITY,
    STAGE_INTEGRATION_TEST,
    STAGE_PREPARE,
    STAGE_UNIT_TEST,
    Pipeline,
    RunInfo,
    Service,
    Trigger,
    image_for,
)

COMMAND_STAGES = {
    STAGE_PREPARE: "prepare_command",
    STAGE_CODE_QUALITY: "code_quality_command",
    STAGE_UNIT_TEST: "unit_test_command",
    STAGE_INTEGRATION_TEST: "integration_test_command",
}


def stage_command(service: Service, stage: str) -> str | None:
    field = COMMAND_STAGES.get(stage)
    value = getattr(service, field) if field else None
    return value or None


def stage_env(service: Service, run: RunInfo) -> dict[str, str]:
    """The service's environment and secrets, plus what every stage may want to know."""
    env = dict(service.env)
    if service.secrets_as != "files":
        env.update(service.secrets)
    env.update({
        "CI": "true",
        "SEAMLESS": "1",
        "SEAMLESS_SERVICE": service.name,
        "SEAMLESS_RUN": str(run.id),
        "SEAMLESS_RUN_NUMBER": str(run.number),
        "SEAMLESS_SHA": run.sha,
        "SEAMLESS_BRANCH": run.branch or "",
        "SEAMLESS_IMAGE": image_for(service, run.sha),
    })
    if run.pr_number is not None:
        env["SEAMLESS_PR"] = str(run.pr_number)
    return env


def stage_timeout(service: Service, pipeline: Pipeline) -> float:
    return float(service.stage_timeout_s or pipeline.stage_timeout_s)


def command_spec(service: Service, pipeline: Pipeline, run: RunInfo, stage: str, command: str,
                 workspace: Path, network: str | None = None, instance: str = "") -> StageSpec:
    name = container_name(run.id, stage, instance)
    env = stage_env(service, run)
    if service.mount_docker_socket:  # what the stage starts carries its name: swept after
        env.update(started_by_env(name))
    files = dict(service.secrets) if service.secrets_as != "env" else {}
    if files:
        env["SEAMLESS_SECRETS_DIR"] = SECRETS_MOUNT
    return StageSpec(
        run_id=run.id,
        stage=stage,
        service=service.name,
        image=service.stage_image or pipeline.stage_image,
        command=command,
        workspace=workspace,
        env=env,
        timeout_s=stage_timeout(service, pipeline),
        container_name=name,
        labels=stage_labels(run.id, stage, service.name, instance),
        mount_docker_socket=service.mount_docker_socket,
        network=network,
        secret_files=files,
        pull_request=run.pr_number is not None or run.trigger is Trigger.pull_request,
    )


def secrets_of(service: Service) -> list[str]:
    return [v for v in service.secrets.values() if v]
