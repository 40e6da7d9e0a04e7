"""Pipelines and services as configured: no YAML, forms and API bodies.

Validation gives a precise message per field; an invalid config is never stored."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from store.models.names import (
    BRANCH,
    DEFAULT_STAGES,
    ENV_NAME,
    IMAGE_REF,
    IMAGE_REPOSITORY,
    SLUG,
)
from store.models.targets import (
    ConfigModel,
    DeployTargetConfig,
    DockerTargetConfig,
    EcsExecutorConfig,
    HealthCheck,
)
from store.models.tests import TestsConfig

# ---- configuration: pipelines and services (no YAML: forms and API bodies) -----

def _image_ref(value: str | None) -> str | None:
    """An image name reaches the engine as given: only Docker's reference grammar passes."""
    if value is not None and (len(value) > 255 or not IMAGE_REF.match(value)):
        raise ValueError("not an image reference ([registry/]name[:tag][@sha256:digest]: "
                         "lowercase letters, digits, '.', '_', '-', '/')")
    return value

ExecutorName = Literal["docker", "local", "ecs"]

# What a compose service may be allowed past its project, by an admin (compose_policy).
ComposeOptIn = Literal["volumes", "docker_socket", "privileged", "network_mode", "pid", "ipc",
                       "uts", "userns_mode", "cgroup", "cap_add", "devices",
                       "device_cgroup_rules", "external_links", "cgroup_parent",
                       "security_opt", "volumes_from", "networks"]


class PipelineConfig(ConfigModel):
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
    retry_on_engine_restart: bool = Field(False, description="a stage whose container died "
                                          "with a Docker engine restart runs again, once")
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

    _stage_image = field_validator("stage_image")(_image_ref)

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


class Triggers(ConfigModel):
    push: bool = True
    pull_request: bool = True
    poll_interval_s: int | None = Field(None, ge=10, le=86_400,
                                        description="poll the remote every N s; None = off")
    poll_pull_requests: bool = False


