"""The engine fails under a run: the run fails with a clear reason, the agent keeps
serving, and runs of other services are unaffected."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store.models.repos import repo_key
from tests.harness import wait_until
from tests.reliability.conftest import svc_name
from tests.reliability.second_engine import SecondEngine
from tests.reliability.served import ServedAgent, stage, summary
from tests.reliability.socket_cut import CuttableEngineSocket
from tests.reliability.test_engine_restart import WAITS_FOR_GO, _go


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[CuttableEngineSocket]:
    sock = CuttableEngineSocket(tmp_path / "engine.sock").start()
    yield sock
    sock.cut()


@pytest.mark.slow
def test_engine_going_away_mid_stage_waits_and_re_attaches_to_the_surviving_container(
        serve, sample_repo, engine_socket: CuttableEngineSocket) -> None:
    """#22 item 3: the engine stops answering under a running stage (its container keeps
    running): the stage waits for it, /healthz says degraded, and once it answers the
    stage is re-attached — its output once, its own exit code."""
    repo = sample_repo("vanishing")
    agent: ServedAgent = serve(docker_host=engine_socket.url)
    agent.add_pipeline("shop")
    name = svc_name("engine-cut")
    agent.add_service(name, "shop", repo.url, unit_test_command=WAITS_FOR_GO)
    run = agent.trigger(name, repo.head_sha, kind="partial")
    agent.wait_run(run["id"], lambda r: "attempt" in agent.log_lines(r["id"], "Unit Test"),
                   timeout=120)

    engine_socket.cut()
    agent.wait_run(run["id"], lambda r: any(
        "waiting for the Docker engine" in line for line in agent.log_lines(r["id"],
                                                                            "Unit Test")))
    health = wait_until(lambda: (h := agent.call("GET", "/healthz", 200))["status"]
                        == "degraded" and h, timeout=30, what="/healthz degraded")
    assert "Docker engine unreachable" in " ".join(health["reasons"]), health
    _go(agent, run["sha"])  # the container finishes while the agent cannot see it
    assert agent.run(run["id"])["status"] == "running"

    engine_socket.start()
    done = agent.wait_run(run["id"], timeout=120)
    assert done["status"] == "success", summary(done)
    lines = agent.log_lines(run["id"], "Unit Test")
    assert lines.count("attempt") == 1 and lines.count("finished") == 1, lines
    wait_until(lambda: agent.call("GET", "/healthz", 200)["status"] == "ok", timeout=30,
               what="/healthz ok again")
    assert agent.integrity_check() == "ok"


@pytest.mark.slow
def test_missing_stage_image_fails_clearly_beside_a_healthy_run(serve, sample_repo) -> None:
    repo = sample_repo("imageless")
    agent: ServedAgent = serve()
    agent.add_pipeline("shop")
    broken, healthy = svc_name("no-image"), svc_name("healthy")
    missing = f"seamless-test/does-not-exist-{uuid.uuid4().hex[:8]}:latest"
    agent.add_service(broken, "shop", repo.url, stage_image=missing,
                      unit_test_command="echo never")
    agent.add_service(healthy, "shop", repo.url, unit_test_command="sleep 1; echo fine")
    bad = agent.trigger(broken, repo.head_sha, kind="partial")
    good = agent.trigger(healthy, repo.head_sha, kind="partial")

    bad_done = agent.wait_run(bad["id"], timeout=90)
    assert bad_done["status"] == "failed", summary(bad_done)
    assert missing in (bad_done["error"] or ""), summary(bad_done)
    good_done = agent.wait_run(good["id"], timeout=90)
    assert good_done["status"] == "success", summary(good_done)
    assert "fine" in agent.log_lines(good["id"], "Unit Test")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, filled to the last byte."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={mount}/fill", "bs=4k"],
                       capture_output=True)  # exits non-zero once the disk is full
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_full_workspace_disk_fails_clearly_beside_a_healthy_run(
        serve, sample_repo, tiny_disk: Path) -> None:
    repo, other_repo = sample_repo("crowded"), sample_repo("roomy")
    agent: ServedAgent = serve()
    agent.add_pipeline("shop")
    full, healthy = svc_name("disk-full"), svc_name("healthy")
    agent.add_service(full, "shop", repo.url, unit_test_command="echo never")
    agent.add_service(healthy, "shop", other_repo.url, unit_test_command="sleep 1; echo fine")
    # the full disk holds this repository's workspaces (a bind mount, as a quota'd volume
    # would); the healthy service's repository is elsewhere
    ws = agent.data_dir / "workspaces" / repo_key(repo.url)
    ws.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(tiny_disk), str(ws)], check=True)
    try:
        bad = agent.trigger(full, repo.head_sha, kind="partial")
        good = agent.trigger(healthy, other_repo.head_sha, kind="partial")
        bad_done = agent.wait_run(bad["id"], timeout=90)
        good_done = agent.wait_run(good["id"], timeout=90)
    finally:
        subprocess.run(["umount", "-l", str(ws)], check=False)
    assert bad_done["status"] == "failed", summary(bad_done)
    assert stage(bad_done, "Prepare")["status"] == "failed", summary(bad_done)
    assert "No space left on device" in (bad_done["error"] or ""), summary(bad_done)
    assert good_done["status"] == "success", summary(good_done)
    assert agent.call("GET", "/healthz", 200)["status"] == "ok"
    assert agent.integrity_check() == "ok"


SLOW_STEP = "RUN echo slow-step && sleep 20\n"  # a build step still running at the restart


@pytest.mark.slow
def test_build_and_compose_test_cut_off_by_an_engine_restart_fail_saying_so_or_run_again(
        serve: Any, sample_repo: Any, second_engine: SecondEngine) -> None:
    """#22 item 3: dockerd killed and started again under two Builds and two compose
    Integration Tests. Without `retry_on_engine_restart` each fails "the Docker engine
    restarted during the stage" (not the engine's raw error); with it each runs again,
    once, and succeeds. Nothing the cut-off attempts made stays on the engine (the dead
    build's intermediate container, the compose project)."""
    engine = second_engine
    engine.start()
    agent: ServedAgent = serve(docker_host=engine.url, netns=engine.netns)
    agent.add_pipeline("plain")
    agent.add_pipeline("retrying", retry_on_engine_restart=True)
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for pipeline in ("plain", "retrying"):
        repo = sample_repo(f"compose-{pipeline}")
        name = svc_name(f"compose-{pipeline}")
        agent.add_service(name, pipeline, repo.url, dockerfile="Dockerfile",
                          compose_file="compose.yaml", integration_test_command=WAITS_FOR_GO)
        runs["compose", pipeline] = agent.trigger(name, repo.head_sha, kind="partial")
    for run in (runs["compose", "plain"], runs["compose", "retrying"]):
        agent.wait_run(run["id"], lambda r: "attempt" in agent.log_lines(
            r["id"], "Integration Test"), timeout=180)
    for pipeline in ("plain", "retrying"):
        repo = sample_repo(f"build-{pipeline}")
        dockerfile = (repo.path / "Dockerfile").read_text()
        sha = repo.commit("a slow build step", {"Dockerfile": dockerfile + SLOW_STEP})
        name = svc_name(f"build-{pipeline}")
        agent.add_service(name, pipeline, repo.url, dockerfile="Dockerfile")
        runs["build", pipeline] = agent.trigger(name, sha, kind="partial")
    for run in (runs["build", "plain"], runs["build", "retrying"]):
        agent.wait_run(run["id"], lambda r: "slow-step" in agent.log_lines(r["id"], "Build"),
                       timeout=180)

    engine.kill()  # dockerd gone at once (a SIGTERM lets a build finish first)
    engine.start()

    for kind, stage_name in (("build", "Build"), ("compose", "Integration Test")):
        failed = agent.wait_run(runs[kind, "plain"]["id"], timeout=240)
        assert failed["status"] == "failed", summary(failed)
        error = stage(failed, stage_name)["error"] or ""
        assert error.startswith("the Docker engine restarted during the stage"), (
            summary(failed), agent.log_lines(failed["id"], stage_name))

    compose_again = runs["compose", "retrying"]
    agent.wait_run(compose_again["id"], lambda r: agent.log_lines(
        r["id"], "Integration Test").count("attempt") == 2, timeout=240)
    _go(agent, compose_again["sha"])
    for kind, stage_name in (("build", "Build"), ("compose", "Integration Test")):
        run_id = runs[kind, "retrying"]["id"]
        done = agent.wait_run(run_id, timeout=240)
        lines = agent.log_lines(run_id, stage_name)
        assert done["status"] == "success", (summary(done), lines)
        assert "running the stage again, once (retry_on_engine_restart)" in lines, lines
        assert any(line.startswith("the Docker engine restarted during the stage")
                   for line in lines), lines

    def compose_networks() -> list[str]:
        client = engine.client(timeout=10)
        try:
            return [n["Name"] for n in client.api.networks(
                filters={"label": "com.docker.compose.project"})]
        finally:
            client.close()

    try:  # the stage, compose and the dead builds' containers all removed
        wait_until(lambda: not engine.containers() and not compose_networks(), timeout=60,
                   what="no container and no compose network left on the engine")
    except TimeoutError as exc:
        raise AssertionError((engine.containers(), compose_networks(),
                              agent.own_log()[-3000:])) from exc
