"""The Docker engine is away (#22 item 3): the agent starts without it and says so in one
line, /healthz reports it (200, `degraded` with the reason), and both come right by
themselves when the engine answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import wait_until
from tests.reliability.served import ServedAgent
from tests.reliability.socket_cut import CuttableEngineSocket


@pytest.mark.slow
def test_the_agent_starts_without_an_engine_in_one_line_and_reports_it(
        serve, tmp_path: Path) -> None:
    engine = CuttableEngineSocket(tmp_path / "engine.sock")  # not listening yet
    agent: ServedAgent = serve(docker_host=engine.url, config={"executor": "docker"})
    try:
        health = wait_until(lambda: (h := agent.call("GET", "/healthz", 200))["status"]
                            == "degraded" and h, timeout=30, what="/healthz degraded")
        assert "Docker engine unreachable" in health["reasons"][0], health
        said = [line for line in agent.own_log().splitlines()
                if "Docker engine unreachable" in line]
        assert len(said) == 1, said
        assert "starts without it" in said[0]
        assert "Traceback" not in agent.own_log()

        engine.start()
        wait_until(lambda: agent.call("GET", "/healthz", 200)["status"] == "ok", timeout=30,
                   what="/healthz ok once the engine answers")
    finally:
        engine.cut()
