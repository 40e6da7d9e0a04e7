"""What happened: runs, stages, log lines, deployments, approvals, tokens, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from store.models.names import (
    ApprovalStatus,
    DeploymentKind,
    DeploymentStatus,
    LogStream,
    Role,
    RunKind,
    RunStatus,
    StageStatus,
    Trigger,
)

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
    executor: str | None = Field(None, description="what ran it: docker, ecs, or local (on "
                                 "the agent's host, not isolated: set by an admin)")


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
    # Why a queued run has not started yet (e.g. "waiting for the Docker engine …")
    waiting: str | None = None
    waiting_since: datetime | None = None
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


class CanaryMeasurement(BaseModel):
    """One colour's figures in one canary window, and the verdict the window got."""

    deployment_id: int | None = None
    step: int  # 1-based
    weight: int  # percent of requests on the canary during the window
    role: str  # canary | stable
    colour: str
    window_start: datetime
    window_end: datetime
    requests: int
    errors: int  # 5xx + connection failures + response failures
    p50_ms: float | None = None
    p95_ms: float | None = None
    verdict: str  # pass | fail | inconclusive
    rule: str


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


class ChangeDecision(BaseModel):
    """Why a service of a (shared) repository ran or not for one push, PR head, poll or
    `trigger --all`: the changed paths that matched its globs, or none."""

    id: int
    batch: str = Field(..., description="the services decided together (deploy order)")
    service_id: int
    service: str
    trigger: Trigger
    sha: str
    branch: str | None = None
    base_sha: str | None = Field(None, description="compared against (None: nothing to "
                                                     "compare: it ran)")
    base_kind: Literal["last_success", "merge_base", "none", "forced"]
    ran: bool
    reason: str
    matched: list[str] = Field(default_factory=list,
                               description="the first changed paths that matched")
    matched_count: int = 0
    changed_count: int | None = None
    run_id: int | None = None
    created_at: datetime
