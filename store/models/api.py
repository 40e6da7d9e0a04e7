"""Live events and the bodies of API requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from store.models.config import Service
from store.models.names import BRANCH, DEFAULT_STAGES, SHA, Role, RunKind
from store.models.records import (
    ApiToken,
    Approval,
    CanaryMeasurement,
    Deployment,
    LogLine,
    RunInfo,
    StageInfo,
)

# ---- live events (/api/v1/ws/events) -------------------------------------------------

EventType = Literal["run", "stage", "approval", "deployment", "service", "pipeline", "lagged",
                    "decision"]


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

class RunPageLink(BaseModel):
    """A signed link to a run's page for browsers: opens that run (page, logs) only."""
    url: str
    expires_at: datetime


class CacheInfo(BaseModel):
    """A service's dependency cache (mounted at /cache in its stages)."""

    service: str
    bytes: int
    max_bytes: int
    freed_bytes: int | None = None  # after a clear


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


class CanaryStatus(BaseModel):
    """A service environment's canary: the deployment, the front's weights, every window."""

    service: str
    environment: str
    running: bool  # a canary deploy is in progress and can be promoted or aborted
    deployment: Deployment | None = None  # the one in progress, else the latest
    weights: dict[str, int] = Field(default_factory=dict)  # per colour, from the front
    measurements: list[CanaryMeasurement] = Field(default_factory=list)


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


class DockerState(BaseModel):
    state: Literal["up", "down", "not used"]
    detail: str | None = Field(None, description="engine version, or why it does not answer")


class AgentInfo(BaseModel):
    """GET /api/v1/info: what a header line shows about the agent."""

    version: str
    instance: str
    running: int
    queued: int
    awaiting_approval: int
    docker: DockerState


class LogMatch(BaseModel):
    id: str = Field(..., description="ULID of the matching line")
    number: int = Field(..., description="1-based position of the line in the stage's log")
    index: int = Field(..., description="1-based position of the match among all matches")
    text: str


class LogContext(BaseModel):
    """With `context=N`: the lines around the line a reader is shown, so a viewer can
    show it with no second request."""

    lines: list[LogLine] = Field(..., description="up to N lines before the line, the line"
                                 " itself, and up to N after it, in order")
    more_before: bool = Field(..., description="older lines than these exist")
    more_after: bool = Field(..., description="newer lines than these exist")


class FirstErrorAnswer(BaseModel):
    """GET /api/v1/runs/{id}/logs/first-error: where a reader of a failed stage starts."""

    line: LogMatch | None = Field(None, description="the stage's first line that reads like an"
                                  " error (error, fail, traceback, panic:); none in its first"
                                  " 200,000 lines: null")
    context: LogContext | None = Field(None, description="with `context=N`: the lines around"
                                       " `line`")


class LogSearchPage(BaseModel):
    """GET /api/v1/runs/{id}/logs/search: matches in id order after the cursor."""

    matches: list[LogMatch]
    total: int | None = Field(None, description="matches in the whole stage log (first page)")
    next_cursor: str | None = Field(None, description="pass as `after` for the next page")
    context: LogContext | None = Field(None, description="with `context=N`: the lines around"
                                       " the match a reader is shown first: the page's first,"
                                       " or with `before` alone its last")
