"""Blue-green and canary deploys on a Docker engine, behind an HAProxy front.

Per service and environment:
- a user-defined bridge network `seamless-<service>-<env>`; staging and production never
  share containers, networks or ports;
- two colour containers `seamless-<service>-<env>-blue|green` (restart policy always:
  after a kill -9 of dockerd the new engine kills what survived of the old one's
  containers, which marks them stopped by hand, so `unless-stopped` ones stay down until
  the agent starts them; a colour is never stopped and kept: it runs or is removed),
  each also publishing the service's port on an ephemeral loopback port for the agent's
  health check;
- a front (`agent/deploy/front.py`): an HAProxy container on that network, publishing the
  stable port (`DockerTargetConfig.port`, or one chosen at the first deploy and kept in
  the deployment's target_state) and reaching the colours by container name.

Blue-green starts the new colour beside the old one, health-checks it directly, waits
until the front reaches it, gives it all the weight, drains the old colour on the front,
then stops it. Canary walks the configured weights first (agent/deploy/canary.py); a
failed step or an abort sets the canary's weight to 0 at once, drains and removes it.
A failed health check removes the new colour and leaves the front untouched. At start
the Deployer calls `reconcile()` so the front serves what the store records as active.
Making, finding and removing the containers: agent/deploy/docker_colours.py.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import docker.errors
import httpx

from agent.deploy.base import DeployError, DeployOutcome, DeployRequest
from agent.deploy.canary import CanaryControl, CanaryFailed, FrontSplit, run_steps
from agent.deploy.docker_colours import (
    COLOUR_RESTART,
    DockerColours,
    free_port,
    resource_name,
)
from agent.deploy.front import Front
from agent.deploy.front_api import FrontError
from agent.logs import StageLog
from agent.logs.logger import LoggingStageLog
from store.models import Service

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0


class DockerHostTarget(DockerColours):
    """Deploys (blue-green, canary), rollbacks and the reconcile at start; the engine, the
    containers and the network come from DockerColours (agent/deploy/docker_colours.py)."""

    # -- the deploy -------------------------------------------------------------------------
    def deploy(self, request: DeployRequest, log: StageLog) -> DeployOutcome:
        svc, env = request.service, request.environment
        prev = request.previous_state or {}
        client = self._client()
        self._wait_engine(client, log)
        self._ensure_image(client, request.image, log)
        live = prev.get("colour") or self._running_colour(client, svc.name, env)
        colour = "green" if live == "blue" else "blue"
        name = f"{resource_name(svc.name, env)}-{colour}"
        network = self._ensure_network(client, resource_name(svc.name, env))
        host = self.config.host
        port = self.config.port or prev.get("port") or free_port(host)
        front = self.front(svc, env, int(port), host)
        self._remove(client, name)  # a leftover of a failed or interrupted deploy
        log.system(f"starting {colour} colour {name} from {request.image}")
        container = self._run(client, request, name, colour, network)
        backend = self._backend(container)
        health = self._health(container, backend, svc, log)
        if not health.ok:
            tail = container.logs(tail=20).decode(errors="replace").strip()
            self._remove(client, name)
            log.system(f"health check failed: {health.detail}")
            if tail:
                log.system(f"last output of {name}:\n{tail}")
            keep = f"; {live} keeps serving" if live else ""
            raise DeployError(f"health check failed: {health.detail}{keep}")
        log.system(f"{colour} is healthy: {health.detail}")
        try:
            # The front keeps serving the live colour while it learns the new one's address.
            front.ensure({live: 100} if live else {})
            front.wait_serving(colour)
            if live and self.config.strategy == "canary" and request.rollback:
                log.system("rollback: switching at once, no canary steps")
            elif live and self.config.strategy == "canary":
                self._canary(front, live, colour, request, log)
            front.apply({colour: 100})
        except (FrontError, CanaryFailed) as exc:
            if live:
                with contextlib.suppress(FrontError):
                    front.apply({live: 100})  # weight 0 at once: the canary takes nothing new
                    front.drain(colour, DRAIN_TIMEOUT_S)
            self._remove(client, name)
            keep = f"; {live} keeps serving" if live else ""
            if isinstance(exc, CanaryFailed):
                log.system(f"canary stopped: {exc}{keep}")
                raise DeployError(f"canary stopped: {exc}{keep}") from exc
            raise DeployError(f"{exc}{keep}") from exc
        log.system(f"the front at http://{host}:{port} sends every request to {colour}")
        if live and live != colour:
            left = front.drain(live, DRAIN_TIMEOUT_S)
            log.system(f"drained the old colour ({max(left, 0)} connection(s) still open)")
        self._stop_others(client, svc.name, env, keep=name, log=log)
        return DeployOutcome(
            healthy=True, health_detail=health.detail, address=f"http://{host}:{port}",
            state={"kind": self.kind, "colour": colour, "container": name,
                   "container_id": container.id, "host": host, "port": port,
                   "network": network, "front": front.spec.name, "image": request.image,
                   "health": health.detail, "strategy": self.config.strategy})

    def _canary(self, front: Front, stable: str, canary: str, request: DeployRequest,
                log: StageLog) -> None:
        check = request.service.health_check
        url = f"http://{front.spec.host}:{front.spec.port}{check.path}" if check.path else None

        def probe() -> None:
            if url is not None:
                with contextlib.suppress(httpx.HTTPError):
                    httpx.get(url, timeout=2)

        cfg = self.config.canary
        log.system(f"canary: steps {', '.join(f'{s}%' for s in cfg.steps)}; each bakes"
                   f" {cfg.bake_s:g} s, needs {cfg.min_requests} canary requests"
                   f" ({cfg.min_latency_samples} timed for a latency verdict); fails on"
                   f" error rate > {cfg.max_error_rate:.1%} or > stable"
                   f" +{cfg.max_error_rate_increase:.1%}, p95 > stable ×"
                   f" {cfg.max_p95_ratio:g} + {cfg.p95_slack_ms:g} ms"
                   + (f" or > {cfg.max_p95_ms:g} ms" if cfg.max_p95_ms else ""))
        front.request_log(True)  # the windows' response times come from these lines
        try:
            run_steps(FrontSplit(front), stable, canary, cfg,
                      control=request.control or CanaryControl(),
                      record=request.record or (lambda m: None), say=log.system,
                      probe=probe if cfg.probe_rps and url else None)
        finally:
            with contextlib.suppress(FrontError):
                front.request_log(False)

    # -- restart -----------------------------------------------------------------------------
    def reconcile(self, service: Service, environment: str, state: dict[str, Any] | None,
                  revive: DeployRequest | None = None) -> bool:
        """At start: the front serves the colour the store records as active (started if
        it stopped, made again from its image if it is gone), and every other colour of
        this environment is removed."""
        if not state or state.get("kind") != self.kind:
            return False
        client = self._client()
        try:
            container = client.containers.get(state["container"])
        except docker.errors.NotFound:
            container = self._revive(revive, state) if revive else None
            if container is None:
                return False
        if container.attrs["HostConfig"]["RestartPolicy"].get("Name") != "always":
            container.update(restart_policy=COLOUR_RESTART)  # one made by an older agent
        if container.status != "running":
            container.start()
        self._ensure_network(client, resource_name(service.name, environment))
        front = self.front(service, environment, int(state["port"]), state.get("host"))
        front.ensure({state["colour"]: 100})
        for other in self._colours(client, service.name, environment):
            if other.name != container.name:
                logger.warning("removing %s: not the active colour of %s/%s", other.name,
                            service.name, environment)
                other.remove(force=True)
        try:  # served once the front's own check passed (a new front has none yet)
            front.wait_serving(state["colour"])
        except FrontError as exc:
            logger.error("%s/%s: %s", service.name, environment, exc)
            return False
        return True

    def _revive(self, request: DeployRequest, state: dict[str, Any]) -> Any:
        """The recorded colour's container is gone (e.g. a kill -9 between removing it and
        recording its successor): made again from the recorded image, health-checked.
        None when it cannot be (the image is gone, or it is not healthy)."""
        client = self._client()
        service, environment, image = request.service, request.environment, request.image
        name, colour = state["container"], state["colour"]
        log = LoggingStageLog(f"reconcile {service.name}/{environment}")
        logger.warning("%s/%s: the active colour %s is gone; starting it again from %s",
                       service.name, environment, name, image)
        try:
            self._ensure_image(client, image, log)
            network = self._ensure_network(client, resource_name(service.name, environment))
            container = self._run(client, request, name, colour, network)
            health = self._health(container, self._backend(container), service, log)
        except (DeployError, docker.errors.APIError) as exc:
            logger.error("%s/%s: could not start %s again: %s", service.name, environment,
                         name, exc)
            return None
        if not health.ok:
            logger.error("%s/%s: %s started again but is not healthy: %s", service.name,
                         environment, name, health.detail)
            self._remove(client, name)
            return None
        return container
