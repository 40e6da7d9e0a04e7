"""#22 item 2: kill -9 the served agent at the worst moments of a production deploy, then
start it again. Whatever the kill cut, the production port serves the build the store
records as active, no stray colour is left, and the run and deployment records say what
actually happened.

The kills are timed by the Docker engine's own events for the service's containers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agent.deploy.front_api import FrontApi, parse_stat
from tests.harness import wait_until
from tests.helpers import free_port
from tests.reliability.conftest import svc_name
from tests.reliability.served import ServedAgent, stage, summary
from tests.reliability.test_crash import _docker_pipeline, _served_version

PROD = "Deploy to Production"


@contextmanager
def on_engine_event(client: Any, name: str, react: Callable[[dict[str, Any]], bool]
                    ) -> Iterator[threading.Event]:
    """Calls `react` with every event of `name`'s production containers (in the engine's
    order) until it returns True; the yielded flag is set then (or when `react` raised,
    which the thread reports)."""
    stream = client.events(decode=True, filters={
        "type": "container", "label": [f"io.seamless.service={name}",
                                       "io.seamless.environment=production"]})
    done = threading.Event()

    def watch() -> None:
        try:
            for event in stream:
                if react(event):
                    return
        finally:
            done.set()  # also when `react` raised: the test fails at once, not at a timeout

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stream.close()
        thread.join(10)


def _deployed_v1(serve: Any, sample_repo: Any, prefix: str) -> tuple[ServedAgent, Any, str,
                                                                       int, dict[str, Any]]:
    repo = sample_repo(prefix, version="v1")
    agent: ServedAgent = serve()
    name = svc_name(prefix)
    port = free_port()
    _docker_pipeline(agent, "shop", port)
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                      health_check={"path": "/health", "timeout_s": 30})
    first = agent.wait_run(agent.trigger(name, repo.head_sha)["id"], timeout=180)
    assert first["status"] == "success", summary(first)
    assert _served_version(port) == "v1"
    return agent, repo, name, port, first


def _production(agent: ServedAgent, name: str) -> list[dict[str, Any]]:
    return agent.call("GET", f"/api/v1/services/{name}/deployments", 200,  # type: ignore[no-any-return]
                      params={"environment": "production"})


def _colours(docker_client: Any, name: str) -> list[Any]:
    return docker_client.containers.list(all=True, filters={"label": [
        f"io.seamless.service={name}", "io.seamless.environment=production",
        "io.seamless.colour"]})


@pytest.mark.slow
def test_killed_when_the_old_colour_is_destroyed_the_new_build_is_recorded_as_serving(
        serve, sample_repo, docker_client) -> None:
    agent, repo, name, port, first = _deployed_v1(serve, sample_repo, "kill-destroy")
    [old] = _colours(docker_client, name)
    db = sqlite3.connect(agent.data_dir / "seamless.db", timeout=60, isolation_level=None,
                         check_same_thread=False)
    held: list[bool] = []

    def react(event: dict[str, Any]) -> bool:
        if event["Actor"]["Attributes"].get("name") != old.name:
            return False
        if event["Action"] == "kill" and not held:
            # The old colour is being stopped: the switch is done. Hold the database's
            # write lock so the agent cannot record the deploy before the kill lands.
            db.execute("BEGIN IMMEDIATE")
            held.append(True)
        if event["Action"] == "destroy":
            agent.kill()
            return True
        return False

    with on_engine_event(docker_client, name, react) as killed:
        second = agent.trigger(name, repo.set_version("v2"))
        assert killed.wait(240), "the old colour was never destroyed"
    assert held, "the old colour was removed without being stopped"
    db.execute("ROLLBACK")
    [(status,)] = db.execute("SELECT status FROM deployments WHERE run_id=? AND"
                             " environment='production'", (second["id"],)).fetchall()
    db.close()
    assert status == "in_progress"  # the kill cut the deploy before it was recorded

    agent.spawn()
    done = agent.wait_run(second["id"], timeout=120)
    assert _served_version(port) == "v2"
    deployments = _production(agent, name)
    assert [(d["sha"], d["status"]) for d in deployments] == [
        (second["sha"], "active"), (first["sha"], "superseded")], deployments
    assert done["status"] == "success", summary(done)
    assert "the switch had finished" in "\n".join(agent.log_lines(second["id"], PROD))
    assert [c.labels["io.seamless.sha"] for c in _colours(docker_client, name)] == [
        second["sha"]]
    audit = agent.call("GET", "/api/v1/audit", 200)
    assert any(e["action"] == "deployment reconciled" and "recorded active" in e["detail"]
               for e in audit), audit
    assert agent.integrity_check() == "ok"


@pytest.mark.slow
def test_killed_while_the_new_colour_starts_the_deploy_is_interrupted_and_removed(
        serve, sample_repo, docker_client) -> None:
    agent, repo, name, port, first = _deployed_v1(serve, sample_repo, "kill-start")
    [old] = _colours(docker_client, name)

    def react(event: dict[str, Any]) -> bool:
        attributes = event["Actor"]["Attributes"]
        if event["Action"] == "start" and attributes.get("name") != old.name \
                and attributes.get("io.seamless.colour"):
            agent.kill()  # the new colour runs, with production's secrets, not yet serving
            return True
        return False

    with on_engine_event(docker_client, name, react) as killed:
        second = agent.trigger(name, repo.set_version("v2"))
        assert killed.wait(240), "the new colour never started"
    assert len(_colours(docker_client, name)) == 2

    agent.spawn()
    done = agent.wait_run(second["id"], timeout=120)
    assert _served_version(port) == "v1"
    assert [c.name for c in _colours(docker_client, name)] == [old.name]
    deployments = _production(agent, name)
    assert [(d["sha"], d["status"]) for d in deployments] == [
        (second["sha"], "interrupted"), (first["sha"], "active")], deployments
    assert f"{first['sha'][:12]} stays live" in deployments[0]["error"]
    assert done["status"] == "failed", summary(done)
    error = stage(done, PROD)["error"]
    assert "restarted during Deploy to Production" in error and "interrupted" in error, error
    assert agent.integrity_check() == "ok"


@pytest.mark.slow
def test_an_active_colour_gone_while_the_agent_was_down_is_started_again(
        serve, sample_repo, docker_client) -> None:
    agent, _, name, port, first = _deployed_v1(serve, sample_repo, "kill-gone")
    agent.kill()
    [live] = _colours(docker_client, name)
    live.remove(force=True)  # lost meanwhile (an operator, a crash of the engine's disk)
    wait_until(lambda: _served_version(port) is None, timeout=30, what="production down")

    agent.spawn()  # the front finds the colour made again by name within seconds
    assert wait_until(lambda: _served_version(port), timeout=30,
                      what="production serving again") == "v1"
    [again] = _colours(docker_client, name)
    assert again.labels["io.seamless.sha"] == first["sha"]
    assert [(d["sha"], d["status"]) for d in _production(agent, name)] == [
        (first["sha"], "active")]


@pytest.mark.slow
def test_an_active_build_that_cannot_be_served_again_degrades_healthz(
        serve, sample_repo, docker_client) -> None:
    agent, _, name, port, first = _deployed_v1(serve, sample_repo, "kill-lost")
    agent.kill()
    [live] = _colours(docker_client, name)
    image = live.image.tags[0]
    live.remove(force=True)
    docker_client.images.remove(image, force=True)  # nothing left to start it from

    agent.spawn()
    health = agent.call("GET", "/healthz", 200)
    assert health["status"] == "degraded", health
    assert any(f"{name}/production: {first['sha'][:12]} is recorded active but could not be"
               " served" in reason for reason in health["reasons"]), health
    assert _served_version(port) is None


@pytest.mark.slow
def test_killed_during_a_canary_step_the_stable_build_takes_all_traffic_again(
        serve, sample_repo, docker_client) -> None:
    repo = sample_repo("kill-canary", version="v1")
    agent: ServedAgent = serve()
    name = svc_name("kill-canary")
    port = free_port()
    canary = {"steps": [50, 100], "bake_s": 600, "min_requests": 5}  # holds at 50/50
    agent.add_pipeline("shop", staging={"kind": "docker", "port": free_port()},
                       production={"kind": "docker", "port": port, "strategy": "canary",
                                   "canary": canary})
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                      health_check={"path": "/health", "timeout_s": 30})
    first = agent.wait_run(agent.trigger(name, repo.head_sha)["id"], timeout=180)
    assert first["status"] == "success", summary(first)
    [old] = _colours(docker_client, name)
    second = agent.trigger(name, repo.set_version("v2"))
    api = FrontApi(agent.data_dir / "fronts" / f"{name}-production" / "run")

    def split() -> bool:
        try:
            weights = [s.weight for s in parse_stat(api("show stat")).values()]
        except Exception:
            return False
        return len([w for w in weights if w]) == 2

    wait_until(split, timeout=240, interval=0.2, what="the canary step taking traffic")
    agent.kill()

    agent.spawn()
    done = agent.wait_run(second["id"], timeout=120)
    assert done["status"] == "failed", summary(done)
    assert wait_until(lambda: _served_version(port), timeout=30, what="production") == "v1"
    assert {v for v in (_served_version(port) for _ in range(20))} == {"v1"}
    assert [c.name for c in _colours(docker_client, name)] == [old.name]
    assert [(d["sha"], d["status"]) for d in _production(agent, name)] == [
        (second["sha"], "interrupted"), (first["sha"], "active")]
