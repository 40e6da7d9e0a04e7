"""The Deployer: picks a service's target per environment, records every deployment,
serializes deploys per (service, environment), pins after rollbacks, steers canaries.

Every deployment row is written before the target acts and finished after it; an
`Event(type="deployment")` follows each commit. A rollback is a deploy of an image
recorded earlier (no rebuild), run in a background thread behind the same lock as
deploys, so it waits for a deploy of the same service and environment in progress.
History, approvals and DORA figures: agent/deploy/history.py; what follows a restart of
the agent or the engine: agent/deploy/restarts.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.bus import Bus
from agent.deploy.base import CommitHistory, DeployError, DeployRequest, DeployTarget
from agent.deploy.canary import CanaryControl
from agent.deploy.docker_host import DockerHostTarget
from agent.deploy.history import DeployHistory
from agent.deploy.restarts import DeployerRestarts
from agent.logs import StageLog
from agent.logs.logger import LoggingStageLog
from agent.stage_result import StageResult
from store.configs import NotFound
from store.db import now
from store.models import (
    ApprovalStatus,
    CanaryStatus,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    DeployTargetConfig,
    DockerTargetConfig,
    EcsTargetConfig,
    Event,
    Pipeline,
    RunInfo,
    Service,
    redact_service,
)
from store.store import Store

log = logging.getLogger(__name__)



# Deployments whose image never served all traffic: no rollback goes back to them.
_NEVER_LIVE = (DeploymentStatus.failed, DeploymentStatus.in_progress,
               DeploymentStatus.interrupted)


class RollbackError(ValueError):
    """A rollback that cannot start (unknown sha, image gone, no target): a clear refusal."""


class Deployer(DeployHistory, DeployerRestarts):
    def __init__(self, store: Store, bus: Bus, workspaces: CommitHistory | None,
                 docker_client_factory: Callable[[], Any], fronts_dir: Path,
                 make_target: Callable[[DeployTargetConfig], DeployTarget | None] | None = None
                 ) -> None:
        """`fronts_dir`: the fronts' configs and admin sockets. `make_target`: builds the
        target of a configured environment instead of the built-in Docker host and ECS
        targets (the test harness's fake target)."""
        self.store, self.bus, self.workspaces = store, bus, workspaces
        self._docker_client_factory = docker_client_factory
        self._make_target = make_target
        self.fronts_dir = fronts_dir
        self.engine_wait_s = 120.0  # how long a Docker deploy waits for a missing engine
        self._canaries: dict[tuple[int, str], CanaryControl] = {}
        self._locks: dict[tuple[int, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._targets: dict[str, DeployTarget] = {}
        self._threads: list[threading.Thread] = []
        # Environments whose recorded active build start-up could not serve, until a
        # deploy there succeeds: a reason for /healthz (see `health`).
        self.unserved: dict[tuple[str, str], str] = {}

    # -- targets ---------------------------------------------------------------------------
    def target_for(self, service: Service, pipeline: Pipeline,
                   environment: str) -> DeployTarget | None:
        """The service's override for `environment`, else the pipeline's; None = none set."""
        config = getattr(service, environment) or getattr(pipeline, environment)
        key = config.model_dump_json()
        if key not in self._targets:
            made = self._make_target(config) if self._make_target else None
            if made is not None:
                self._targets[key] = made
            elif isinstance(config, DockerTargetConfig):
                docker_target = DockerHostTarget(config, self._docker_client_factory,
                                                 self.fronts_dir,
                                                 instance=self.store.instance_id())
                docker_target.engine_wait_s = self.engine_wait_s
                self._targets[key] = docker_target
            elif isinstance(config, EcsTargetConfig):
                from agent.deploy.ecs import EcsTarget  # boto3 is loaded only when used

                self._targets[key] = EcsTarget(config, self._docker_client_factory)
            else:
                return None
        return self._targets[key]

    def lock(self, service: Service, environment: str) -> threading.Lock:
        """Held by whatever creates or removes colours of (service, environment): a deploy,
        a rollback, the start-up and engine-return reconciles, a teardown. None of them
        ever removes a colour another one is creating."""
        with self._locks_guard:
            return self._locks.setdefault((service.id, environment), threading.Lock())

    def _publish(self, deployment: Deployment) -> None:
        self.bus.publish_event(Event(type="deployment", ts=now(), deployment=deployment))

    # -- deploy stage (called by the engine) ---------------------------------------------
    def deploy_stage(self, run: RunInfo, service: Service, pipeline: Pipeline,
                     environment: str, image: str, log: StageLog) -> StageResult:
        """Blocking. Success, failure with a reason, or `StageResult.skip` when pinned."""
        target = self.target_for(service, pipeline, environment)
        if target is None:
            reason = f"no deploy target configured for {environment}"
            log.system(reason)
            return StageResult(exit_code=1, error=reason)
        pinned = self.is_pinned(service, environment)
        if pinned and pinned != run.sha:
            if environment == "production" and self._approved(run.id):
                log.system(f"{environment} was pinned to {pinned[:12]}; this approved deploy"
                           " clears the pin")
                self.unpin(service, environment)
            else:
                reason = (f"{environment} is pinned to {pinned[:12]} by a rollback: not"
                          f" deploying {run.sha[:12]} (unpin it or approve a newer deploy)")
                log.system(reason)
                return StageResult.skip(reason)
        committed_at = self._committed_at(service, run.sha)
        with self.lock(service, environment):
            dep = self.store.create_deployment(
                service_id=service.id, environment=environment, sha=run.sha, image=image,
                kind=DeploymentKind.deploy, run_id=run.id, actor=run.actor or "auto",
                message=run.message, author=run.author, committed_at=committed_at)
            self._publish(dep)
            dep = self._execute(dep, target, service, pipeline, log)
        if dep.status is DeploymentStatus.active:
            return StageResult(exit_code=0)
        return StageResult(exit_code=1, error=dep.error)

    def _execute(self, dep: Deployment, target: DeployTarget, service: Service,
                 pipeline: Pipeline, log: StageLog) -> Deployment:
        """Run the target (caller holds the lock) and finish + publish the deployment row."""
        current = self.store.current_deployment(service.id, dep.environment)
        previous = self.store.deployment_target_state(current.id) if current else None
        control = CanaryControl()
        request = DeployRequest(service=service, pipeline=pipeline, environment=dep.environment,
                                image=dep.image, sha=dep.sha, previous_state=previous,
                                control=control,
                                record=lambda m: self.store.add_canary_measurement(dep.id, m),
                                rollback=dep.kind is DeploymentKind.rollback)
        log.system(f"deploying {dep.image} to {dep.environment} ({target.kind})")
        if getattr(getattr(target, "config", None), "strategy", None) == "canary" and (
                not request.rollback):
            self._canaries[(service.id, dep.environment)] = control
        try:
            outcome = target.deploy(request, log)
        except DeployError as exc:
            done = self.store.finish_deployment(dep.id, DeploymentStatus.failed, error=str(exc))
        except Exception as exc:  # a target bug must still finish the row, never leave it open
            log.system(f"deploy crashed: {type(exc).__name__}: {exc}")
            done = self.store.finish_deployment(
                dep.id, DeploymentStatus.failed, error=f"{type(exc).__name__}: {exc}")
        else:
            state = {**outcome.state, "health": outcome.health_detail,
                     "address": outcome.address}
            done = self.store.finish_deployment(dep.id, DeploymentStatus.active,
                                                target_state=state)
            self.unserved.pop((service.name, dep.environment), None)
            log.system(f"{dep.environment} now serves {dep.sha[:12]}"
                       + (f" at {outcome.address}" if outcome.address else ""))
        finally:
            self._canaries.pop((service.id, dep.environment), None)
        self._publish(done)
        return done

    def canary_status(self, service: Service, environment: str) -> CanaryStatus:
        deployments = self.store.list_deployments(service_id=service.id,
                                                  environment=environment, limit=1)
        dep = deployments[0] if deployments else None
        running = (service.id, environment) in self._canaries and dep is not None and (
            dep.status is DeploymentStatus.in_progress)
        target = self.target_for(service, self.store.get_pipeline(service.pipeline),
                                 environment)
        front_weights = getattr(target, "front_weights", None)  # Docker front, ECS listener
        weights = front_weights(service, environment) if front_weights else {}
        return CanaryStatus(
            service=service.name, environment=environment, running=running, deployment=dep,
            weights=weights,
            measurements=self.store.list_canary_measurements(dep.id) if dep else [])

    def steer_canary(self, service: Service, environment: str, action: str,
                     actor: str) -> Deployment:
        """Promote now or abort the deploy in progress; returns that deployment.

        Raises RollbackError when no canary is running there."""
        control = self._canaries.get((service.id, environment))
        current = next((d for d in self.store.list_deployments(
            service_id=service.id, environment=environment, limit=5)
            if d.status is DeploymentStatus.in_progress), None)
        if control is None or current is None:
            raise RollbackError(f"no canary is running in {environment} of {service.name}")
        control.request(action, actor)
        return current

    def _approved(self, run_id: int) -> bool:
        try:
            return self.store.get_approval(run_id).status is ApprovalStatus.approved
        except NotFound:
            return False

    def _committed_at(self, service: Service, sha: str) -> Any:
        try:
            info = self.workspaces.commit_info(service, sha) if self.workspaces else None
        except Exception:  # the mirror may be gone; the time only feeds DORA lead time
            log.warning("no commit info for %s@%s", service.name, sha, exc_info=True)
            return None
        return info.committed_at if info else None

    # -- pins -------------------------------------------------------------------------------
    def is_pinned(self, service: Service, environment: str) -> str | None:
        return self.store.get_service_by_id(service.id).pinned.get(environment)

    def _set_pin(self, service: Service, environment: str, sha: str | None) -> Service:
        self.store.set_pin(service.id, environment, sha)
        fresh = self.store.get_service_by_id(service.id)
        self.bus.publish_event(Event(type="service", ts=now(), service=redact_service(fresh)))
        return fresh

    def unpin(self, service: Service, environment: str) -> Service:
        return self._set_pin(service, environment, None)

    # -- rollback ---------------------------------------------------------------------------
    def rollback(self, service: Service, environment: str, sha: str, actor: str,
                 log: StageLog | None = None) -> Deployment:
        """Start a deploy of the image of an earlier deployment; returns the in_progress row.

        Raises RollbackError when nothing can be rolled back to."""
        source = next((d for d in self.store.list_deployments(
            service_id=service.id, environment=environment, limit=1000)
            if d.sha.startswith(sha) and d.status not in _NEVER_LIVE), None)
        if source is None:
            raise RollbackError(f"{sha} was never live in {environment} of {service.name}")
        pipeline = self.store.get_pipeline(service.pipeline)
        target = self.target_for(service, pipeline, environment)
        if target is None:
            raise RollbackError(f"no deploy target configured for {environment}")
        if not target.image_exists(source.image):
            raise RollbackError(f"image {source.image} no longer exists: cannot roll back")
        self._set_pin(service, environment, source.sha)
        dep = self.store.create_deployment(
            service_id=service.id, environment=environment, sha=source.sha, image=source.image,
            kind=DeploymentKind.rollback, actor=actor, message=source.message,
            author=source.author, committed_at=source.committed_at)
        self._publish(dep)
        stage_log = log or LoggingStageLog(f"rollback {service.name}/{environment}")
        thread = threading.Thread(target=self._rollback_worker, name=f"rollback-{dep.id}",
                                  args=(dep, target, service, pipeline, stage_log), daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return dep

    def _rollback_worker(self, dep: Deployment, target: DeployTarget, service: Service,
                         pipeline: Pipeline, log: StageLog) -> None:
        with self.lock(service, dep.environment):
            replaced = self.store.current_deployment(service.id, dep.environment)
            done = self._execute(dep, target, service, pipeline, log)
            if done.status is DeploymentStatus.active and replaced and replaced.sha != dep.sha:
                self._publish(self.store.mark_rolled_back(replaced.id))
        log.flush()

    def wait_idle(self, timeout_s: float = 120.0) -> None:
        """Wait for background rollbacks (tests, shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout_s)

    def close(self) -> None:
        """The fronts stay: they serve production while the agent is away."""
        self.wait_idle(30)
