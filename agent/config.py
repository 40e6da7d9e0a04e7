"""Agent settings: defaults < TOML config file < SEAMLESS_* environment < CLI flags."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_PORT = 8787
# A system install (`init --system`, `install-service`): outside every home directory, so
# the unit's ProtectHome=true holds.
SYSTEM_CONFIG_PATH = Path("/etc/seamless/agent.toml")
SYSTEM_DATA_DIR = Path("/var/lib/seamless")
# Running stages on the host, unisolated, is a choice an admin makes for one pipeline,
# never a host-wide switch (#21.2).
LOCAL_IS_PER_PIPELINE = (
    "executor = \"local\" is not an agent setting: the local executor runs stages on this "
    "host, unisolated, so an admin chooses it per pipeline. Set executor to \"auto\" or "
    "\"docker\" in the agent config, and `executor = \"local\"` on the pipeline that needs "
    "it (its TOML for `seamless-agent pipeline add --file`, or PUT /api/v1/pipelines/NAME)")


def default_config_path(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """Where `seamless-agent init` writes and `serve` reads: $SEAMLESS_CONFIG, else
    ~/.config/seamless/agent.toml."""
    env = os.environ if environ is None else environ
    value = env.get("SEAMLESS_CONFIG")
    return Path(value) if value else Path.home() / ".config" / "seamless" / "agent.toml"


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(Path.home() / ".seamless", description="SQLite, mirrors, workspaces")
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    public_url: str | None = Field(None, description="link target for GitHub commit statuses")
    max_parallel_runs: int = Field(4, ge=1, le=256, description="runs across all services")
    log_retention_hours: float = Field(48.0, gt=0)
    workspace_retention_hours: float = Field(24.0, gt=0)
    executor: str = Field("auto", description="auto | docker: stages run in containers "
                          "only (the agent starts without an engine and stages wait for it). "
                          "Running stages on this host is a pipeline's setting "
                          "(`executor: local`), made by an admin")
    docker_wait_s: float = Field(120.0, ge=0, le=86_400, description="how long a Docker "
                                 "stage waits for an unreachable engine before failing")
    docker_queue_wait_s: float = Field(600.0, ge=0, le=86_400, description="how long a "
                                       "run that needs the Docker engine stays queued while "
                                       "the engine is away, before it fails")
    docker_host: str | None = None
    min_free_mb: int = Field(256, ge=0, description="free space the data dir keeps: below "
                             "it new runs are refused (507) and /healthz says why; 0 = none")
    cache_max_mb: int = Field(2048, ge=1, description="dependency cache per service; the "
                                                      "least recently used files go first")
    installed_deps_keep: int = Field(3, ge=0, description="per service, the installed "
                                     "dependencies kept as images for the next runs with the "
                                     "same requirement files (least recently used go); 0 = off")
    github_token: str | None = None
    github_api_url: str = "https://api.github.com"
    aws_region: str | None = None
    aws_profile: str | None = None
    poll_enabled: bool = True
    log_level: str = "info"
    key_file: Path | None = Field(None, description="encryption key of secrets at rest; "
                                  "default <data_dir>/secrets.key or a systemd credential")
    link_key_file: Path | None = Field(None, description="key that signs run-page links "
                                       "(default <data_dir>/link.key)")
    link_ttl_days: float = Field(30.0, gt=0, le=3650, description="how long a run-page "
                                 "link (commit status 'Details') opens its page")

    @property
    def link_key_path(self) -> Path:
        return self.link_key_file or self.data_dir / "link.key"

    @field_validator("executor")
    @classmethod
    def _containers_only(cls, v: str) -> str:
        if v == "local":
            raise ValueError(LOCAL_IS_PER_PIPELINE)
        if v not in ("auto", "docker"):
            raise ValueError(f"executor must be 'auto' or 'docker', not {v!r}")
        return v

    @property
    def key_path(self) -> Path:
        """The key that encrypts secrets at rest: `key_file`, else a systemd credential
        named `seamless-key` (LoadCredential=), else `<data_dir>/secrets.key` (0600)."""
        if self.key_file is not None:
            return self.key_file
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if credentials and (Path(credentials) / "seamless-key").is_file():
            return Path(credentials) / "seamless-key"
        return self.data_dir / "secrets.key"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "seamless.db"

    @property
    def mirrors_dir(self) -> Path:
        return self.data_dir / "mirrors"

    @property
    def workspaces_dir(self) -> Path:
        return self.data_dir / "workspaces"

    @property
    def caches_dir(self) -> Path:
        return self.data_dir / "caches"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> AgentConfig:
    """Merge the layers; unknown keys in the file are an error, not silently ignored."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if path is None and default_config_path(env).is_file():
        path = default_config_path(env)
    if path is not None:
        with open(path, "rb") as fh:
            values.update(tomllib.load(fh))
    for name in AgentConfig.model_fields:
        key = "SEAMLESS_" + name.upper()
        if key in env:
            values[name] = env[key]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return AgentConfig(**values)
