"""What was deployed, read for people: the rollback picker's history (with whether each
image still exists), the approval of a production deploy (commits since production,
staging's health) and the DORA figures. Part of the Deployer (agent/deploy/deployer.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from agent.deploy.base import DeployerCore
from agent.deploy.dora import compute_dora
from store.configs import NotFound
from store.db import now
from store.models import (
    Approval,
    Deployment,
    DeploymentStatus,
    DoraFigures,
    Event,
    RunInfo,
    Service,
)
from store.store import Store

log = logging.getLogger(__name__)


class DeployHistory:
    def history(self: DeployerCore, service: Service, environment: str | None = None,
                limit: int = 100) -> list[Deployment]:
        """Deployments newest first, with `image_exists` filled in (the rollback picker)."""
        pipeline = self.store.get_pipeline(service.pipeline)
        deployments = self.store.list_deployments(service_id=service.id,
                                                  environment=environment, limit=limit)
        seen: dict[tuple[str, str], bool] = {}
        out = []
        for d in deployments:
            key = (d.environment, d.image)
            if key not in seen:
                target = self.target_for(service, pipeline, d.environment)
                try:
                    seen[key] = bool(target and target.image_exists(d.image))
                except Exception:
                    log.warning("image_exists(%s) failed", d.image, exc_info=True)
                    seen[key] = False
            out.append(d.model_copy(update={"image_exists": seen[key]}))
        return out

    def build_approval(self: DeployerCore, run: RunInfo, service: Service) -> Approval:
        """The pending approval for `run` (created once; an existing one is returned)."""
        try:
            return self.store.get_approval(run.id)
        except NotFound:
            pass
        prod = self.store.current_deployment(service.id, "production")
        try:
            commits = (self.workspaces.commits_between(service, prod.sha if prod else None,
                                                       run.sha) if self.workspaces else [])
        except Exception:
            log.warning("commits_between failed for %s", service.name, exc_info=True)
            commits = []
        pipeline = self.store.get_pipeline(service.pipeline)
        expires = (now() + timedelta(seconds=pipeline.approval_expiry_s)
                   if pipeline.approval_expiry_s else None)
        approval = self.store.create_approval(
            run_id=run.id, candidate_sha=run.sha, production_sha=prod.sha if prod else None,
            commits=commits, staging_health=_staging_health(self.store, run, service),
            expires_at=expires)
        self.bus.publish_event(Event(type="approval", ts=now(), approval=approval, run=run))
        return approval

    def dora(self: DeployerCore, service_id: int | None, days: int, pipeline: str | None = None
             ) -> DoraFigures:
        """Per service, per pipeline, or (both None) across every service."""
        deployments = self.store.list_deployments(service_id=service_id,
                                                  environment="production", limit=100_000)
        if pipeline is not None:
            members = {s.id for s in self.store.list_services(pipeline)}
            deployments = [d for d in deployments if d.service_id in members]
        name = self.store.get_service_by_id(service_id).name if service_id is not None else None
        return compute_dora(deployments, days=days, now=now(), service=name)


def _staging_health(store: Store, run: RunInfo, service: Service) -> str | None:
    """The staging deployment of `run`, as the approval shows it."""
    for d in store.list_deployments(service_id=service.id, environment="staging",
                                         limit=50):
        if d.run_id == run.id:
            if d.status is DeploymentStatus.failed:
                return f"failed: {d.error}"
            state = store.deployment_target_state(d.id) or {}
            return f"{d.status.value}: {state.get('health') or 'no health detail'}"
    return None
