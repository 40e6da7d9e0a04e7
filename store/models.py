"""Pydantic models shared by the agent (store, API bodies) and the TUI (view data).

Declared once here; the API serves them as JSON and the TUI parses them back.
This module must stay import-light: the TUI imports it on a laptop with no
database and no Docker.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# ---- names and enums ---------------------------------------------------------

STAGE_PREPARE = "Prepare"
STAGE_CODE_QUALITY = "Code Quality"
STAGE_UNIT_TEST = "Unit Test"
STAGE_BUILD = "Build"
STAGE_INTEGRATION_TEST = "Integration Test"
STAGE_DEPLOY_STAGING = "Deploy to Staging"
STAGE_DEPLOY_PRODUCTION = "Deploy to Production"

DEFAULT_STAGES: tuple[str, ...] = (
    STAGE_PREPARE,
    STAGE_CODE_QUALITY,
    STAGE_UNIT_TEST,
    STAGE_BUILD,
    STAGE_INTEGRATION_TEST,
    STAGE_DEPLOY_STAGING,
    STAGE_DEPLOY_PRODUCTION,
)
# A pull-request run stops after Integration Test: no push, no deploy.
PARTIAL_STAGES: tuple[str, ...] = DEFAULT_STAGES[:5]

ENVIRONMENTS: tuple[str, ...] = ("staging", "production")

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Git ref names: conservative subset, so a branch name can never be a shell or path trick.
BRANCH = re.compile(r"^(?!.*\.\.)(?![/-])(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![/.])$")
SHA = re.compile(r"^[0-9a-f]{7,40}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    awaiting_approval = "awaiting_approval"
    success = "success"
    failed = "failed"
    cancelled = "cancelled"
    rejected = "rejected"
    superseded = "superseded"

    @property
    def finished(self) -> bool:
        return self in FINISHED_RUN_STATUSES


FINISHED_RUN_STATUSES = frozenset(
    {RunStatus.success, RunStatus.failed, RunStatus.cancelled, RunStatus.rejected,
     RunStatus.superseded}
)


class StageStatus(StrEnum):
    idle = "idle"
    in_progress = "in_progress"
    awaiting_approval = "awaiting_approval"
    success = "success"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in {StageStatus.success, StageStatus.failed, StageStatus.skipped,
                        StageStatus.cancelled}


class Trigger(StrEnum):
    push = "push"
    pull_request = "pull_request"
    manual = "manual"
    poll = "poll"
    rerun = "rerun"
    rollback = "rollback"


class RunKind(StrEnum):
    full = "full"
    partial = "partial"


class Role(StrEnum):
    viewer = "viewer"
    deployer = "deployer"
    admin = "admin"

    def allows(self, needed: Role) -> bool:
        order = [Role.viewer, Role.deployer, Role.admin]
        return order.index(self) >= order.index(needed)


class DeploymentStatus(StrEnum):
    in_progress = "in_progress"
    active = "active"
    superseded = "superseded"
    failed = "failed"
    rolled_back = "rolled_back"


class DeploymentKind(StrEnum):
    deploy = "deploy"
    rollback = "rollback"


class ApprovalStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    expired = "expired"


class LogStream(StrEnum):
    stdout = "stdout"
    stderr = "stderr"
    system = "system"  # lines the agent itself writes into a stage log


# ---- configuration: pipelines and services (no YAML: forms and API bodies) -----

class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DockerTargetConfig(_Config):
    """Blue-green on a Docker engine; a stable host port fronts the live colour."""

    kind: Literal["docker"] = "docker"
    docker_host: str | None = Field(None, description="DOCKER_HOST URL; None = local engine")
    host: str = Field("127.0.0.1", description="address the stable port binds to")
    port: int | None = Field(None, ge=1, le=65535,
                             description="stable published port; None = chosen per service")


class EcsTargetConfig(_Config):
    kind: Literal["ecs"] = "ecs"
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


class NoTargetConfig(_Config):
    kind: Literal["none"] = "none"


DeployTargetConfig = Annotated[
    DockerTargetConfig | EcsTargetConfig | NoTargetConfig, Field(discriminator="kind")
]


class HealthCheck(_Config):
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


class EcsExecutorConfig(_Config):
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


ExecutorName = Literal["docker", "local", "ecs"]


class PipelineConfig(_Config):
    name: str = Field(..., description="lowercase slug", examples=["shop"])
    stage_image: str = Field("seamless/busybox:latest", min_length=1)
    stage_timeout_s: int = Field(1800, ge=1, le=86_400)
    max_parallel_runs: int = Field(4, ge=1, le=256)
    auto_deploy: bool = True
    approval_expiry_s: int | None = Field(None, ge=60)
    staging: DeployTargetConfig = Field(default_factory=DockerTargetConfig)
    production: DeployTargetConfig = Field(default_factory=DockerTargetConfig)
    executor: ExecutorName = "docker"
    # Mixed mode: per-stage executor choice, e.g. {"Unit Test": "ecs"}.
    stage_executors: dict[str, ExecutorName] = Field(default_factory=dict)
    ecs_executor: EcsExecutorConfig | None = None
    notify_sns_topic_arn: str | None = None
    notify_slack_webhook_url: str | None = None
    notify_region: str = "us-east-1"
    notify_endpoint_url: str | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError("must be a lowercase slug: a-z, 0-9 and '-', at most 63 characters")
        return v

    @field_validator("stage_executors")
    @classmethod
    def _known_stages(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(DEFAULT_STAGES))
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {list(DEFAULT_STAGES)}")
        return v

    @model_validator(mode="after")
    def _ecs_needs_config(self) -> PipelineConfig:
        uses_ecs = self.executor == "ecs" or "ecs" in self.stage_executors.values()
        if uses_ecs and self.ecs_executor is None:
            raise ValueError("executor 'ecs' needs an 'ecs_executor' section (cluster, region, …)")
        return self


class Triggers(_Config):
    push: bool = True
    pull_request: bool = True
    poll_interval_s: int | None = Field(None, ge=10, le=86_400,
                                        description="poll the remote every N s; None = off")
    poll_pull_requests: bool = False


class ServiceConfig(_Config):
    """Everything the shared pipeline needs to know about one service."""

    name: str = Field(..., description="lowercase slug", examples=["payments"])
    pipeline: str = Field(..., examples=["shop"])
    repo_url: str = Field(..., min_length=1, examples=["https://github.com/acme/payments.git"])
    branch: str = Field("main", examples=["main"])
    triggers: Triggers = Field(default_factory=Triggers)
    stage_image: str | None = Field(None, description="overrides the pipeline's stage image")
    prepare_command: str | None = None
    code_quality_command: str | None = Field(None, examples=["sh lint.sh"])
    unit_test_command: str | None = Field(None, examples=["sh test.sh"])
    dockerfile: str | None = Field("Dockerfile", description="relative to the build context")
    build_context: str = "."
    compose_file: str | None = Field(None, examples=["compose.yaml"])
    integration_test_command: str | None = Field(None, examples=["sh integration.sh"])
    image_repository: str | None = Field(
        None, description="registry/repository the sha-tagged image is pushed to",
        examples=["127.0.0.1:5000/payments"])
    container_port: int = Field(8080, ge=1, le=65535)
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    auto_deploy: bool | None = Field(None, description="None = the pipeline's default")
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict,
                                    description="values are masked in logs and API responses")
    stage_timeout_s: int | None = Field(None, ge=1, le=86_400)
    mount_docker_socket: bool = Field(False, description="opt-in: stages get the Docker CLI socket")
    webhook_secret: str | None = Field(None, description="GitHub webhook HMAC secret")
    staging: DeployTargetConfig | None = None
    production: DeployTargetConfig | None = None

    @field_validator("name", "pipeline")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError("must be a lowercase slug: a-z, 0-9 and '-', at most 63 characters")
        return v

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if not BRANCH.match(v):
            raise ValueError("not a valid branch name (letters, digits, '.', '_', '-', '/')")
        return v

    @field_validator("repo_url")
    @classmethod
    def _repo_url(cls, v: str) -> str:
        ok = v.startswith(("https://", "http://", "git://", "ssh://", "file://", "/")) or (
            re.match(r"^[\w.-]+@[\w.-]+:", v) is not None)
        if not ok or any(c in v for c in "\n\r\t \0"):
            raise ValueError("must be a git URL (https://, ssh://, git@host:, file:// or a path)")
        return v

    @field_validator("dockerfile", "build_context", "compose_file")
    @classmethod
    def _relative_path(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = v.replace("\\", "/").split("/")
        if v.startswith("/") or ".." in parts or "\0" in v:
            raise ValueError("must be a path inside the repository (relative, no '..')")
        return v

    @field_validator("env", "secrets")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"invalid environment variable name(s): {bad}")
        return v

    @model_validator(mode="after")
    def _integration_needs_command(self) -> ServiceConfig:
        if self.compose_file and not self.integration_test_command:
            raise ValueError("compose_file is set but integration_test_command is empty")
        return self


class Pipeline(PipelineConfig):
    id: int
    created_at: datetime
    updated_at: datetime


class Service(ServiceConfig):
    id: int
    created_at: datetime
    updated_at: datetime
    pinned: dict[str, str] = Field(default_factory=dict,
                                   description="environment → sha pinned by a rollback")


SECRET_MASK = "********"


def redact_service(service: Service) -> Service:
    """The copy of a service that may leave the agent: secret values masked."""
    return service.model_copy(update={
        "secrets": {k: SECRET_MASK for k in service.secrets},
        "webhook_secret": SECRET_MASK if service.webhook_secret else None,
    })


# ---- runs, stages, logs ---------------------------------------------------------

class StageInfo(BaseModel):
    id: int
    run_id: int
    name: str
    position: int
    status: StageStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    container_id: str | None = None
    error: str | None = None
    reused_from_run: int | None = Field(None, description="rerun: result copied from this run")


class RunInfo(BaseModel):
    id: int
    service_id: int
    service: str
    pipeline: str
    number: int
    trigger: Trigger
    kind: RunKind
    sha: str
    branch: str | None = None
    pr_number: int | None = None
    author: str | None = None
    message: str | None = None
    status: RunStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    rerun_of: int | None = None
    rerun_from_stage: str | None = None
    actor: str | None = None
    stages: list[StageInfo] = Field(default_factory=list)


class LogLine(BaseModel):
    id: str = Field(..., description="ULID: sortable, a resumable cursor")
    run_id: int
    stage: str
    stream: LogStream
    text: str
    ts: datetime


class LogPage(BaseModel):
    lines: list[LogLine]
    next_cursor: str | None = None
    total: int | None = None


class Page(BaseModel):
    items: list[Any]
    next_cursor: str | None = None


# ---- deploys, approvals -----------------------------------------------------------

class Deployment(BaseModel):
    id: int
    service_id: int
    service: str
    environment: str
    sha: str
    image: str
    run_id: int | None = None
    status: DeploymentStatus
    kind: DeploymentKind
    actor: str | None = None
    message: str | None = None
    author: str | None = None
    committed_at: datetime | None = None
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    image_exists: bool | None = None
    current: bool = False


class CommitSummary(BaseModel):
    sha: str
    author: str | None = None
    message: str | None = None
    committed_at: datetime | None = None


class Approval(BaseModel):
    id: int
    run_id: int
    service: str
    status: ApprovalStatus
    candidate_sha: str
    production_sha: str | None = None
    commits: list[CommitSummary] = Field(default_factory=list)
    staging_health: str | None = None
    requested_at: datetime
    expires_at: datetime | None = None
    actor: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None


class DoraFigures(BaseModel):
    service: str | None = None
    window_days: int
    deployments: int
    deployment_frequency_per_day: float
    lead_time_median_s: float | None = None
    change_failure_rate: float | None = None
    time_to_restore_median_s: float | None = None


# ---- auth, audit, webhooks ---------------------------------------------------------

class ApiToken(BaseModel):
    id: int
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None = None
    revoked: bool = False


class AuditEvent(BaseModel):
    id: int
    ts: datetime
    actor: str
    action: str
    target: str
    detail: str | None = None


class WebhookDelivery(BaseModel):
    delivery_id: str
    event: str
    received_at: datetime
    service_id: int | None = None
    run_id: int | None = None
    outcome: str


# ---- live events (/api/v1/ws/events) -------------------------------------------------

EventType = Literal["run", "stage", "approval", "deployment", "service", "pipeline", "lagged"]


class Event(BaseModel):
    type: EventType
    ts: datetime
    run: RunInfo | None = None
    stage: StageInfo | None = None
    approval: Approval | None = None
    deployment: Deployment | None = None
    service: Service | None = None
    data: dict[str, Any] = Field(default_factory=dict)


# ---- API request bodies ------------------------------------------------------------------

class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    branch: str | None = None
    sha: str | None = None
    kind: RunKind = RunKind.full

    @field_validator("sha")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not SHA.match(v):
            raise ValueError("must be 7–40 lowercase hex characters")
        return v

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str | None) -> str | None:
        if v is not None and not BRANCH.match(v):
            raise ValueError("not a valid branch name")
        return v


class RerunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_stage: str | None = Field(None, description="None = the whole run again")

    @field_validator("from_stage")
    @classmethod
    def _stage(cls, v: str | None) -> str | None:
        if v is not None and v not in DEFAULT_STAGES:
            raise ValueError(f"unknown stage; stages are {list(DEFAULT_STAGES)}")
        return v


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(None, max_length=2000)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str
    environment: Literal["staging", "production"]
    sha: str

    @field_validator("sha")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not SHA.match(v):
            raise ValueError("must be 7–40 lowercase hex characters")
        return v


class TokenCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100)
    role: Role = Role.viewer


class TokenCreated(BaseModel):
    token: str = Field(..., description="shown once; only its hash is stored")
    info: ApiToken


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


def image_for(service: ServiceConfig, sha: str) -> str:
    """The image a run of `service` at `sha` builds and deploys: tagged with the full sha."""
    repository = service.image_repository or f"seamless/{service.name}"
    return f"{repository}:{sha}"


def pushes_to_registry(service: ServiceConfig) -> bool:
    """True when the image repository names a registry host (e.g. 127.0.0.1:5000/x)."""
    repo = service.image_repository or ""
    first = repo.split("/", 1)[0] if "/" in repo else ""
    return bool(first) and ("." in first or ":" in first or first == "localhost")


# ---- dashboard rows (GET /api/v1/overview) ---------------------------------------------

class ServiceOverview(BaseModel):
    """One dashboard row: a service with its last run, live deployments and pending approval."""

    pipeline: str
    service: Service
    last_run: RunInfo | None = None
    staging: Deployment | None = None
    production: Deployment | None = None
    pending_approval: Approval | None = None


class RunPage(BaseModel):
    """GET /api/v1/runs: newest first; pass `next_cursor` back as `cursor` for the next page."""

    items: list[RunInfo]
    next_cursor: str | None = None


class WhoAmI(BaseModel):
    name: str
    role: Role
