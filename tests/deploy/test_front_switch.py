"""The switch to a new colour waits until the front's own check reached it: a name that
resolves is not yet a colour the front can serve."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker.errors
import pytest

from agent.deploy.front import Front, FrontSpec
from agent.deploy.front_api import FrontError, parse_stat
from tests.helpers import free_port, unique_name

pytestmark = pytest.mark.docker

PORT = 8080


@pytest.fixture
def front(docker_client, tmp_path) -> Iterator[Front]:
    name = unique_name("seamless-test-sw")
    network = docker_client.networks.create(f"{name}-net", driver="bridge")
    spec = FrontSpec(service=name, environment="production", host="127.0.0.1",
                     port=free_port(), network=network.name, container_port=PORT)
    made = Front(docker_client, spec, tmp_path / "fronts")
    try:
        made.ensure({})  # no colour yet: both weigh 0
        yield made
    finally:
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        network.remove()


def _colour(docker_client, base_image, front: Front, colour: str, command: str) -> None:
    docker_client.containers.run(base_image, ["sh", "-c", command], detach=True,
                                 name=front.spec.colour_host(colour),
                                 network=front.spec.network)


def test_a_colour_that_resolves_but_does_not_answer_is_never_declared_serving(
        front, docker_client, base_image):
    """HAProxy puts a server whose name resolves straight to UP (one failed check from
    DOWN). The old wait took that for serving: the switch went on, the old colour was
    drained and stopped, and the first check's failure left production with no server
    (503) — seen after a deploy on a loaded host."""
    _colour(docker_client, base_image, front, "blue", "sleep 60")  # no port 8080
    with pytest.raises(FrontError) as refused:
        front.wait_serving("blue", timeout_s=4)
    assert "last check L4CON" in str(refused.value), refused.value


def test_a_colour_is_serving_once_the_fronts_check_passed(front, docker_client, base_image):
    _colour(docker_client, base_image, front, "green",
            f"mkdir -p /www && echo ok > /www/health && exec httpd -f -p {PORT} -h /www")
    stat = front.wait_serving("green", timeout_s=15)
    assert stat.check.endswith("OK") and stat.checked_up, stat


@pytest.mark.parametrize("status, check, serving", [
    ("UP 1/3", "INI", False),  # resolved just now, never checked
    ("DRAIN 1/3", "L4OK", False),  # one failure from DOWN
    ("DRAIN 1/2", "L4CON", False),
    ("UP 2/3", "L4OK", True),
    ("DRAIN", "L4OK", True),
    ("UP", "L7OK", True),
    ("MAINT (resolution)", "", False),
    ("DOWN", "L4TOUT", False)])
def test_what_counts_as_serving_in_the_fronts_figures(status, check, serving):
    header = "# pxname,svname,status,weight,check_status,addr"
    row = f"colours,blue,{status},0,{check},10.0.0.2:8080"
    assert parse_stat(f"{header}\n{row}\n")["blue"].checked_up is serving
