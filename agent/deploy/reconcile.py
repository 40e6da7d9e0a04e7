"""At start, the deployment records of every (service, environment) are made true.

A kill -9 can land anywhere in a deploy (agent/deploy/docker_host.py `deploy`): before the
new colour took traffic, during a canary step, after the front sent everything to it, or
after the old colour was destroyed but before the deployment row was finished. The next
start looks at what the engine and the front actually do and records it:

- the interrupted deploy's colour is running and the front sends it every request (the
  switch had finished): the deployment is recorded active, as it serves;
- otherwise the deployment is `interrupted`, with a message saying what happened, and the
  last active colour serves again (started, or made again from its image if it is gone);
- colours no record names active are removed (a half-deployed colour holds production
  secrets and must not linger).

This module owns the records; `DockerHostTarget.reconcile` puts the front and the colour
containers in line with them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors
import requests

from agent.deploy.base import DeployRequest, DeployTarget
from agent.deploy.docker_host import DockerHostTarget
from store.models import Deployment, DeploymentKind, DeploymentStatus, Pipeline, Service
from store.store import Store

log = logging.getLogger(__name__)

ENGINE_DOWN = (docker.errors.DockerException, requests.exceptions.ConnectionError)

RECENT = 10  # deployments looked at per environment (only the newest can be in progress)
PARALLEL = 8  # environments reconciled at once


class Reconciler:
    def __init__(self, store: Store, publish: Callable[[Deployment], None]) -> None:
        self.store = store
        self.publish = publish
        # (service, environment) → why its recorded active build does not serve
        self.unserved: dict[tuple[str, str], str] = {}

    def environment(self, service: Service, pipeline: Pipeline, environment: str,
                    target: DeployTarget | None) -> bool:
        """True when a Docker environment serves its active deployment afterwards."""
        open_rows = [d for d in self.store.list_deployments(
            service_id=service.id, environment=environment, limit=RECENT)
            if d.status is DeploymentStatus.in_progress]
        docker = target if isinstance(target, DockerHostTarget) else None
        for dep in open_rows:
            if docker is None or not self._adopt(docker, service, dep):
                self._interrupted(service, dep, checked=hasattr(target, "reconcile"))
        if docker is not None:
            return self.serve_active(docker, service, pipeline, environment)
        reconcile = getattr(target, "reconcile", None)  # e.g. an ECS listener's weights
        active = self.store.current_deployment(service.id, environment)
        if reconcile is None or active is None:
            return False
        return bool(reconcile(service, environment,
                              self.store.deployment_target_state(active.id)))

    # -- the deploy the kill cut --------------------------------------------------------
    def _adopt(self, target: DockerHostTarget, service: Service, dep: Deployment) -> bool:
        """The deploy's colour already takes every request: record it active."""
        weights = target.front_weights(service, dep.environment)
        serving = [c for c, w in weights.items() if w > 0]
        if len(serving) != 1:
            return False
        container = next((c for c in target.colours(service, dep.environment)
                          if c.status == "running"
                          and c.labels.get("io.seamless.colour") == serving[0]
                          and c.labels.get("io.seamless.sha") == dep.sha), None)
        if container is None:
            return False
        state = target.adopted_state(service, dep.environment, container, dep.image)
        if state is None:
            return False
        replaced = self.store.current_deployment(service.id, dep.environment)
        note = (f"the agent stopped after the switch: at restart {state['colour']} was found"
                f" serving {dep.sha[:12]} and recorded active")
        done = self.store.finish_deployment(dep.id, DeploymentStatus.active,
                                            target_state={**state, "health": note})
        if (dep.kind is DeploymentKind.rollback and replaced is not None
                and replaced.sha != dep.sha):
            self.publish(self.store.mark_rolled_back(replaced.id))
        self.store.audit("agent", "deployment reconciled", f"{service.name}/{dep.environment}",
                         note)
        log.warning("%s/%s: %s", service.name, dep.environment, note)
        self.publish(done)
        return True

    def _interrupted(self, service: Service, dep: Deployment, checked: bool) -> None:
        live = self.store.current_deployment(service.id, dep.environment)
        keeps = (f"{live.sha[:12]} stays live" if live is not None
                 else "nothing was live before it")
        if not checked:
            keeps += " (this target is not checked at start)"
        error = (f"interrupted: the agent stopped during this deploy, before "
                 f"{dep.sha[:12]} took all the traffic; {keeps}")
        done = self.store.finish_deployment(dep.id, DeploymentStatus.interrupted, error=error)
        self.store.audit("agent", "deployment reconciled", f"{service.name}/{dep.environment}",
                         error)
        log.warning("%s/%s: deployment %s %s", service.name, dep.environment, dep.id, error)
        self.publish(done)

    # -- what serves ----------------------------------------------------------------------
    def serve_active(self, target: DockerHostTarget, service: Service, pipeline: Pipeline,
                      environment: str) -> bool:
        active = self.store.current_deployment(service.id, environment)
        if active is None:
            for stray in target.colours(service, environment):
                log.warning("removing %s: no deployment of %s/%s is active", stray.name,
                            service.name, environment)
                stray.remove(force=True)
            return False
        state = self.store.deployment_target_state(active.id)
        revive = DeployRequest(service=service, pipeline=pipeline, environment=environment,
                               image=active.image, sha=active.sha)
        if target.reconcile(service, environment, state, revive=revive):
            return True
        why = (f"{service.name}/{environment}: {active.sha[:12]} is recorded active but"
               " could not be served (its container and image are gone or unhealthy);"
               " redeploy or roll back")
        log.error(why)
        self.unserved[(service.name, environment)] = why
        return False


def reconcile_all(store: Store, publish: Callable[[Deployment], None],
                  target_for: Callable[[Service, Pipeline, str], DeployTarget | None],
                  lock_for: Callable[[Service, str], threading.Lock],
                  workers: int = PARALLEL) -> dict[str, Any]:
    """Every (service, environment), several at once (each is mostly waiting on the engine
    or the front; they share nothing but the store, whose writes are serialized); one
    failing never stops the others. Each under its environment's deploy lock: it removes
    colours, and a colour a deploy is creating must never be one of them. Returns figures
    for the log: environments looked at, how many serve their active deployment, seconds."""
    started = time.monotonic()
    reconciler = Reconciler(store, publish)
    jobs = []
    for service in store.list_services():
        pipeline = store.get_pipeline(service.pipeline)
        for environment in ("staging", "production"):
            # Targets are made here, in one thread: target_for caches them unlocked.
            jobs.append((service, pipeline, environment,
                         target_for(service, pipeline, environment)))

    def one(job: tuple[Service, Pipeline, str, DeployTarget | None]) -> bool:
        service, pipeline, environment, target = job
        try:
            with lock_for(service, environment):
                return reconciler.environment(service, pipeline, environment, target)
        except Exception:
            log.exception("could not reconcile %s/%s", service.name, environment)
            return False

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
        served = sum(pool.map(one, jobs))
    return {"environments": len(jobs), "served": served, "unserved": reconciler.unserved,
            "seconds": round(time.monotonic() - started, 3)}
