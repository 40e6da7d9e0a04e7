"""kill -9 the served agent at the worst moments; after a restart nothing is lost.

Each test ends with SQLite's own `PRAGMA integrity_check`.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import wait_until
from tests.helpers import free_port
from tests.reliability.conftest import svc_name
from tests.reliability.served import ServedAgent, stage, summary

# 200,000 numbered lines in bursts of 1,000, so the kill lands while the container prints.
FLOOD_LINES = 200_000
FLOOD = ("i=0; while [ $i -lt 200 ]; do seq $((i*1000+1)) $((i*1000+1000)); i=$((i+1)); "
         "sleep 0.02; done")
SLOW = "i=0; while [ $i -lt 40 ]; do echo tick-$i; i=$((i+1)); sleep 0.1; done"


def _stdout_lines(data_dir: Path, run_id: int, stage_name: str) -> list[str]:
    conn = sqlite3.connect(data_dir / "seamless.db")
    try:
        rows = conn.execute("SELECT text FROM log_lines WHERE run_id=? AND stage=? AND "
                            "stream='stdout' ORDER BY id", (run_id, stage_name)).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def _first_difference(got: list[str], want: list[str]) -> str:
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"line {i}: got {a!r}, want {b!r} (around: {got[max(0, i - 3):i + 3]})"
    return f"lengths differ: {len(got)} stored, {len(want)} printed"


@pytest.mark.slow
def test_kill_during_a_stage_resumes_the_run_to_success(serve, sample_repo) -> None:
    repo = sample_repo("orders")
    agent: ServedAgent = serve()
    name = svc_name("crash-stage")
    agent.add_pipeline("shop")
    agent.add_service(name, "shop", repo.url, code_quality_command=SLOW,
                      unit_test_command="sh test.sh")
    run = agent.trigger(name, repo.head_sha, kind="partial")
    agent.wait_run(run["id"], lambda r: len(_stdout_lines(agent.data_dir, r["id"],
                                                          "Code Quality")) >= 5, timeout=60)
    agent.restart()

    done = agent.wait_run(run["id"])
    assert done["status"] == "success", summary(done)
    assert stage(done, "Unit Test")["status"] == "success"
    assert _stdout_lines(agent.data_dir, run["id"], "Code Quality") == [
        f"tick-{i}" for i in range(40)]
    assert agent.integrity_check() == "ok"


@pytest.mark.slow
def test_kill_during_a_log_flood_keeps_every_line_exactly_once(serve, sample_repo) -> None:
    repo = sample_repo("flood")
    agent: ServedAgent = serve()
    name = svc_name("crash-flood")
    agent.add_pipeline("shop")
    agent.add_service(name, "shop", repo.url, unit_test_command=FLOOD)
    run = agent.trigger(name, repo.head_sha, kind="partial")
    wait_until(lambda: len(_stdout_lines(agent.data_dir, run["id"], "Unit Test")) >= 20_000,
               timeout=90, interval=0.2, what="the flood to be half-way stored")
    agent.kill()
    stored_at_kill = len(_stdout_lines(agent.data_dir, run["id"], "Unit Test"))
    agent.spawn()

    done = agent.wait_run(run["id"], timeout=180)
    assert done["status"] == "success", summary(done)
    got = _stdout_lines(agent.data_dir, run["id"], "Unit Test")
    want = [str(i) for i in range(1, FLOOD_LINES + 1)]
    assert stored_at_kill < FLOOD_LINES
    assert got == want, _first_difference(got, want)
    assert agent.integrity_check() == "ok"


def _served_version(port: int) -> str | None:
    try:
        resp = httpx.get(f"http://127.0.0.1:{port}/version", timeout=2)
    except httpx.HTTPError:
        return None
    return resp.text.strip() if resp.status_code == 200 else None


def _docker_pipeline(agent: ServedAgent, name: str, prod_port: int, **fields: Any) -> None:
    agent.add_pipeline(name, staging={"kind": "docker", "port": free_port()},
                       production={"kind": "docker", "port": prod_port}, **fields)


@pytest.mark.slow
def test_kill_during_a_blue_green_switch_keeps_production_serving(
        serve, sample_repo, docker_client) -> None:
    repo = sample_repo("front", version="v1")
    agent: ServedAgent = serve()
    name = svc_name("crash-bg")
    port = free_port()
    _docker_pipeline(agent, "shop", port)
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                      health_check={"path": "/health", "timeout_s": 30})
    first = agent.wait_run(agent.trigger(name, repo.head_sha)["id"], timeout=120)
    assert first["status"] == "success", summary(first)
    assert _served_version(port) == "v1"

    live = docker_client.containers.list(filters={"label": [
        f"io.seamless.service={name}", "io.seamless.environment=production"]})
    new_colour = "green" if live[0].labels.get("io.seamless.colour") == "blue" else "blue"
    second = agent.trigger(name, repo.set_version("v2"))
    wait_until(lambda: docker_client.containers.list(
        filters={"name": f"seamless-{name}-production-{new_colour}"}),
        timeout=120, interval=0.05, what="the new colour to start")
    agent.kill()
    agent.spawn()

    done = agent.wait_run(second["id"], timeout=60)
    assert done["status"] in {"success", "failed"}, done
    if done["status"] == "failed":
        assert "restarted during Deploy to Production" in (done["error"] or ""), done
    served = wait_until(lambda: _served_version(port), timeout=30,
                        what="production answering on its stable port")
    assert served in {"v1", "v2"}
    # the deployment record tells which one: the live row matches what is served
    deployments = agent.call("GET", f"/api/v1/services/{name}/deployments",
                             200, params={"environment": "production"})
    assert not [d for d in deployments if d["status"] == "in_progress"], deployments
    active = [d for d in deployments if d["status"] == "active"]
    assert len(active) == 1 and active[0]["sha"] in {first["sha"], second["sha"]}, deployments
    assert (served == "v2") == (active[0]["sha"] == second["sha"])
    assert agent.integrity_check() == "ok"


@pytest.mark.slow
def test_kill_while_awaiting_approval_keeps_it_pending(serve, sample_repo) -> None:
    repo = sample_repo("gate", version="v1")
    agent: ServedAgent = serve()
    name = svc_name("crash-gate")
    port = free_port()
    _docker_pipeline(agent, "shop", port, auto_deploy=False)
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile")
    run = agent.trigger(name, repo.head_sha)
    agent.wait_run(run["id"], lambda r: r["status"] == "awaiting_approval", timeout=120)
    agent.restart()

    time.sleep(1)  # give a wrong recovery the chance to move the run
    again = agent.run(run["id"])
    assert again["status"] == "awaiting_approval"
    assert stage(again, "Deploy to Production")["status"] == "awaiting_approval"
    assert agent.call("GET", f"/api/v1/runs/{run['id']}/approval", 200)["status"] == "pending"
    pending = agent.call("GET", "/api/v1/approvals", 200, params={"status": "pending"})
    assert [a["run_id"] for a in pending] == [run["id"]]

    agent.call("POST", f"/api/v1/runs/{run['id']}/approve", 200, json={"comment": "ok"})
    done = agent.wait_run(run["id"], timeout=90)
    assert done["status"] == "success", summary(done)
    assert stage(done, "Deploy to Production")["status"] == "success"
    assert _served_version(port) == "v1"
    assert agent.integrity_check() == "ok"
