"""Stage names, statuses and the patterns names must match."""

from __future__ import annotations

import re
from enum import StrEnum

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
# A line that reads like an error holds one of these (ASCII case-insensitive): the agent's
# first error of a stage (the run page's mark, the TUI's `e`).
ERROR_WORDS: tuple[str, ...] = ("error", "fail", "traceback", "panic:")

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Git ref names: conservative subset, so a branch name can never be a shell or path trick.
BRANCH = re.compile(r"^(?!.*\.\.)(?![/-])(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![/.])$")
SHA = re.compile(r"^[0-9a-f]{7,40}$")
# Docker image references (distribution's grammar): [host[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = (r"(?:localhost(?::[0-9]{1,5})?|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+(?::[0-9]{1,5})?"
         r"|[a-zA-Z0-9-]+:[0-9]{1,5}|\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?)")
IMAGE_REPOSITORY = re.compile(rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT}){{0,10}}$")
IMAGE_REF = re.compile(IMAGE_REPOSITORY.pattern[:-1]
                       + r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
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
    timed_out = "timed_out"  # killed at its timeout: a failure, told apart from a red exit

    @property
    def finished(self) -> bool:
        return self in {StageStatus.success, StageStatus.failed, StageStatus.skipped,
                        StageStatus.cancelled, StageStatus.timed_out}


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
    interrupted = "interrupted"  # the agent stopped mid-deploy; it never took all traffic


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
