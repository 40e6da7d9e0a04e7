"""The one way the agent reaches a Docker engine.

The agent config's `docker_host` (a unix://, tcp:// or ssh:// URL) — else DOCKER_HOST or
the local socket, as the docker CLI does. Executors, builds, compose (DOCKER_HOST in the
compose CLI's environment), deploy targets, their fronts and `front status` all get
their client here, so no part quietly talks to another engine than the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

LOCAL_SOCKET = "/var/run/docker.sock"


def engine_client(docker_host: str | None, timeout: int = 60) -> Any:
    """A `docker.DockerClient` for `docker_host` (None: DOCKER_HOST / the local socket)."""
    import docker

    if docker_host:
        return docker.DockerClient(base_url=docker_host, timeout=timeout)
    return docker.from_env(timeout=timeout)


def client_factory(docker_host: str | None, timeout: int = 120) -> Callable[[], Any]:
    """`engine_client` bound to one engine: what long-lived parts keep and call."""
    return partial(engine_client, docker_host, timeout)


def cli_env(docker_host: str | None) -> dict[str, str]:
    """What a docker / compose CLI needs in its environment to reach the same engine."""
    return {"DOCKER_HOST": docker_host} if docker_host else {}


def socket_path(docker_host: str | None) -> str:
    """The engine's unix socket on this host (what a stage mounts with
    `mount_docker_socket`); the local one unless `docker_host` names another."""
    if docker_host and docker_host.startswith("unix://"):
        return docker_host[len("unix://"):]
    return LOCAL_SOCKET
