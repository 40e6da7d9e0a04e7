"""Where a pipeline deploys and runs its stages: Docker hosts (blue-green, canary), ECS
services behind a load balancer, ECS stage tasks, and the health check of a deploy."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ConfigModel(BaseModel):
    """Every config section: unknown keys refused, strings stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CanaryConfig(ConfigModel):
    """Canary steps and the rules that judge each one (agent/deploy/canary.py)."""

    steps: list[int] = Field([10, 50, 100], min_length=1, max_length=10,
                             description="percent of requests on the canary, rising, ending 100")
    bake_s: float = Field(60.0, gt=0, le=86400, description="measuring window per step")
    min_requests: int = Field(20, ge=1, description="fewer canary requests: inconclusive")
    min_latency_samples: int = Field(
        20, ge=1, description="fewer timed requests per colour: no latency verdict yet (a p95"
                              " over fewer is the slowest one: one stalled request)")
    max_error_rate: float = Field(0.05, ge=0, le=1, description="canary 5xx+failures, absolute")
    max_error_rate_increase: float = Field(
        0.02, ge=0, le=1, description="canary error rate minus stable's, at most")
    max_p95_ms: float | None = Field(None, gt=0, description="canary p95, absolute")
    max_p95_ratio: float = Field(1.5, ge=1, description="canary p95 ÷ stable p95, at most…")
    p95_slack_ms: float = Field(50.0, ge=0, description="…plus this many ms")
    hold_timeout_s: float = Field(600.0, gt=0, description="inconclusive this long: abort")
    probe_rps: float = Field(0.0, ge=0, le=50,
                             description="synthetic GETs of the health path through the front")

    @field_validator("steps")
    @classmethod
    def _rising_to_100(cls, steps: list[int]) -> list[int]:
        if any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
            raise ValueError("canary steps are rising percentages between 1 and 100")
        if steps[-1] != 100:
            raise ValueError("the last canary step must be 100")
        return steps


class DockerTargetConfig(ConfigModel):
    """A Docker engine; an HAProxy front on a stable host port serves the live colour."""

    kind: Literal["docker"] = "docker"
    docker_host: str | None = Field(None, description="DOCKER_HOST URL; None = local engine")
    host: str = Field("127.0.0.1", description="address the stable port binds to")
    port: int | None = Field(None, ge=1, le=65535,
                             description="stable published port; None = chosen per service")
    strategy: Literal["blue_green", "canary"] = "blue_green"
    canary: CanaryConfig = Field(default_factory=CanaryConfig)


_TG_ARN = re.compile(r"^arn:aws[\w-]*:elasticloadbalancing:[\w-]+:\d{12}:targetgroup/[\w-]+/\w+$")
_LISTENER_ARN = re.compile(
    r"^arn:aws[\w-]*:elasticloadbalancing:[\w-]+:\d{12}:listener/(app|net)/[\w-]+/\w+/\w+$")


class EcsLoadBalancerConfig(ConfigModel):
    """Blue-green and canary on ECS: an ELBv2 listener whose forward action splits traffic
    between two target groups by weight; each colour is its own ECS service
    (`<service>-blue` / `-green`) registered with its target group."""

    listener_arn: str = Field(..., description="the listener whose default action forwards")
    blue_target_group_arn: str
    green_target_group_arn: str
    container_port: int | None = Field(
        None, ge=1, le=65535, description="port the target groups reach; None = the service's")
    alarm_names: list[str] = Field(
        default_factory=list, max_length=10,
        description="CloudWatch alarms: one in ALARM during a canary step stops the canary")
    check_interval_s: float = Field(
        10.0, gt=0, le=300, description="how often a canary step reads alarms and metrics")
    health_wait_s: float = Field(
        300.0, gt=0, le=3600, description="how long the new colour's targets may take to be"
                                          " healthy in its target group")

    @field_validator("listener_arn")
    @classmethod
    def _listener(cls, value: str) -> str:
        if not _LISTENER_ARN.match(value):
            raise ValueError("not an ELBv2 listener ARN (arn:aws:elasticloadbalancing:"
                             "<region>:<account>:listener/app/<lb>/<id>/<id>)")
        return value

    @field_validator("blue_target_group_arn", "green_target_group_arn")
    @classmethod
    def _target_group(cls, value: str) -> str:
        if not _TG_ARN.match(value):
            raise ValueError("not an ELBv2 target group ARN (arn:aws:elasticloadbalancing:"
                             "<region>:<account>:targetgroup/<name>/<id>)")
        return value

    @model_validator(mode="after")
    def _two_groups(self) -> EcsLoadBalancerConfig:
        if self.blue_target_group_arn == self.green_target_group_arn:
            raise ValueError("blue and green need two different target groups")
        return self


