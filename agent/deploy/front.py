"""The front of one (service, environment): an HAProxy container outside the agent.

Why a container (see docs/architecture.md, "The front"): it sits on the environment's
own Docker network and reaches the colours by container name through the engine's
DNS (127.0.0.11), so after an engine restart it finds them wherever they came back;
its restart policy keeps it serving while the agent is stopped, killed or upgraded;
and it is built locally from the host's Debian `haproxy` (agent/deploy/front_image.py).

The agent drives it through HAProxy's runtime API (agent/deploy/front_api.py) on a unix
socket in a host folder bind-mounted into the container: weights, drain and figures change
without a reload. Every change is also written to the config
file in that folder first, so a front that restarts by itself comes back serving what
the agent last set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import LogConfig

from agent.deploy.front_api import (
    BACKEND,
    COLOURS,
    SOCKET,
    FrontApi,
    FrontError,
    ServerStat,
    parse_stat,
)
from agent.deploy.front_image import ensure_image

logger = logging.getLogger(__name__)

LISTEN_PORT = 8080  # inside the front container; published on the stable host port
_CONFIG = "haproxy.cfg"
_LOG_MAP = "log.map"  # `on 1` while request lines are wanted (canary windows)
_LOG_MAP_IN = f"/etc/seamless-front/{_LOG_MAP}"
# CPU weight against the engine's other containers (Docker's default is 1024): on a
# host busy with builds and test stages, production's front is scheduled first.
CPU_SHARES = 8192


@dataclass(frozen=True)
class FrontSpec:
    service: str
    environment: str
    host: str  # the stable address binds here (127.0.0.1 by default)
    port: int  # the stable port
    network: str  # the environment's Docker network, shared with the colours
    container_port: int  # the service's port inside the colour containers
    instance: str = ""  # the agent's instance id, labelled (cleanup takes only its own)

    @property
    def name(self) -> str:
        return f"seamless-{self.service}-{self.environment}-front"

    def colour_host(self, colour: str) -> str:
        return f"seamless-{self.service}-{self.environment}-{colour}"


def render_config(spec: FrontSpec, weights: dict[str, int]) -> str:
    """The whole HAProxy config; `weights` per colour (0 = no new traffic)."""
    servers = "\n".join(
        f"    server {c} {spec.colour_host(c)}:{spec.container_port} weight {weights.get(c, 0)}"
        for c in COLOURS)
    return f"""# Written by seamless-agent; the runtime API changes it live, this file on restart.
global
    log stdout format raw local0
    stats socket /run/front/{SOCKET} mode 600 level admin
    stats timeout 30s
    maxconn 4096
    hard-stop-after 30s
    # one thread: a front serves one environment; with two, each request may hop between
    # threads (and idle connections to the colours are per thread), which cost latency
    nbthread 1

resolvers engine
    nameserver dns 127.0.0.11:53
    accepted_payload_size 8192
    resolve_retries 3
    timeout resolve 200ms
    timeout retry 200ms
    hold valid 1s
    # a colour not (yet) resolvable is asked again soon: after an engine restart the
    # colour comes back a moment after the front
    hold nx 250ms
    hold refused 250ms
    hold timeout 250ms
    hold other 250ms
    hold obsolete 1s

