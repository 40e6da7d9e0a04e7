"""The Docker engine restarts under deployed services (#22 item 1): every stable port
answers with the build the store records for it, or not at all — never the build that
waits for approval — and serves it again once the engine is back.

Everything runs on a second engine in its own network namespace (second_engine); the
stable ports are forwarded to the host's loopback, so the clients here are plain HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.executors.base import run_prefix
from tests.deploy.hammer import Hammer
from tests.harness import wait_until
from tests.helpers import free_port, http_get
from tests.reliability.conftest import svc_name
from tests.reliability.second_engine import SecondEngine
from tests.reliability.served import ServedAgent, stage, summary
from tests.reliability.test_crash import _served_version


def _approved_v1_and_v2_waiting(agent: ServedAgent, sample_repo: Any, prefix: str
                                ) -> dict[str, Any]:
    """A service whose production runs v1 (approved) while v2 is on staging, waiting for
    approval. Returns its ports and shas."""
    repo = sample_repo(prefix, version="v1")
    name = svc_name(prefix)
    ports = {"staging": free_port(), "production": free_port()}
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                      health_check={"path": "/health", "timeout_s": 30},
                      staging={"kind": "docker", "port": ports["staging"]},
                      production={"kind": "docker", "port": ports["production"]})
    return {"name": name, "repo": repo, "ports": ports}


def _wait_serving(agent: ServedAgent, engine: SecondEngine, port: int, version: str,
                  what: str) -> None:
    def serving() -> bool:
        return _served_version(port) == version

    try:
        wait_until(serving, timeout=60, interval=0.2, what=what)
    except TimeoutError as exc:
        raise AssertionError((str(exc), http_get(f"http://127.0.0.1:{port}/version"),
                              engine.containers(), agent.own_log()[-3000:])) from exc


def _deployed_once(agent: ServedAgent, sample_repo: Any, prefix: str, **service: Any
                   ) -> tuple[str, int, dict[str, Any]]:
    """A service's v1 through a full run (auto-deploy): its name, production port, run."""
    repo = sample_repo(prefix, version="v1")
    name = svc_name(prefix)
    port = free_port()
    agent.add_pipeline("shop", staging={"kind": "docker", "port": free_port()},
                       production={"kind": "docker", "port": port})
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                      health_check={"path": "/health", "timeout_s": 30}, **service)
    run = agent.wait_run(agent.trigger(name, repo.head_sha)["id"], timeout=240)
    assert run["status"] == "success", summary(run)
    return name, port, run


def _until_waiting(agent: ServedAgent, run_id: int) -> dict[str, Any]:
    return agent.wait_run(run_id, lambda r: r["status"] in {"awaiting_approval", "failed"},
                          timeout=240)


@pytest.mark.slow
def test_production_never_serves_the_unapproved_build_across_engine_restarts(
        serve: Any, sample_repo: Any, second_engine: SecondEngine) -> None:
    engine = second_engine
    engine.start()
    agent: ServedAgent = serve(docker_host=engine.url, netns=engine.netns)
    agent.add_pipeline("shop", auto_deploy=False)
    services = [_approved_v1_and_v2_waiting(agent, sample_repo, p)
                for p in ("restart-a", "restart-b")]
    for svc in services:
        svc["v1"] = agent.trigger(svc["name"], svc["repo"].head_sha)
    for svc in services:
        run = _until_waiting(agent, svc["v1"]["id"])
        assert run["status"] == "awaiting_approval", summary(run)
        agent.call("POST", f"/api/v1/runs/{run['id']}/approve", 200, json={"comment": "ok"})
    for svc in services:
        done = agent.wait_run(svc["v1"]["id"], timeout=180)
        assert done["status"] == "success", summary(done)
        svc["v2"] = agent.trigger(svc["name"], svc["repo"].set_version("v2"))
    for svc in services:
        run = _until_waiting(agent, svc["v2"]["id"])
        assert run["status"] == "awaiting_approval", summary(run)
        assert stage(run, "Deploy to Staging")["status"] == "success", summary(run)

    recorded = {"production": "v1", "staging": "v2"}
    ports = {(svc["name"], env): port for svc in services
             for env, port in svc["ports"].items()}
    for port in ports.values():
        engine.netns.forward(port)
    for (_, env), port in ports.items():
        _wait_serving(agent, engine, port, recorded[env], f"{env} on {port} before")

    hammers = {key: Hammer(f"http://127.0.0.1:{port}/version") for key, port in ports.items()}
    for hammer in hammers.values():
        hammer.__enter__()
    try:
        for way in ("stop", "kill -9"):
            engine.stop() if way == "stop" else engine.kill()
            engine.start()
            for (name, env), port in ports.items():
                _wait_serving(agent, engine, port, recorded[env],
                              f"{name} {env} serving {recorded[env]} after an engine {way}")
        seen = {key: hammer.ok for key, hammer in hammers.items()}
        wait_until(lambda: all(h.ok > seen[k] + 5 for k, h in hammers.items()), timeout=30,
                   what="steady answers on every port after the restarts")
    finally:
        for hammer in hammers.values():
            hammer.__exit__()

    for (name, env), hammer in hammers.items():
        assert set(hammer.bodies) == {recorded[env]}, (name, env, hammer.bodies,
                                                      hammer.errors)
    for svc in services:  # the API tells the same story
        deployments = agent.call("GET", f"/api/v1/services/{svc['name']}/deployments", 200,
                                 params={"environment": "production"})
        active = [d for d in deployments if d["status"] == "active"]
        assert [d["sha"] for d in active] == [svc["v1"]["sha"]], deployments
        assert agent.run(svc["v2"]["id"])["status"] == "awaiting_approval"