class EcsTargetConfig(ConfigModel):
    kind: Literal["ecs"] = "ecs"
    strategy: Literal["rolling", "blue_green", "canary"] = Field(
        "rolling", description="rolling: ECS replaces the tasks; blue_green / canary: two"
                               " colour services behind load_balancer's weighted target groups")
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    load_balancer: EcsLoadBalancerConfig | None = None
    cluster: str = Field(..., min_length=1)
    service: str | None = Field(None, description="ECS service name; default <service>-<env>")
    region: str = "us-east-1"
    endpoint_url: str | None = Field(None, description="AWS endpoint override (tests: moto)")
    ecr_repository: str | None = None
    ecr_registry: str | None = Field(
        None, description="registry host to push to instead of the ECR endpoint named by"
                          " get_authorization_token (tests: a loopback registry)")
    wait_max_attempts: int = Field(40, ge=1, le=1000)
    wait_delay_s: int = Field(15, ge=1, le=600)

    @model_validator(mode="after")
    def _strategy_needs_load_balancer(self) -> EcsTargetConfig:
        if self.strategy != "rolling" and self.load_balancer is None:
            raise ValueError(f"strategy {self.strategy} on ECS needs load_balancer: the"
                             " listener and the blue and green target groups it splits"
                             " traffic between")
        if self.canary.probe_rps:
            raise ValueError("canary.probe_rps is for the Docker front only: on ECS, top up"
                             " low traffic with a CloudWatch Synthetics canary and name its"
                             " alarm in load_balancer.alarm_names")
        return self


class NoTargetConfig(ConfigModel):
    kind: Literal["none"] = "none"


DeployTargetConfig = Annotated[
    DockerTargetConfig | EcsTargetConfig | NoTargetConfig, Field(discriminator="kind")
]


class HealthCheck(ConfigModel):
    path: str | None = Field("/health", description="HTTP path; None = the image's HEALTHCHECK")
    expected_status: int = Field(200, ge=100, le=599)
    timeout_s: float = Field(30.0, gt=0, le=600)
    interval_s: float = Field(0.2, gt=0, le=60)

    @field_validator("path")
    @classmethod
    def _path_starts_with_slash(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("health check path must start with '/'")
        return v


class EcsExecutorConfig(ConfigModel):
    cluster: str = Field(..., min_length=1)
    region: str = "us-east-1"
    endpoint_url: str | None = None
    capacity_provider: str | None = None
    launch_type: Literal["EC2", "FARGATE"] = "EC2"
    subnets: list[str] = Field(default_factory=list)
    security_groups: list[str] = Field(default_factory=list)
    efs_file_system_id: str | None = None
    efs_access_point_id: str | None = None
    log_group: str = "/seamless/stages"
    execution_role_arn: str | None = None
    max_parallel_tasks: int = Field(50, ge=1, le=10_000)
    cpu: int = Field(1024, ge=128, le=16_384, description="CPU units per stage task")
    memory_mib: int = Field(2048, ge=128, le=122_880, description="hard memory limit per stage")
    # How a Build stage on ECS builds: the EC2 instance's Docker daemon, or kaniko (Fargate).
    build_mode: Literal["docker", "kaniko"] = "docker"
