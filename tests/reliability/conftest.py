"""Fixtures for the reliability suite: served agents in subprocesses, sample repos, cleanup."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import unique_name
from tests.reliability.served import ServedAgent


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


def service_names(agent: ServedAgent) -> list[str]:
    db = agent.data_dir / "seamless.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return [row[0] for row in conn.execute("SELECT name FROM services")]
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def remove_leftovers(client: Any, services: list[str]) -> None:
    for name in services:
        for container in client.containers.list(
                all=True, filters={"label": f"io.seamless.service={name}"}):
            try:
                container.remove(force=True)
            except Exception:
                pass
        for network in client.networks.list(names=[f"seamless-{name}-"]):
            if network.name.startswith(f"seamless-{name}-"):
                try:
                    network.remove()
                except Exception:
                    pass
        for image in client.images.list(name=f"seamless/{name}"):
            for tag in image.tags:
                try:
                    client.images.remove(tag, force=True)
                except Exception:
                    pass


def svc_name(prefix: str) -> str:
    """A unique, slug-valid service name (tests share one engine)."""
    return unique_name(prefix)[:63]
