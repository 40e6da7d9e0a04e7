"""Which bus events are worth a notification, and what the message says."""

from __future__ import annotations

from dataclasses import dataclass

from store.models import (
    ApprovalStatus,
    DeploymentKind,
    DeploymentStatus,
    Event,
    RunStatus,
)


@dataclass(frozen=True)
class Notification:
    pipeline: str | None  # None: look it up from the service
    service: str
    subject: str  # short (SNS subjects are limited to 100 characters)
    text: str


def notification_for(event: Event) -> Notification | None:
    if event.type == "run" and event.run is not None:
        run = event.run
        where = f"{run.service} run #{run.number} ({run.sha[:7]})"
        if run.status is RunStatus.success:
            return Notification(run.pipeline, run.service, f"{run.service}: run succeeded",
                                f"✅ {where} succeeded")
        if run.status is RunStatus.failed:
            reason = f": {run.error}" if run.error else ""
            return Notification(run.pipeline, run.service, f"{run.service}: run failed",
                                f"❌ {where} failed{reason}")
    if event.type == "approval" and event.approval is not None:
        a = event.approval
        if a.status is ApprovalStatus.pending:
            current = a.production_sha[:7] if a.production_sha else "nothing"
            return Notification(
                event.run.pipeline if event.run else None, a.service,
                f"{a.service}: awaiting approval",
                f"⏸ {a.service} {a.candidate_sha[:7]} awaits approval for production"
                f" (production runs {current}; {len(a.commits)} new commit(s);"
                f" staging: {a.staging_health or 'unknown'})")
    if event.type == "deployment" and event.deployment is not None:
        d = event.deployment
        where = f"{d.service} {d.environment}"
        if d.status is DeploymentStatus.active and d.kind is DeploymentKind.rollback:
            return Notification(None, d.service, f"{where}: rolled back",
                                f"⏪ {where} rolled back to {d.sha[:7]} by {d.actor or '?'}")
        if d.status is DeploymentStatus.active:
            return Notification(None, d.service, f"{where}: deployed",
                                f"🚀 {where} now runs {d.sha[:7]}"
                                + (f" ({d.message})" if d.message else ""))
        if d.status in (DeploymentStatus.failed, DeploymentStatus.interrupted):
            return Notification(None, d.service, f"{where}: deploy failed",
                                f"❌ {d.kind.value} of {d.sha[:7]} to {where} failed: {d.error}")
    return None