defaults
    mode http
    log global
    option dontlognull
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend stable
    bind :{LISTEN_PORT}
    # one line per request: when, colour, status, total and server time (ms), how it ended
    log-format "%Ts.%ms %s %ST %Ta %Tr %tsc"
    # ... only while a canary is measured (the agent puts `on` in this map): otherwise every
    # request would cost a line through the engine's log pipeline for nothing
    http-request set-log-level silent unless {{ str(on),map({_LOG_MAP_IN}) -m found }}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    # a request goes out on an idle connection to the colour when there is one, even a
    # new client's first: no TCP handshake with the app per request. A connection the app
    # closed at that moment is retried on a new one (retry-on above).
    http-reuse always
    default-server resolvers engine resolve-prefer ipv4 init-addr none
    # a check waits at most `inter` for its connection: on a starved host one can time out
    # for nothing, so a colour goes DOWN (503 for all) only after 3 in a row
    default-server check inter 500ms fall 3 rise 1
{servers}
"""


class Front:
    """One front container and its folder; every method is blocking and idempotent."""

    def __init__(self, client: docker.DockerClient, spec: FrontSpec, root: Path) -> None:
        self.client, self.spec = client, spec
        self.folder = root / f"{spec.service}-{spec.environment}"
        self.api = FrontApi(self.folder / "run")

    # -- the container -----------------------------------------------------------------
    def container(self) -> Any | None:
        try:
            return self.client.containers.get(self.spec.name)
        except docker.errors.NotFound:
            return None

    def _write_config(self, weights: dict[str, int]) -> bool:
        """Write the config (atomically); True when it changed."""
        (self.folder / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (self.folder / _LOG_MAP).exists():
            _write_atomically(self.folder / _LOG_MAP, "")  # HAProxy needs the file to start
        path = self.folder / _CONFIG
        text = render_config(self.spec, weights)
        if path.exists() and path.read_text() == text:
            return False
        _write_atomically(path, text)
        return True

    def ensure(self, weights: dict[str, int], timeout_s: float = 15.0) -> None:
        """The front runs with `weights`: created, started or adjusted as needed."""
        self._write_config(weights)
        container = self.container()
        if container is not None and not self._matches(container):
            container.remove(force=True)  # the stable address or the image changed
            container = None
        if container is None:
            container = self._create()
        elif container.attrs["HostConfig"].get("CpuShares") != CPU_SHARES:
            self._raise_cpu_weight(container)
        if container.status != "running":
            try:
                container.start()
            except docker.errors.APIError as exc:
                raise FrontError(f"the front {self.spec.name} cannot start on"
                                 f" {self.spec.host}:{self.spec.port}:"
                                 f" {exc.explanation or exc}") from exc
        self._wait_api(timeout_s)
        self.apply(weights)
        self.request_log(False)  # on only while a canary measures (an agent killed in one)

    def _raise_cpu_weight(self, container: Any) -> None:
        """A front made by an older agent: its CPU weight, live (no restart)."""
        try:
            container.update(cpu_shares=CPU_SHARES)
        except docker.errors.APIError as exc:  # e.g. no cpu cgroup controller: serve anyway
            logger.warning("%s: CPU weight not raised: %s", self.spec.name,
                           exc.explanation or exc)

    def _matches(self, container: Any) -> bool:
        labels = container.labels
        return (labels.get("io.seamless.front-address") == f"{self.spec.host}:{self.spec.port}"
                and labels.get("io.seamless.front-image") == ensure_image(self.client))

    def _create(self) -> Any:
        image = ensure_image(self.client)
        labels = {"io.seamless.managed": "1", "io.seamless.role": "front",
                  "io.seamless.agent": self.spec.instance,
                  "io.seamless.service": self.spec.service,
                  "io.seamless.environment": self.spec.environment,
                  "io.seamless.front-address": f"{self.spec.host}:{self.spec.port}",
                  "io.seamless.front-image": image}
        try:
            return self.client.containers.create(
                image, name=self.spec.name, labels=labels, network=self.spec.network,
                ports={f"{LISTEN_PORT}/tcp": (self.spec.host, self.spec.port)},
                volumes={str(self.folder): {"bind": "/etc/seamless-front", "mode": "ro"},
                         str(self.folder / "run"): {"bind": "/run/front", "mode": "rw"}},
                # as the agent's user, so the admin socket is the agent's alone (mode 600)
                user=f"{os.getuid()}:{os.getgid()}", cap_drop=["ALL"], read_only=True,
                restart_policy={"Name": "always"}, cpu_shares=CPU_SHARES,
                log_config=LogConfig(type="json-file",
                                     config={"max-size": "20m", "max-file": "2"}))
        except docker.errors.APIError as exc:
            raise FrontError(f"cannot create the front {self.spec.name}:"
                             f" {exc.explanation or exc}") from exc

    def _wait_api(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.api("show info", timeout_s=1)
                return
            except FrontError as exc:
                container = self.container()
                if container is not None and container.status == "exited" or (
                        time.monotonic() > deadline):
                    tail = container.logs(tail=10).decode(errors="replace") if container else ""
                    state = container.status if container else "gone"
                    raise FrontError(f"the front {self.spec.name} did not come up ({state}):"
                                     f" {exc}; {tail}") from exc
                time.sleep(0.05)

    def remove(self) -> None:
        container = self.container()
        if container is not None:
            container.remove(force=True)

    # -- the runtime API -----------------------------------------------------------------
    def apply(self, weights: dict[str, int]) -> None:
        """Set every colour's weight live (and in the config file first)."""
        self._write_config(weights)
        # Raise weights before lowering others: never a moment with no server to send to.
        for colour in sorted(COLOURS, key=lambda c: -weights.get(c, 0)):
            weight = weights.get(colour, 0)
            if weight:
                self.api(f"set server {BACKEND}/{colour} state ready")
            answer = self.api(f"set server {BACKEND}/{colour} weight {weight}")
            if answer.strip():
                raise FrontError(f"the front refused weight {weight} for {colour}: {answer}")
            if not weight:
                self.api(f"set server {BACKEND}/{colour} state drain")

    def request_log(self, on: bool) -> None:
        """Per-request log lines on or off, live (the map file first, for a restart)."""
        _write_atomically(self.folder / _LOG_MAP, "on 1\n" if on else "")
        answer = self.api(f"add map {_LOG_MAP_IN} on 1" if on else f"clear map {_LOG_MAP_IN}")
        if answer.strip() and on:
            # A front started from an older config has no such map and logs every request.
            logger.warning("%s: request log switch refused (%s); it logs every request",
                           self.spec.name, answer.strip())

    def stats(self) -> dict[str, ServerStat]:
        return parse_stat(self.api("show stat"))

    def wait_serving(self, colour: str, timeout_s: float = 15.0) -> ServerStat:
        """Wait until the front resolved `colour` by name and its own check passed since."""
        deadline = time.monotonic() + timeout_s
        while True:
            stat = self.stats().get(colour)
            if stat is not None and stat.checked_up:
                return stat
            if time.monotonic() > deadline:
                seen = f"{stat.status}, last check {stat.check or '-'}" if stat else (
                    "no such server")
                raise FrontError(f"the front does not reach {self.spec.colour_host(colour)}"
                                 f" ({seen})")
            time.sleep(0.1)

    def drain(self, colour: str, timeout_s: float) -> int:
        """Wait for the connections still open on `colour`; returns how many remained."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(FrontError):
                left = self.stats()[colour].current
                if left == 0 or time.monotonic() > deadline:
                    return left
            if time.monotonic() > deadline:
                return -1
            time.sleep(0.05)

    def weights(self) -> dict[str, int]:
        return {c: s.weight for c, s in self.stats().items()}


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def status_rows(client: docker.DockerClient, fronts_dir: Path) -> list[dict[str, Any]]:
    """Every front on the engine: where it listens, whether it runs, what it serves."""
    rows = []
    for container in client.containers.list(all=True,
                                            filters={"label": "io.seamless.role=front"}):
        labels = container.labels
        service, env = labels.get("io.seamless.service", "?"), labels.get(
            "io.seamless.environment", "?")
        row: dict[str, Any] = {
            "service": service, "environment": env, "container": container.name,
            "address": labels.get("io.seamless.front-address"), "state": container.status,
            "restarts": container.attrs.get("RestartCount", 0), "colours": {}}
        api = FrontApi(fronts_dir / f"{service}-{env}" / "run")
        try:
            row["colours"] = {c: {"weight": s.weight, "status": s.status, "addr": s.addr,
                                  "requests": s.requests, "errors": s.errors,
                                  "open": s.current}
                              for c, s in parse_stat(api("show stat")).items()}
        except FrontError as exc:
            row["error"] = str(exc)
        rows.append(row)
    return rows
