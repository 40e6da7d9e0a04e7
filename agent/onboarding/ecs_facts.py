"""What a service needs on Fargate, and the ECS request bodies built from it.

A service's basic facts come from its config (image repository, container port, health
check path, env) plus provisioning flags (CPU, memory, desired count). Facts the flags leave
out keep their current value in AWS, so re-running `env provision` never reverts a change
made with an earlier flag, and never touches the image: deploys own the image tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from store.models import ServiceConfig

MANAGED_TAG = "seamless:managed"
PIPELINE_TAG = "seamless:pipeline"
ENV_TAG = "seamless:env"
PORT_NAME = "http"

DEFAULT_CPU = 256  # 0.25 vCPU
DEFAULT_MEMORY = 512  # MiB; a valid Fargate pairing with 256 CPU units
DEFAULT_DESIRED_COUNT = 1


@dataclass(frozen=True)
class FargateFacts:
    image: str
    port: int
    cpu: int
    memory: int
    health_command: tuple[str, ...] | None
    environment: tuple[tuple[str, str], ...]


@dataclass
class SizeFlags:
    """Explicit flags; None means 'keep what is there, else the default'."""

    cpu: int | None = None
    memory: int | None = None
    desired_count: int | None = None


def tags(pipeline: str, env: str) -> dict[str, str]:
    return {MANAGED_TAG: "true", PIPELINE_TAG: pipeline, ENV_TAG: env}


def ecs_tags(pipeline: str, env: str) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags(pipeline, env).items()]


def is_ours(found: list[dict[str, str]] | None, pipeline: str, env: str) -> bool:
    """True when ECS/Cloud Map tags (either key casing) mark it as created for pipeline/env."""
    have = {(t.get("key") or t.get("Key")): (t.get("value") or t.get("Value"))
            for t in (found or [])}
    return all(have.get(k) == v for k, v in tags(pipeline, env).items())


def health_command(service: ServiceConfig) -> tuple[str, ...] | None:
    """A container health check on the service's HTTP path (busybox wget or curl)."""
    path = service.health_check.path
    if path is None:
        return None  # the image's own HEALTHCHECK applies
    url = f"http://localhost:{service.container_port}{path}"
    return ("CMD-SHELL", f"wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url} || exit 1")


def desired_facts(service: ServiceConfig, flags: SizeFlags, current: FargateFacts | None,
                  initial_image: str) -> FargateFacts:
    return FargateFacts(
        image=current.image if current else initial_image,
        port=service.container_port,
        cpu=flags.cpu or (current.cpu if current else DEFAULT_CPU),
        memory=flags.memory or (current.memory if current else DEFAULT_MEMORY),
        health_command=health_command(service),
        environment=tuple(sorted(service.env.items())),
    )


def facts_of(task_definition: dict[str, Any]) -> FargateFacts:
    """The facts an existing task definition revision encodes (inverse of task_definition)."""
    container = task_definition["containerDefinitions"][0]
    mappings = container.get("portMappings") or [{}]
    health = container.get("healthCheck", {}).get("command")
    return FargateFacts(
        image=container["image"],
        port=int(mappings[0].get("containerPort", 0)),
        cpu=int(task_definition.get("cpu") or 0),
        memory=int(task_definition.get("memory") or 0),
        health_command=tuple(health) if health else None,
        environment=tuple(sorted((e["name"], e["value"])
                                 for e in container.get("environment", []))),
    )


def task_definition(family: str, container_name: str, facts: FargateFacts,
                    execution_role_arn: str | None,
                    tag_list: list[dict[str, str]]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": container_name,
        "image": facts.image,
        "essential": True,
        # Container-level memory too: some tooling (and moto's run_task) insists on it.
        "memory": facts.memory,
        # A named port mapping is what Service Connect publishes under the service's name.
        "portMappings": [{"containerPort": facts.port, "protocol": "tcp", "name": PORT_NAME,
                          "appProtocol": "http"}],
        "environment": [{"name": k, "value": v} for k, v in facts.environment],
    }
    if facts.health_command:
        container["healthCheck"] = {"command": list(facts.health_command), "interval": 30,
                                    "timeout": 5, "retries": 3, "startPeriod": 10}
    body: dict[str, Any] = {
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": str(facts.cpu), "memory": str(facts.memory),
        "containerDefinitions": [container], "tags": tag_list,
    }
    if execution_role_arn:
        body["executionRoleArn"] = execution_role_arn
    return body


def service_connect(namespace_arn: str, discovery_name: str, port: int) -> dict[str, Any]:
    """Other services of the environment reach this one at http://<discovery_name>:<port>."""
    return {"enabled": True, "namespace": namespace_arn,
            "services": [{"portName": PORT_NAME, "discoveryName": discovery_name,
                          "clientAliases": [{"port": port, "dnsName": discovery_name}]}]}
