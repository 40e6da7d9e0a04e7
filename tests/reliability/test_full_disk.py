"""#22 item 5: the agent's data dir fills up (a small tmpfs, filled by the test) while a
stage floods its log. Nothing is lost silently: the stage fails with the count of lines
that could not be stored, new runs are refused with 507 while the disk is below its
floor, /healthz says why, the CLI prints one line, the HTTP connection survives the
errors, and everything resumes by itself once space is freed."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import wait_until
from tests.reliability.conftest import svc_name
from tests.reliability.served import ServedAgent, remove_leftovers, service_names, stage, summary

TMPFS_MB = 64
FLOOR_MB = 8


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0700", "tmpfs",
                    str(mount)], check=True, timeout=30)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def _fill(path: Path) -> None:
    """Write until the file system refuses: not a byte left."""
    chunk = b"\0" * (256 * 1024)
    with open(path, "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        while True:  # the last partial chunk's room
            try:
                fh.write(b"\0" * 512)
            except OSError:
                return


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "seamless-agent"), *args],
                          capture_output=True, text=True, timeout=60)


def _two_requests_on_one_connection(agent: ServedAgent, first: bytes) -> tuple[str, str]:
    """`first` (a raw request), then GET /healthz on the same TCP connection."""
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answers: list[str] = []
    with socket.create_connection(("127.0.0.1", agent.port), timeout=30) as sock:
        stream = sock.makefile("rb")
        for request in (first, second):
            sock.sendall(request)
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                byte = stream.read(1)
                assert byte, f"connection closed by the agent; answers so far: {answers}"
                head += byte
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            answers.append((head + stream.read(length)).decode(errors="replace"))
    return answers[0], answers[1]


@pytest.mark.slow
def test_a_full_disk_fails_the_stage_with_its_lost_lines_refuses_runs_and_resumes(
        small_disk: Path, sample_repo: Any, docker_client: Any) -> None:
    # Outside the tmpfs, so they can be made while it is full: the test's signal to stop,
    # and the flood's count of the lines it printed once it has stopped.
    stop, printed = small_disk.parent / "stop-flood", small_disk.parent / "printed"
    flood = (f"i=0; while [ ! -e {stop} ] && [ $i -lt 30000 ]; do seq $((i*100+1))"
             f" $((i*100+100)); i=$((i+1)); sleep 0.01; done; echo $((i*100)) > {printed}")
    repo = sample_repo("disk")
    agent = ServedAgent.start(small_disk,  # the agent's own log goes beside it, not in it
                              config={"executor": "auto", "min_free_mb": FLOOR_MB})
    try:
        _scenario(agent, repo, flood, stop, printed, small_disk)
    finally:
        agent.stop()
        remove_leftovers(docker_client, service_names(agent))


def _scenario(agent: ServedAgent, repo: Any, flood: str, stop: Path, printed: Path,
              disk: Path) -> None:
    name = svc_name("full-disk")
    agent.add_pipeline("shop", executor="local")
    agent.add_service(name, "shop", repo.url, unit_test_command=flood)
    healthy = httpx.get(f"{agent.url}/healthz", timeout=10).json()
    assert healthy["status"] == "ok" and healthy["storage"]["state"] == "ok", healthy
    run = agent.trigger(name, repo.head_sha, kind="partial")
    agent.wait_run(run["id"], lambda r: stage(r, "Unit Test")["status"] == "in_progress",
                   timeout=120)

    filler = disk / "filler"  # in the data dir: what a runaway workspace would do
    _fill(filler)
    # Once the database itself refuses writes, the local CLI says so in one line.
    token = ["token", "create", "--name", "ops", "--data-dir", str(agent.data_dir)]
    refused = wait_until(lambda: (lambda p: p if p.returncode else None)(_cli(*token)),
                         timeout=60, interval=1, what="the database refusing writes")
    assert "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    assert refused.stderr.startswith("error: ") and "full" in refused.stderr, refused.stderr

    health = httpx.get(f"{agent.url}/healthz", timeout=10).json()
    assert health["status"] == "degraded" and health["storage"]["state"] == "low", health
    assert "min_free_mb" in health["storage"]["detail"], health
    assert any(r.startswith("storage: ") for r in health["reasons"]), health

    with agent.client() as client:
        again = client.post(f"/api/v1/services/{name}/trigger",
                            json={"sha": repo.head_sha, "kind": "partial"})
    assert again.status_code == 507, again.text
    assert again.json()["error"] == "insufficient_storage", again.text
    assert "free" in again.json()["detail"], again.text

    # A write the database refuses: a clear 507, and the connection still serves.
    body = json.dumps({"name": "ci", "role": "viewer"}).encode()
    first, second = _two_requests_on_one_connection(agent, (
        f"POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {agent.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        + body)
    assert first.startswith("HTTP/1.1 507"), first
    assert "disk is full" in first, first
    assert second.startswith("HTTP/1.1 200"), second

    # The stage ends while the disk is still full: its end cannot be recorded yet.
    stop.touch()
    total = int(str(wait_until(lambda: printed.exists() and printed.read_text().strip(),
                               timeout=60, what="the flood to stop")))
    time.sleep(3)  # the agent tries (and fails) to record it
    assert agent.run(run["id"])["status"] == "running"

    filler.unlink()  # space comes back: nobody restarts anything
    wait_until(lambda: httpx.get(f"{agent.url}/healthz", timeout=10).json()["status"] == "ok",
               timeout=30, what="/healthz ok again")
    done = agent.wait_run(run["id"], timeout=60)
    unit = stage(done, "Unit Test")
    assert done["status"] == "failed", summary(done)
    assert unit["status"] == "failed" and unit["error"].startswith("log storage full: "), \
        summary(done)
    lost = int(unit["error"].split(": ")[1].split()[0])
    assert lost > 0
    lines = agent.log_lines(run["id"], "Unit Test")
    assert any(line.startswith("log storage full") for line in lines)
    stored = sum(line.isdigit() for line in lines)
    # Every printed line is stored or counted lost. The count also covers the agent's own
    # lines of the stage (its command, its executor) when they were lost too: at most 3.
    assert total <= stored + lost <= total + 3, (stored, lost, total)

    resumed = agent.trigger(name, repo.head_sha, kind="partial")  # 201: runs taken again
    assert resumed["status"] in {"queued", "running"}
    # (the stop file is there: the new run's flood ends at once)
