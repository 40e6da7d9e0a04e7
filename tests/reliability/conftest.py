"""Fixtures for the reliability suite: served agents in subprocesses, sample repos, cleanup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.deploy.front_image import ensure_image
from tests.helpers import unique_name
from tests.reliability.second_engine import SecondEngine
from tests.reliability.served import ServedAgent, remove_leftovers, service_names


@pytest.fixture
def serve(tmp_path: Path, base_image: str, docker_client: Any
          ) -> Iterator[Callable[..., ServedAgent]]:
    """Factory: `serve(**kw)` starts an agent on a fresh data dir under tmp_path. At the
    end every agent is stopped and the containers and networks of its services removed."""
    started: list[ServedAgent] = []

    def start(**kw: Any) -> ServedAgent:
        agent = ServedAgent.start(tmp_path / f"data{len(started)}", **kw)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
        remove_leftovers(docker_client, service_names(agent))


def svc_name(prefix: str) -> str:
    """A unique, slug-valid service name (tests share one engine)."""
    return unique_name(prefix)[:63]


@pytest.fixture(scope="module")
def second_engine(docker_client: Any, base_image: str) -> Iterator[SecondEngine]:
    """A Docker engine of this module's own, in its own network namespace (restarts cost
    seconds: one per module), with the base and front images copied from the host's.
    Serve the agent on it with `serve(docker_host=engine.url, netns=engine.netns)`."""
    engine = SecondEngine.start_new()
    try:
        engine.load_images(docker_client, [base_image, ensure_image(docker_client)])
        yield engine
    finally:
        engine.close()