@pytest.mark.slow
def test_production_comes_back_after_a_kill_9_of_the_engine_with_no_agent_running(
        serve: Any, sample_repo: Any, second_engine: SecondEngine) -> None:
    """Production must not need the agent: after a kill -9 of dockerd, the new engine
    kills what survived of the old one's containers, which Docker records as stopped by
    hand — `unless-stopped` colours stayed down (503 for good) until an agent started
    them. The engine brings them back by itself, the front finds them by name."""
    engine = second_engine
    engine.start()
    agent: ServedAgent = serve(docker_host=engine.url, netns=engine.netns)
    _, port, _ = _deployed_once(agent, sample_repo, "engine-alone")
    engine.netns.forward(port)
    _wait_serving(agent, engine, port, "v1", "production before")
    agent.kill()
    engine.kill()
    engine.start()
    _wait_serving(agent, engine, port, "v1", "production after an engine kill -9, no agent")


@pytest.mark.slow
def test_docker_host_is_honoured_by_stages_builds_compose_and_deploys(
        serve: Any, sample_repo: Any, second_engine: SecondEngine, docker_client: Any) -> None:
    """#22 item 4: with `docker_host` at the second engine, everything a run makes is
    there — stage and compose containers, the image, colours and fronts — none on the
    host's engine."""
    engine = second_engine
    engine.start()
    agent: ServedAgent = serve(docker_host=engine.url, netns=engine.netns)
    instance = agent.call("GET", "/api/v1/info", 200)["instance"]
    since = int(time.time()) - 1
    name, port, run = _deployed_once(agent, sample_repo, "elsewhere",
                                     unit_test_command="sh test.sh",
                                     compose_file="compose.yaml",
                                     integration_test_command="sh integration.sh")
    assert stage(run, "Integration Test")["status"] == "success", summary(run)
    engine.netns.forward(port)
    assert _served_version(port) == "v1"
    until = int(time.time()) + 1

    def made(client: Any) -> set[str]:
        """Names of the containers this agent made there, by its labels and compose's."""
        filters = [{"label": f"io.seamless.agent={instance}"},
                   {"label": f"com.docker.compose.project={run_prefix(instance, run['id'])}"}]
        return {e["Actor"]["Attributes"].get("name", "?") for f in filters
                for e in client.events(since=since, until=until, decode=True,
                                       filters={"type": "container", "event": "create", **f})}

    theirs = engine.client()
    try:
        on_engine = made(theirs)
        images = [t for i in theirs.images.list(name=f"seamless/{name}") for t in i.tags]
    finally:
        theirs.close()
    assert any("unit" in n.lower() for n in on_engine), on_engine  # a stage container
    assert any(n.startswith(run_prefix(instance, run["id"]) + "_") or
               n.startswith(run_prefix(instance, run["id"]) + "-") for n in on_engine), on_engine
    assert {f"seamless-{name}-{env}-{part}" for env in ("staging", "production")
            for part in ("front",)} <= on_engine, on_engine
    assert images == [f"seamless/{name}:{run['sha']}"], images
    assert made(docker_client) == set()
    assert docker_client.containers.list(all=True, filters={
        "label": f"io.seamless.service={name}"}) == []
    assert docker_client.images.list(name=f"seamless/{name}") == []


# The stage prints, then waits for the test's go (a file in its workspace): it cannot end
# by itself however loaded the machine is.
WAITS_FOR_GO = "echo attempt; while [ ! -f /workspace/.go ]; do sleep 0.2; done; echo finished"


def _go(agent: ServedAgent, sha: str) -> None:
    workspace = wait_until(lambda: next(agent.data_dir.glob(f"workspaces/*/{sha}"), None),
                           what="the run's workspace")
    (workspace / ".go").touch()


