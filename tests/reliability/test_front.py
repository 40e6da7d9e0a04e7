"""Production traffic does not go through the agent: the HAProxy front keeps serving
while the agent is stopped or killed, and comes back by itself if its process dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.deploy.front_api import FrontApi, parse_stat
from tests.deploy.hammer import Hammer
from tests.harness import wait_until
from tests.helpers import free_port, http_get
from tests.reliability.conftest import svc_name
from tests.reliability.served import ServedAgent, summary
from tests.reliability.test_crash import _docker_pipeline, _served_version


def _deployed(serve: Any, sample_repo: Any, prefix: str) -> tuple[ServedAgent, str, int]:
    repo = sample_repo(prefix, version="v1")
    agent: ServedAgent = serve()
    name = svc_name(prefix)
    port = free_port()
    _docker_pipeline(agent, "shop", port)
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                      health_check={"path": "/health", "timeout_s": 30})
    run = agent.wait_run(agent.trigger(name, repo.head_sha)["id"], timeout=120)
    assert run["status"] == "success", summary(run)
    return agent, name, port


@pytest.mark.slow
def test_production_answers_across_agent_stops_and_kill_9s(serve, sample_repo) -> None:
    agent, _, port = _deployed(serve, sample_repo, "front-agent")
    with Hammer(f"http://127.0.0.1:{port}/version") as hammer:
        wait_until(lambda: hammer.ok > 20, what="requests before the first stop")
        for way in ("stop", "kill -9", "kill -9"):
            agent.stop() if way == "stop" else agent.kill()
            seen = hammer.ok
            wait_until(lambda seen=seen: hammer.ok > seen + 50, timeout=30,  # type: ignore[misc]
                       what=f"production answering while the agent is away ({way})")
            agent.spawn()
        seen = hammer.ok
        wait_until(lambda: hammer.ok > seen + 20, what="requests after the last start")
    assert hammer.failed == 0, hammer.errors
    assert set(hammer.bodies) == {"v1"}


@pytest.mark.slow
def test_a_front_whose_process_dies_comes_back_by_itself(
        serve, sample_repo, docker_client) -> None:
    agent, name, port = _deployed(serve, sample_repo, "front-self")
    agent.kill()  # no agent to help
    front = docker_client.containers.get(f"seamless-{name}-production-front")
    os.kill(front.attrs["State"]["Pid"], signal.SIGKILL)  # HAProxy itself dies
    time.sleep(0.2)
    assert wait_until(lambda: _served_version(port), timeout=30,
                      what="the front restarted by its restart policy") == "v1"

    # The front drifted from the store while no agent ran (weight 0 on the live colour):
    # the agent's start puts it back.
    api = FrontApi(agent.data_dir / "fronts" / f"{name}-production" / "run")
    live = next(c for c, s in parse_stat(api("show stat")).items() if s.weight)
    api(f"set server colours/{live} weight 0")
    assert wait_until(lambda: http_get(f"http://127.0.0.1:{port}/version"),
                      what="an answer")[0] == 503
    agent.spawn()
    assert _served_version(port) == "v1"


@pytest.mark.slow
def test_a_held_canary_is_promoted_from_the_cli_and_audited(serve, sample_repo) -> None:
    repo = sample_repo("front-canary", version="v1")
    agent: ServedAgent = serve()
    name = svc_name("front-canary")
    port = free_port()
    canary = {"steps": [10, 100], "bake_s": 1, "min_requests": 5}
    agent.add_pipeline("shop", staging={"kind": "docker", "port": free_port()},
                       production={"kind": "docker", "port": port, "strategy": "canary",
                                   "canary": canary})
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                      health_check={"path": "/health", "timeout_s": 30})
    first = agent.wait_run(agent.trigger(name, repo.head_sha)["id"], timeout=120)
    assert first["status"] == "success", summary(first)
    second = agent.trigger(name, repo.set_version("v2"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "seamless-agent"), *args,
                               "--agent", agent.url, "--token", agent.token],
                              capture_output=True, text=True, timeout=60)

    def held() -> bool:  # no traffic at all: the step holds, inconclusive
        status = json.loads(cli("canary", "status", name, "production", "--json").stdout)
        return status["running"] and any(m["verdict"] == "inconclusive"
                                         for m in status["measurements"])

    wait_until(held, timeout=120, interval=0.5, what="the canary step to hold")
    assert _served_version(port) in {"v1", "v2"}
    promoted = cli("canary", "promote", name, "production")
    assert promoted.returncode == 0, promoted.stderr
    done = agent.wait_run(second["id"], timeout=60)
    assert done["status"] == "success", summary(done)
    assert _served_version(port) == "v2"
    assert "promoted by admin" in "\n".join(agent.log_lines(second["id"],
                                                            "Deploy to Production"))
    audit = agent.call("GET", "/api/v1/audit", 200)
    assert any(e["action"] == "canary promote" and e["target"] == f"{name}/production"
               for e in audit), audit
    refused = cli("canary", "abort", name, "production")
    assert refused.returncode != 0 and "no canary is running" in refused.stderr
