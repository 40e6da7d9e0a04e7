"""What an ECS stage task looks like: the task definition and the run_task request.

Pure functions of (config, spec), so they are tested without AWS. The family name is
a hash of the whole registration, so registering is idempotent: a retry or a
restarted agent reuses the definition instead of minting a new revision.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agent.executors.base import StageSpec, stage_slug
from store.models import EcsExecutorConfig

CONTAINER_NAME = "stage"
FAMILY_PREFIX = "seamless-stage-"
# The EFS access point exposes the root of all workspaces (the agent's workspaces dir):
# access points forbid a per-task rootDirectory, so the run's own directory is chosen
# by the working directory instead of by the mount.
WORKSPACES_MOUNT = "/workspaces"
DOCKER_SOCKET = "/var/run/docker.sock"


def is_fargate(config: EcsExecutorConfig) -> bool:
    if config.capacity_provider:
        return config.capacity_provider in ("FARGATE", "FARGATE_SPOT")
    return config.launch_type == "FARGATE"


class TaskDefinitionError(ValueError):
    """The stage cannot be expressed as a task on this cluster (a configuration error)."""


def started_by(run_id: int) -> str:
    return f"seamless-run{run_id}"


def stream_prefix(run_id: int) -> str:
    return f"run{run_id}"


def log_stream_name(run_id: int, task_arn: str) -> str:
    # awslogs names streams <prefix>/<container name>/<task id>.
    return f"{stream_prefix(run_id)}/{CONTAINER_NAME}/{task_arn.rsplit('/', 1)[-1]}"


def workspace_dir(spec: StageSpec, workspaces_root: Path | None) -> str:
    """The run's workspace as the container sees it: under the EFS mount."""
    if workspaces_root is not None:
        try:
            rel = spec.workspace.relative_to(workspaces_root)
        except ValueError as exc:
            raise TaskDefinitionError(
                f"workspace {spec.workspace} is not under the EFS workspaces root "
                f"{workspaces_root}") from exc
    else:  # the Workspaces layout: <workspaces>/<service>/<sha>
        rel = Path(spec.workspace.parent.name) / spec.workspace.name
    return f"{WORKSPACES_MOUNT}/{rel.as_posix()}".rstrip("/")


def task_definition(config: EcsExecutorConfig, spec: StageSpec,
                    workspaces_root: Path | None = None) -> dict[str, Any]:
    """Keyword arguments for `register_task_definition`, family included."""
    fargate = is_fargate(config)
    workdir = workspace_dir(spec, workspaces_root)
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if config.efs_file_system_id:
        efs: dict[str, Any] = {"fileSystemId": config.efs_file_system_id,
                               "rootDirectory": "/", "transitEncryption": "ENABLED"}
        if config.efs_access_point_id:
            efs["authorizationConfig"] = {"accessPointId": config.efs_access_point_id,
                                          "iam": "DISABLED"}
        volumes.append({"name": "workspaces", "efsVolumeConfiguration": efs})
    elif fargate:
        raise TaskDefinitionError("a Fargate stage needs efs_file_system_id: its workspace "
                                  "must live on EFS")
    else:  # EC2 instances that mount the shared file system at the agent's own path
        source = str(workspaces_root or spec.workspace.parent.parent)
        volumes.append({"name": "workspaces", "host": {"sourcePath": source}})
    mounts.append({"sourceVolume": "workspaces", "containerPath": WORKSPACES_MOUNT,
                   "readOnly": False})
    if spec.mount_docker_socket:
        if fargate:
            raise TaskDefinitionError("the Docker socket exists only on EC2 container "
                                      "instances, not on Fargate")
        volumes.append({"name": "docker-socket", "host": {"sourcePath": DOCKER_SOCKET}})
        mounts.append({"sourceVolume": "docker-socket", "containerPath": DOCKER_SOCKET,
                       "readOnly": False})

    container = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "essential": True,
        # The entry point is set too: images like alpine/git (entry point `git`) and
        # kaniko (`/kaniko/executor`) would otherwise receive `sh -c …` as arguments.
        "entryPoint": ["sh", "-c"],
        "command": [spec.command],
        "workingDirectory": workdir,
        # moto (and EC2 placement) need container-level memory; Fargate sizes the task too.
        "memory": config.memory_mib,
        "cpu": config.cpu,
        "mountPoints": mounts,
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": config.log_group,
            "awslogs-region": config.region,
            "awslogs-stream-prefix": stream_prefix(spec.run_id),
        }},
        "dockerLabels": {k: v for k, v in spec.labels.items()},
    }
    body: dict[str, Any] = {
        "containerDefinitions": [container],
        "volumes": volumes,
        "networkMode": "awsvpc" if fargate else "bridge",
        "requiresCompatibilities": ["FARGATE" if fargate else "EC2"],
    }
    if fargate:
        body["cpu"] = str(config.cpu)
        body["memory"] = str(config.memory_mib)
    if config.execution_role_arn:
        body["executionRoleArn"] = config.execution_role_arn
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]
    body["family"] = FAMILY_PREFIX + digest
    body["tags"] = [{"key": "seamless:run", "value": str(spec.run_id)},
                    {"key": "seamless:stage", "value": spec.stage}]
    return body


def run_task_request(config: EcsExecutorConfig, spec: StageSpec, task_definition_arn: str,
                     workspaces_root: Path | None = None) -> dict[str, Any]:
    """Keyword arguments for `run_task`. The environment travels as an override, not in
    the task definition: definitions are immutable and kept, overrides die with the task."""
    env = {**spec.env, "SEAMLESS_WORKSPACE": workspace_dir(spec, workspaces_root),
           "SEAMLESS_RUN_ID": str(spec.run_id), "SEAMLESS_STAGE": spec.stage}
    request: dict[str, Any] = {
        "cluster": config.cluster,
        "taskDefinition": task_definition_arn,
        "count": 1,
        "startedBy": started_by(spec.run_id),
        "tags": [{"key": "seamless:run", "value": str(spec.run_id)},
                 {"key": "seamless:stage", "value": spec.stage},
                 {"key": "seamless:service", "value": spec.service}],
        "overrides": {"containerOverrides": [{
            "name": CONTAINER_NAME,
            "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        }]},
        "group": f"seamless:{stage_slug(spec.stage)}",
    }
    if config.capacity_provider:
        request["capacityProviderStrategy"] = [{"capacityProvider": config.capacity_provider,
                                                "weight": 1}]
    else:
        request["launchType"] = config.launch_type
    if is_fargate(config):
        request["networkConfiguration"] = {"awsvpcConfiguration": {
            "subnets": config.subnets, "securityGroups": config.security_groups,
            "assignPublicIp": "DISABLED"}}
    return request
