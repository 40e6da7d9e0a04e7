"""Blue-green deploys on a Docker engine (the local one, or `DockerTargetConfig.docker_host`).

Per service and environment:
- a user-defined bridge network `seamless-<service>-<env>`; staging and production never
  share containers, networks or ports;
- two colour containers `seamless-<service>-<env>-blue|green` (one live at a time), each
  publishing the service's port on an ephemeral host port (127.0.0.1 for the local engine);
- a stable front: an asyncio TCP proxy inside the agent (`agent/deploy/proxy.py`) listening
  on the stable port (`DockerTargetConfig.port`, or one chosen at the first deploy and kept
  in the deployment's target_state) and forwarding to the live colour's published port.

A deploy starts the new colour beside the old one, health-checks it directly through its
own published port, swaps the front's backend (new connections go to the new colour), waits
for connections still on the old colour to end, then stops the old colour. A failed health
check removes the new colour and leaves the front untouched. After an agent restart the
Deployer calls `restore()` with the live deployment's target_state to re-open the front;
the colour containers run with restart policy unless-stopped and are found by name.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import docker
import docker.errors

from agent.deploy.base import DeployError, DeployOutcome, DeployRequest
from agent.deploy.health import HealthResult, check_docker_healthcheck, check_http
from agent.deploy.proxy import Fronts
from agent.logs import StageLog
from store.models import DockerTargetConfig, Service

DRAIN_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10


def resource_name(service: str, environment: str) -> str:
    return f"seamless-{service}-{environment}"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def names_registry(image: str) -> bool:
    """True when the image reference starts with a registry host (so it can be pulled)."""
    first = image.split("/", 1)[0] if "/" in image else ""
    return bool(first) and ("." in first or ":" in first or first == "localhost")


class DockerHostTarget:
    kind = "docker"

    def __init__(self, config: DockerTargetConfig,
                 client_factory: Callable[[], docker.DockerClient], fronts: Fronts) -> None:
        self.config = config
        self._client_factory = client_factory
        self.fronts = fronts
        self._docker: docker.DockerClient | None = None

    # -- engine access -------------------------------------------------------------------
    def _client(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = (docker.DockerClient(base_url=self.config.docker_host, timeout=120)
                            if self.config.docker_host else self._client_factory())
        return self._docker

    def _engine_host(self) -> tuple[str, str]:
        """(address the agent reaches published ports on, address to publish them on)."""
        url = self.config.docker_host
        if url and url.startswith(("tcp://", "ssh://", "http://", "https://")):
            return urlparse(url).hostname or "127.0.0.1", "0.0.0.0"
        return "127.0.0.1", "127.0.0.1"

    def _backend(self, container: Any) -> tuple[str, int]:
        container.reload()
        port = self._container_port(container)
        bindings = (container.ports or {}).get(f"{port}/tcp") or []
        if not bindings:
            raise DeployError(f"container {container.name} publishes no port {port}/tcp")
        return self._engine_host()[0], int(bindings[0]["HostPort"])

    @staticmethod
    def _container_port(container: Any) -> int:
        return int(container.labels.get("io.seamless.port", "0"))

    # -- the deploy -------------------------------------------------------------------------
    def deploy(self, request: DeployRequest, log: StageLog) -> DeployOutcome:
        svc, env = request.service, request.environment
        key = (svc.name, env)
        prev = request.previous_state or {}
        client = self._client()
        self._ensure_image(client, request.image, log)
        self.restore(svc, env, prev)  # after an agent restart the front may not exist yet
        live = prev.get("colour") or self._running_colour(client, svc.name, env)
        colour = "green" if live == "blue" else "blue"
        name = f"{resource_name(svc.name, env)}-{colour}"
        network = self._ensure_network(client, resource_name(svc.name, env))
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

        host = self.config.host
        port = self.config.port or prev.get("port") or free_port(host)
        try:
            front = self.fronts.get(key)
            if front is None or (front.host, front.port) != (host, port):
                self.fronts.ensure(key, host, port, backend)
                old = None
            else:
                old = self.fronts.switch(key, backend)
        except OSError as exc:
            self._remove(client, name)
            raise DeployError(f"cannot listen on the stable address {host}:{port}: {exc}") from exc
        log.system(f"switched http://{host}:{port} to {colour} ({backend[0]}:{backend[1]})")
        if old is not None and old != backend:
            left = self.fronts.drain(key, old, DRAIN_TIMEOUT_S)
            log.system(f"drained the old colour ({left} connection(s) still open)")
        self._stop_others(client, svc.name, env, keep=name, log=log)
        return DeployOutcome(
            healthy=True, health_detail=health.detail, address=f"http://{host}:{port}",
            state={"kind": self.kind, "colour": colour, "container": name,
                   "container_id": container.id, "host": host, "port": port,
                   "network": network, "image": request.image, "health": health.detail})

    def _ensure_image(self, client: docker.DockerClient, image: str, log: StageLog) -> None:
        try:
            client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        if not names_registry(image):
            raise DeployError(f"image {image} no longer exists on the Docker host")
        log.system(f"pulling {image}")
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            raise DeployError(f"image {image} no longer exists: {exc.explanation}") from exc

    @staticmethod
    def _ensure_network(client: docker.DockerClient, name: str) -> str:
        if not any(n.name == name for n in client.networks.list(names=[name])):
            try:
                client.networks.create(name, driver="bridge",
                                       labels={"io.seamless.managed": "1"})
            except docker.errors.APIError as exc:  # created meanwhile by someone else
                if exc.status_code != 409:
                    raise
        return name

    def _run(self, client: docker.DockerClient, request: DeployRequest, name: str,
             colour: str, network: str) -> Any:
        svc = request.service
        port = svc.container_port
        labels = {"io.seamless.managed": "1", "io.seamless.service": svc.name,
                  "io.seamless.environment": request.environment,
                  "io.seamless.colour": colour, "io.seamless.sha": request.sha,
                  "io.seamless.port": str(port)}
        try:
            return client.containers.run(
                request.image, name=name, detach=True, network=network, labels=labels,
                environment={**svc.env, **svc.secrets},
                ports={f"{port}/tcp": (self._engine_host()[1], None)},
                restart_policy={"Name": "unless-stopped"})
        except docker.errors.APIError as exc:
            self._remove(client, name)
            raise DeployError(f"could not start {name}: {exc.explanation or exc}") from exc

    @staticmethod
    def _health(container: Any, backend: tuple[str, int], svc: Service,
                log: StageLog) -> HealthResult:
        check = svc.health_check
        if check.path is None:
            log.system("waiting for the image's HEALTHCHECK")
            return check_docker_healthcheck(container, check)
        log.system(f"health check: GET {check.path} expecting {check.expected_status}"
                   f" within {check.timeout_s:g} s")
        return check_http(f"http://{backend[0]}:{backend[1]}", check, container)

    @staticmethod
    def _remove(client: docker.DockerClient, name: str) -> None:
        try:
            client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass

    @staticmethod
    def _colours(client: docker.DockerClient, service: str, env: str) -> list[Any]:
        return client.containers.list(all=True, filters={"label": [
            f"io.seamless.service={service}", f"io.seamless.environment={env}"]})

    def _running_colour(self, client: docker.DockerClient, service: str, env: str) -> str | None:
        running = [c for c in self._colours(client, service, env) if c.status == "running"]
        return running[0].labels.get("io.seamless.colour") if running else None

    def _stop_others(self, client: docker.DockerClient, service: str, env: str, keep: str,
                     log: StageLog) -> None:
        for container in self._colours(client, service, env):
            if container.name != keep:
                log.system(f"stopping the old colour {container.name}")
                try:
                    container.stop(timeout=STOP_TIMEOUT_S)
                    container.remove(force=True)
                except docker.errors.NotFound:
                    pass

    # -- restart, inspection --------------------------------------------------------------
    def restore(self, service: Service, environment: str, state: dict[str, Any] | None) -> bool:
        """Re-open the stable front for the live colour named in `state` (after a restart)."""
        key = (service.name, environment)
        if not state or state.get("kind") != self.kind or self.fronts.get(key) is not None:
            return self.fronts.get(key) is not None
        client = self._client()
        try:
            container = client.containers.get(state["container"])
            if container.status != "running":
                container.start()
            backend = self._backend(container)
        except (docker.errors.NotFound, DeployError):
            return False
        self.fronts.ensure(key, state["host"], int(state["port"]), backend)
        return True

    def current(self, service: Service, environment: str) -> dict[str, Any] | None:
        front = self.fronts.get((service.name, environment))
        running = [c for c in self._colours(self._client(), service.name, environment)
                   if c.status == "running"]
        if not running:
            return None
        c = running[0]
        return {"colour": c.labels.get("io.seamless.colour"), "container": c.name,
                "image": c.image.tags[0] if c.image.tags else c.image.id,
                "address": f"http://{front.host}:{front.port}" if front else None}

    def image_exists(self, image: str) -> bool:
        client = self._client()
        try:
            client.images.get(image)
            return True
        except docker.errors.ImageNotFound:
            pass
        if not names_registry(image):
            return False
        try:
            client.images.get_registry_data(image)
            return True
        except docker.errors.APIError:
            return False

    def remove(self, service: Service, environment: str) -> None:
        """Tear an environment down: front, colour containers, network (tests, service delete)."""
        self.fronts.close((service.name, environment))
        client = self._client()
        for container in self._colours(client, service.name, environment):
            container.remove(force=True)
        for net in client.networks.list(names=[resource_name(service.name, environment)]):
            if net.name == resource_name(service.name, environment):
                net.remove()
