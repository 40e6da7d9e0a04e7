"""How the front is run for latency: it keeps its connections to the colour open (a
client's request does not pay for a TCP handshake with the app when the app keeps
connections alive, as most do: nginx, Go, Node, uvicorn…), and it is scheduled before
the engine's other containers (builds, test stages) when the CPU is short.
bench/traffic.py measures the first."""

from __future__ import annotations

import csv
import http.client
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.deploy.front import CPU_SHARES, Front, FrontSpec
from agent.deploy.front_api import BACKEND
from agent.deploy.front_image import ensure_image
from tests.helpers import free_port, unique_name

APP_PORT = 8080
# HAProxy answering by itself stands in for an app server that keeps connections alive
# (the busybox httpd of the other deploy tests closes every connection).
KEEP_ALIVE_APP = f"""defaults
    mode http
    timeout client 30s
    timeout http-keep-alive 30s
frontend app
    bind :{APP_PORT}
    http-request return status 200 content-type text/plain string v1
"""


@pytest.fixture
def keep_alive_front(docker_client, tmp_path) -> Iterator[tuple[Front, int]]:
    name = unique_name("seamless-test-reuse")
    network = docker_client.networks.create(name, driver="bridge")
    spec = FrontSpec(service=name.removeprefix("seamless-"), environment="production",
                     host="127.0.0.1", port=free_port(), network=name,
                     container_port=APP_PORT)
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "haproxy.cfg").write_text(KEEP_ALIVE_APP)
    app = docker_client.containers.run(
        ensure_image(docker_client), name=spec.colour_host("blue"), detach=True,
        network=name, volumes={str(app_dir): {"bind": "/etc/seamless-front", "mode": "ro"}})
    front = Front(docker_client, spec, Path(tmp_path / "fronts"))
    try:
        front.ensure({"blue": 100})
        front.wait_serving("blue")
        yield front, spec.port
    finally:
        front.remove()
        app.remove(force=True)
        network.remove()


def _server_row(front: Front, colour: str) -> dict[str, Any]:
    rows = csv.DictReader(io.StringIO(front.api("show stat").lstrip("# ")))
    return next(r for r in rows if r["pxname"] == BACKEND and r["svname"] == colour)


def test_new_clients_reuse_the_fronts_open_connections_to_the_colour(keep_alive_front):
    front, port = keep_alive_front
    for _ in range(30):  # each request on its own client connection, as the bench does
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"v1")
        finally:
            conn.close()
    row = _server_row(front, "blue")
    # Before: one connection to the app per request (connect 30, reuse 0).
    assert int(row["connect"]) <= 3, row
    assert int(row["reuse"]) >= 27, row


def test_the_front_gets_cpu_before_builds_and_an_older_one_is_updated_live(keep_alive_front):
    front, port = keep_alive_front
    container = front.container()
    assert container.attrs["HostConfig"]["CpuShares"] == CPU_SHARES > 1024  # Docker's default
    # A front made before this setting: put right by the next ensure, without a restart
    # (production keeps its connections).
    container.update(cpu_shares=1024)
    started = container.attrs["State"]["StartedAt"]
    front.ensure({"blue": 100})
    container.reload()
    assert container.attrs["HostConfig"]["CpuShares"] == CPU_SHARES
    assert container.attrs["State"]["StartedAt"] == started