@pytest.mark.slow
def test_a_stage_whose_container_dies_with_the_engine_fails_saying_so_or_runs_again(
        serve: Any, sample_repo: Any, second_engine: SecondEngine) -> None:
    """#22 item 3: the engine restarts under two running stages. Without the setting the
    stage fails "the Docker engine restarted during the stage" and its exited container
    is removed; with `retry_on_engine_restart` it runs again, once, and succeeds."""
    engine = second_engine
    engine.start()
    agent: ServedAgent = serve(docker_host=engine.url, netns=engine.netns)
    agent.add_pipeline("plain")
    agent.add_pipeline("retrying", retry_on_engine_restart=True)
    repos = {"plain": sample_repo("died"), "retrying": sample_repo("again")}
    names = {pipeline: svc_name(f"engine-{pipeline}") for pipeline in repos}
    runs = {}
    for pipeline, repo in repos.items():
        agent.add_service(names[pipeline], pipeline, repo.url, unit_test_command=WAITS_FOR_GO)
        runs[pipeline] = agent.trigger(names[pipeline], repo.head_sha, kind="partial")
    for run in runs.values():
        agent.wait_run(run["id"], lambda r: "attempt" in agent.log_lines(r["id"], "Unit Test"),
                       timeout=120)

    engine.restart()

    failed = agent.wait_run(runs["plain"]["id"], timeout=180)
    assert failed["status"] == "failed", summary(failed)
    assert "the Docker engine restarted during the stage" in (
        stage(failed, "Unit Test")["error"] or ""), summary(failed)

    def left() -> list[Any]:
        client = engine.client(timeout=10)
        try:
            return list(client.api.containers(all=True, filters={"label": [  # no inspect
                f"io.seamless.service={names['plain']}", "io.seamless.run"]}))
        finally:
            client.close()

    try:
        wait_until(lambda: not left(), timeout=30, what="the exited stage container removed")
    except TimeoutError as exc:
        raise AssertionError(([(c["Names"], c["State"]) for c in left()], [
            line for line in agent.own_log().splitlines() if "remove" in line])) from exc

    again = runs["retrying"]["id"]
    try:
        agent.wait_run(again, lambda r: agent.log_lines(r["id"], "Unit Test").count(
            "attempt") == 2, timeout=180)
    except AssertionError as exc:
        raise AssertionError((str(exc), agent.log_lines(again, "Unit Test"))) from exc
    _go(agent, runs["retrying"]["sha"])
    done = agent.wait_run(again, timeout=120)
    assert done["status"] == "success", summary(done)
    lines = agent.log_lines(again, "Unit Test")
    assert "running the stage again, once (retry_on_engine_restart)" in lines, lines
    assert any("the Docker engine restarted during the stage" in line for line in lines), lines


@pytest.mark.slow
def test_runs_started_while_the_engine_is_stopped_wait_queued_then_start_or_fail_in_time(
        serve: Any, sample_repo: Any, second_engine: SecondEngine) -> None:
    """#22 item 3: a run triggered during an engine outage is not started: it stays
    `queued`, saying "waiting for the Docker engine" (REST, CLI, its first stage's log);
    after `docker_queue_wait_s` it fails saying why; one still waiting when the engine
    returns starts by itself and goes on to production."""
    engine = second_engine
    engine.start()
    agent: ServedAgent = serve(docker_host=engine.url, netns=engine.netns,
                               config={"docker_queue_wait_s": 20})
    repo = sample_repo("patient", version="v1")
    name = svc_name("patient")
    port = free_port()
    agent.add_pipeline("shop", staging={"kind": "docker", "port": free_port()},
                       production={"kind": "docker", "port": port})
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                      unit_test_command="sh test.sh",
                      health_check={"path": "/health", "timeout_s": 30})
    engine.stop()
    try:
        wait_until(lambda: agent.call("GET", "/healthz", 200)["status"] == "degraded",
                   timeout=30, what="the agent to see the engine gone")
        given_up = agent.trigger(name, repo.head_sha)
        held = agent.wait_run(given_up["id"], lambda r: bool(r.get("waiting")), timeout=30)
        assert held["status"] == "queued", summary(held)
        assert "waiting for the Docker engine (up to 20 s)" in held["waiting"], held
        assert all(s["status"] == "idle" for s in held["stages"]), summary(held)
        # The run's field is committed at once; its log line goes through the log writer's
        # batches like every other line, a moment later.
        wait_until(lambda: any("waiting for the Docker engine" in line
                               for line in agent.log_lines(held["id"], "Prepare")),
                   timeout=10, what="the waiting line in Prepare's log")
        shown = subprocess.run(
            [str(Path(sys.executable).parent / "seamless-agent"), "runs", str(held["id"])],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "SEAMLESS_AGENT_URL": agent.url, "SEAMLESS_TOKEN": agent.token})
        assert "queued: waiting for the Docker engine (up to 20 s)" in shown.stdout, shown

        failed = agent.wait_run(given_up["id"], timeout=90)
        assert failed["status"] == "failed", summary(failed)
        assert "the Docker engine did not answer for 20 s: the run did not start" in (
            failed["error"] or ""), summary(failed)
        assert failed["waiting"] is None and failed["started_at"] is None, failed

        run = agent.trigger(name, repo.head_sha)
        agent.wait_run(run["id"], lambda r: bool(r.get("waiting")), timeout=30)
    finally:
        engine.start()
    done = agent.wait_run(run["id"], timeout=240)
    assert done["status"] == "success", summary(done)
    assert "the Docker engine answers again: the run starts" in agent.log_lines(
        run["id"], "Prepare")
    engine.netns.forward(port)
    assert _served_version(port) == "v1"
