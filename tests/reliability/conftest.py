"""Fixtures for the reliability suite: served agents in subprocesses, sample repos, cleanup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import unique_name
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