class ServiceConfig(ConfigModel):
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
    integration_test_service: str | None = Field(
        None, description="run Integration Test as this compose service (`compose run`; "
                          "integration_test_command, if set, is its command)",
        examples=["e2e"])
    env_files: dict[str, str] = Field(
        default_factory=dict, description="files made in the checkout before the stages run:"
                                          " target -> source, e.g. {'.env': '.env.example'}")
    image_repository: str | None = Field(
        None, description="registry/repository the sha-tagged image is pushed to",
        examples=["127.0.0.1:5000/payments"])
    container_port: int = Field(8080, ge=1, le=65535)
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    auto_deploy: bool | None = Field(None, description="None = the pipeline's default")
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict,
                                    description="values are masked in logs and API responses")
    secrets_as: Literal["env", "files", "both"] = Field(
        "env", description="how stages get the secrets: env variables (visible to `docker "
        "inspect`), files /run/secrets/<NAME> on a tmpfs (0400, the stage user's), or both")
    stage_timeout_s: int | None = Field(None, ge=1, le=86_400)
    mount_docker_socket: bool = Field(False, description="opt-in: stages get the Docker CLI socket")
    compose_opt_ins: dict[str, list[ComposeOptIn]] = Field(
        default_factory=dict, description="admin opt-in: compose service -> keys it may use "
        "past its project (host mounts, privileges, host namespaces), e.g. "
        '{"app": ["volumes"]}; everything else in the compose file is refused')
    webhook_secret: str | None = Field(None, description="GitHub webhook HMAC secret")
    staging: DeployTargetConfig | None = None
    production: DeployTargetConfig | None = None
    # Several services may share one repository (a monorepo): each runs only when its
    # own paths, or the shared paths it depends on, changed since its last good run.
    root: str = Field(".", description="the service's folder in the repository: dockerfile, "
                      "build_context, compose_file, env_files and the commands are relative "
                      "to it", examples=["services/api"])
    paths: list[str] = Field(["**"], min_length=1, max_length=100, description=(
        "globs of the repository paths that are this service's own ('**' crosses folders)"),
        examples=[["services/api/**"]])
    depends_on_paths: list[str] = Field(
        default_factory=list, max_length=100,
        description="globs of shared paths a change of which also runs this service",
        examples=[["libs/common/**"]])
    depends_on_services: list[str] = Field(
        default_factory=list, max_length=50,
        description="services of the same repository this one deploys after (per "
                    "environment, within one push)", examples=[["catalog"]])
    tests: TestsConfig = Field(default_factory=TestsConfig,
                               description="JUnit reports, flaky-test retries")

    @field_validator("name", "pipeline")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError("must be a lowercase slug: a-z, 0-9 and '-', at most 63 characters")
        return v

    _stage_image = field_validator("stage_image")(_image_ref)

    @field_validator("image_repository")
    @classmethod
    def _image_repository(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 200 or not IMAGE_REPOSITORY.match(v)):
            raise ValueError("not an image repository ([registry/]name, no tag: lowercase "
                             "letters, digits, '.', '_', '-', '/')")
        return v

    @field_validator("compose_opt_ins")
    @classmethod
    def _compose_services(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = [k for k in v if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$", k)]
        if bad:
            raise ValueError(f"not compose service names: {bad}")
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

    @field_validator("paths", "depends_on_paths")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for glob in v:
            parts = glob.split("/")
            if not glob or glob.startswith("/") or ".." in parts or "\0" in glob \
                    or len(glob) > 300:
                raise ValueError(f"{glob!r} is not a repository glob (relative, no '..', "
                                 "e.g. 'services/api/**')")
        return v

    @field_validator("depends_on_services")
    @classmethod
    def _service_names(cls, v: list[str]) -> list[str]:
        bad = [name for name in v if not SLUG.match(name)]
        if bad:
            raise ValueError(f"not service names: {bad}")
        return list(dict.fromkeys(v))

    @field_validator("dockerfile", "build_context", "compose_file", "root")
    @classmethod
    def _relative_path(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = v.replace("\\", "/").split("/")
        if v.startswith("/") or ".." in parts or "\0" in v:
            raise ValueError("must be a path inside the repository (relative, no '..')")
        return v

    @field_validator("env_files")
    @classmethod
    def _env_file_paths(cls, v: dict[str, str]) -> dict[str, str]:
        for path in [*v, *v.values()]:
            cls._relative_path(path)
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
        if self.compose_file and not (self.integration_test_command
                                      or self.integration_test_service):
            raise ValueError("compose_file is set but neither integration_test_command nor "
                             "integration_test_service is")
        if self.integration_test_service and not self.compose_file:
            raise ValueError("integration_test_service needs a compose_file")
        if self.name in self.depends_on_services:
            raise ValueError("depends_on_services: a service cannot depend on itself")
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


def config_fingerprint(service: ServiceConfig, pipeline: PipelineConfig) -> str:
    """What a run was made with, by content: a sha256 of the service's and its pipeline's
    settings (a save that changed nothing keeps it). Secret values stay out — only their
    names count — so the stored hash cannot be used to test guesses of a secret."""
    settings = {
        "service": service.model_dump(mode="json", include=set(ServiceConfig.model_fields),
                                      exclude={"webhook_secret"})
        | {"secrets": sorted(service.secrets)},
        "pipeline": pipeline.model_dump(mode="json", include=set(PipelineConfig.model_fields),
                                        exclude={"notify_slack_webhook_url"}),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def image_for(service: ServiceConfig, sha: str) -> str:
    """The image a run of `service` at `sha` builds and deploys: tagged with the full sha."""
    repository = service.image_repository or f"seamless/{service.name}"
    return f"{repository}:{sha}"


def pushes_to_registry(service: ServiceConfig) -> bool:
    """True when the image repository names a registry host (e.g. 127.0.0.1:5000/x)."""
    repo = service.image_repository or ""
    first = repo.split("/", 1)[0] if "/" in repo else ""
    return bool(first) and ("." in first or ":" in first or first == "localhost")
