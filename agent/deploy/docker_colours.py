"""The Docker side of a Docker deploy target: the engine it deploys to, the colour
containers and the environment's network on it (names, making, finding, stopping and
removing them), and what runs there now (for the rollback picker, reconciliation and a
service's teardown). Which colour serves, and switching it, is agent/deploy/docker_host.py.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import docker
import docker.errors

from agent.deploy.base import DeployError, DeployRequest
from agent.deploy.front import Front, FrontSpec
from agent.deploy.front_api import FrontError
from agent.deploy.health import HealthResult, check_docker_healthcheck, check_http
from agent.docker_client import engine_client
from agent.logs import StageLog
from store.models import DockerTargetConfig, Service, image_for

logger = logging.getLogger(__name__)

ENGINE_WAIT_S = 120.0
ENGINE_PROBE_S = 2.0
STOP_TIMEOUT_S = 10
# back by the engine itself after any restart of dockerd, kill -9 included (module doc)
COLOUR_RESTART = {"Name": "always"}


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


class DockerColours:
    """Engine access and colour containers for one DockerTargetConfig (DockerHostTarget
    adds the deploy and the switch)."""

    kind = "docker"

    def __init__(self, config: DockerTargetConfig,
                 client_factory: Callable[[], docker.DockerClient], fronts_dir: Path,
                 instance: str = "") -> None:
        self.config = config
        # The agent's instance id, labelled on everything it makes here: a cleanup (make
        # demo-clean) takes only its own agent's containers on a shared engine.
        self.instance = instance
        self._client_factory = client_factory
        self.fronts_dir = fronts_dir
        self._docker: docker.DockerClient | None = None
        self.engine_wait_s = ENGINE_WAIT_S  # a deploy waits this long for a missing engine

    # -- engine access -------------------------------------------------------------------
    def _client(self) -> docker.DockerClient:
        if self._docker is None:
            # the target's own engine if it names one, else the agent's
            self._docker = (engine_client(self.config.docker_host, 120)
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

    def front(self, service: Service, environment: str, port: int,
              host: str | None = None) -> Front:
        if self._engine_host()[1] != "127.0.0.1":
            raise DeployError("the front's runtime API is a unix socket on the engine's host:"
                              " deploy targets on a remote engine (tcp://, ssh://) are not"
                              " supported yet")
        spec = FrontSpec(service=service.name, environment=environment,
                         host=host or self.config.host, port=port,
                         network=resource_name(service.name, environment),
                         container_port=service.container_port, instance=self.instance)
        return Front(self._client(), spec, self.fronts_dir)

    def _wait_engine(self, client: docker.DockerClient, log: StageLog) -> None:
        """A deploy started while the engine is away (a restart) waits for it, bounded."""
        deadline = time.monotonic() + self.engine_wait_s
        said = False
        while True:
            try:
                client.ping()
                if said:
                    log.system("the Docker engine answers again")
                return
            except Exception as exc:  # any failure: not answering (yet)
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            if time.monotonic() > deadline:
                raise DeployError(f"Docker engine unreachable for {self.engine_wait_s:g} s"
                                  f" ({reason}): nothing was deployed")
            if not said:
                log.system(f"waiting for the Docker engine (up to {self.engine_wait_s:g} s):"
                           f" {reason}")
                said = True
            time.sleep(ENGINE_PROBE_S)

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

    def _ensure_network(self, client: docker.DockerClient, name: str) -> str:
        if not any(n.name == name for n in client.networks.list(names=[name])):
            try:
                client.networks.create(name, driver="bridge",
                                       labels={"io.seamless.managed": "1",
                                               "io.seamless.agent": self.instance})
            except docker.errors.APIError as exc:  # created meanwhile by someone else
                if exc.status_code != 409:
                    raise
        return name

    def _run(self, client: docker.DockerClient, request: DeployRequest, name: str,
             colour: str, network: str) -> Any:
        svc = request.service
        port = svc.container_port
        labels = {"io.seamless.managed": "1", "io.seamless.agent": self.instance,
                  "io.seamless.service": svc.name,
                  "io.seamless.environment": request.environment,
                  "io.seamless.colour": colour, "io.seamless.sha": request.sha,
                  "io.seamless.port": str(port)}
        try:
            return client.containers.run(
                request.image, name=name, detach=True, network=network, labels=labels,
                environment={**svc.env, **svc.secrets},
                ports={f"{port}/tcp": (self._engine_host()[1], None)},
                restart_policy=COLOUR_RESTART)
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
            f"io.seamless.service={service}", f"io.seamless.environment={env}",
            "io.seamless.colour"]})

    @staticmethod
    def _fronts(client: docker.DockerClient, service: str, env: str) -> list[Any]:
        return client.containers.list(all=True, filters={"label": [
            f"io.seamless.service={service}", f"io.seamless.environment={env}",
            "io.seamless.role=front"]})

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

    # -- inspection -----------------------------------------------------------------------
    def colours(self, service: Service, environment: str) -> list[Any]:
        """The colour containers of (service, environment), running or not."""
        return self._colours(self._client(), service.name, environment)

    def adopted_state(self, service: Service, environment: str, container: Any,
                      image: str) -> dict[str, Any] | None:
        """The target state of a colour found serving behind the front (a deploy whose
        switch finished but was not recorded); None without a front."""
        fronts = self._fronts(self._client(), service.name, environment)
        if not fronts:
            return None
        host, _, port = fronts[0].labels.get("io.seamless.front-address", ":0").rpartition(":")
        return {"kind": self.kind, "colour": container.labels.get("io.seamless.colour"),
                "container": container.name, "container_id": container.id, "host": host,
                "port": int(port), "network": resource_name(service.name, environment),
                "front": fronts[0].name, "image": image, "strategy": self.config.strategy,
                "address": f"http://{host}:{port}"}

    def front_weights(self, service: Service, environment: str) -> dict[str, int]:
        """Per colour weight on the front now ({} when it has none or does not answer)."""
        fronts = self._fronts(self._client(), service.name, environment)
        if not fronts:
            return {}
        host, _, port = fronts[0].labels.get("io.seamless.front-address", ":0").rpartition(":")
        try:
            return self.front(service, environment, int(port), host).weights()
        except (FrontError, DeployError, ValueError):
            return {}

    def current(self, service: Service, environment: str) -> dict[str, Any] | None:
        running = [c for c in self._colours(self._client(), service.name, environment)
                   if c.status == "running"]
        if not running:
            return None
        c = running[0]
        front = self._fronts(self._client(), service.name, environment)
        address = front[0].labels.get("io.seamless.front-address") if front else None
        return {"colour": c.labels.get("io.seamless.colour"), "container": c.name,
                "image": c.image.tags[0] if c.image.tags else c.image.id,
                "address": f"http://{address}" if address else None}

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

    def remove_images(self, service: Service) -> list[str]:
        """The images Build made for `service` (its repository, its label)."""
        client = self._client()
        repository = image_for(service, "").rstrip(":")
        removed = []
        for image in client.images.list(filters={"label": f"io.seamless.service={service.name}"}):
            for tag in image.tags:
                if tag.rsplit(":", 1)[0] == repository:
                    try:
                        client.images.remove(tag, force=True)
                        removed.append(tag)
                    except docker.errors.APIError:
                        pass  # gone meanwhile
        return removed

    def remove(self, service: Service, environment: str) -> None:
        """Tear an environment down: front, colour containers, network (tests, service delete)."""
        client = self._client()
        for front in self._fronts(client, service.name, environment):
            front.remove(force=True)
        shutil.rmtree(self.fronts_dir / f"{service.name}-{environment}", ignore_errors=True)
        for container in self._colours(client, service.name, environment):
            container.remove(force=True)
        for net in client.networks.list(names=[resource_name(service.name, environment)]):
            if net.name == resource_name(service.name, environment):
                net.remove()
