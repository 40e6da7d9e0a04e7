"""After a restart — of the agent or of the Docker engine — every environment's records
and front tell the truth again (agent/deploy/reconcile.py does the work): at start, a deploy
stage the agent was stopped in gets the outcome reconciliation recorded, and /healthz says
while an environment does not serve its recorded build. Part of the Deployer
(agent/deploy/deployer.py)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.deploy.base import DeployerCore
from agent.deploy.docker_host import DockerHostTarget
from agent.deploy.reconcile import Reconciler, reconcile_all
from agent.logs import StageLog
from agent.stage_result import StageResult
from store.models import DeploymentStatus, Pipeline, RunInfo, Service

log = logging.getLogger(__name__)

RECONCILE_THREADS = 8  # environments put back at once when the engine returns


class DeployerRestarts:
    def reconcile_fronts(self: DeployerCore) -> dict[str, Any]:
        """At start: every environment's records and front tell the truth
        (agent/deploy/reconcile.py)."""
        figures = reconcile_all(self.store, self._publish, self.target_for, self.lock)
        self.unserved = dict(figures["unserved"])
        log.info("reconciled %s environments in %.2f s", figures["environments"],
                 figures["seconds"])
        return figures

    def health(self: DeployerCore) -> str | None:
        """A /healthz reason while an environment does not serve its recorded build."""
        return "; ".join(self.unserved.values()) or None

    def restart_outcome(self: DeployerCore, run: RunInfo, environment: str, stage: str,
                        log: StageLog) -> StageResult:
        """A deploy stage the agent was stopped in: its result is what start-up
        reconciliation recorded for the run's deployment."""
        dep = next((d for d in self.store.list_deployments(
            service_id=run.service_id, environment=environment, limit=20)
            if d.run_id == run.id), None)
        if dep is not None and dep.status is DeploymentStatus.active:
            log.system(f"the agent restarted during {stage}; the switch had finished:"
                       f" {environment} serves {dep.sha[:12]}")
            return StageResult(exit_code=0)
        if dep is not None and dep.error:
            reason = f"the agent restarted during {stage}: {dep.error}"
        else:
            reason = (f"the agent restarted during {stage}, before it deployed; the previous"
                      " version kept serving")
        log.system(reason)
        return StageResult(exit_code=None, error=reason + ". Rerun from this stage to deploy"
                           " again")

    def reconcile_after_engine_return(self: DeployerCore) -> bool:
        """The Docker engine answers again after an outage (a restart): every Docker
        environment serves the colour the store records as active — started if it did not
        come back (made again from its image if it is gone), all the weight on the front,
        other colours removed. Deployment records are not touched (a deploy of this agent
        is not interrupted by an engine restart: it fails or succeeds by itself), and an
        environment with a deploy in progress is left to it (it holds the lock and sets
        its front). Environments side by side: each waits on its own colour and front, and
        production is down until it is done. True when every environment is back."""
        reconciler = Reconciler(self.store, self._publish)
        work = []
        for service in self.store.list_services():
            pipeline = self.store.get_pipeline(service.pipeline)
            for env in ("staging", "production"):
                target = self.target_for(service, pipeline, env)
                if isinstance(target, DockerHostTarget):
                    work.append((target, service, pipeline, env))

        def one(target: DockerHostTarget, service: Service, pipeline: Pipeline,
                env: str) -> bool:
            lock = self.lock(service, env)
            if not lock.acquire(blocking=False):
                return True
            try:
                active = self.store.current_deployment(service.id, env) is not None
                return reconciler.serve_active(target, service, pipeline, env) or not active
            except Exception as exc:  # the engine may still be settling: try again
                log.warning("%s/%s after the engine's return: %s", service.name, env, exc)
                return False
            finally:
                lock.release()

        if not work:
            return True
        with ThreadPoolExecutor(min(len(work), RECONCILE_THREADS),
                                thread_name_prefix="engine-return") as pool:
            return all(list(pool.map(lambda w: one(*w), work)))
