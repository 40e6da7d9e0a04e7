"""`seamless-agent serve` as a real process: first-start admin token, sd_notify over a
real unix datagram socket, the CLI against it, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import systemd
from tests.harness import wait_until
from tests.helpers import free_port, http_get

BIN = Path(sys.executable).parent / "seamless-agent"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"seamless-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert systemd.notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"
    assert not systemd.notify("READY=1", {})
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"}) is None


def drain(sock: socket.socket, seconds: float = 1.0) -> list[bytes]:
    """What is queued, plus what arrives within `seconds` (watchdog pings keep coming)."""
    messages = []
    deadline = time.monotonic() + seconds
    sock.settimeout(0.3)
    try:
        while time.monotonic() < deadline:
            messages.append(sock.recv(200))
    except TimeoutError:
        pass
    return messages


@pytest.fixture
def served(tmp_path: Path):
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(20)
    port = free_port()
    data_dir = tmp_path / "data"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000",
           "SEAMLESS_EXECUTOR": "auto", "SEAMLESS_POLL_ENABLED": "false"}
    log = open(tmp_path / "serve.log", "w")  # a pipe nobody reads would block the agent
    proc = subprocess.Popen([str(BIN), "serve", "--port", str(port), "--data-dir",
                             str(data_dir)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, sock, f"http://127.0.0.1:{port}", data_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        sock.close()
        log.close()


def test_serve_first_start_notify_cli_and_sigterm(served) -> None:
    proc, sock, url, data_dir = served
    assert sock.recv(200).startswith(b"READY=1")
    assert sock.recv(200) == b"WATCHDOG=1"
    assert (http_get(f"{url}/healthz") or (0, b""))[0] == 200
    token_file = data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    env = {"SEAMLESS_AGENT_URL": url, "SEAMLESS_DATA_DIR": str(data_dir)}

    assert cli("pipeline", "add", "--name", "shop", env=env).returncode == 0
    created = cli("service", "add", "--name", "web", "--pipeline", "shop",
                  "--repo", "https://github.com/acme/web.git", "--no-check", "--json", env=env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout.splitlines()[-1])["name"] == "web"
    listed = cli("service", "list", "--json", env=env)
    assert [s["name"] for s in json.loads(listed.stdout)] == ["web"]
    bad = cli("service", "add", "--name", "Bad Name", "--pipeline", "shop", "--repo", "x",
              env=env)
    assert bad.returncode == 2 and "name" in bad.stderr
    missing = cli("service", "show", "nope", env=env)
    assert missing.returncode == 3
    viewer = cli("token", "create", "--name", "ci-bot", "--role", "viewer",
                 "--data-dir", str(data_dir))
    denied = cli("pipeline", "add", "--name", "other", "--token", viewer.stdout.strip(),
                 env=env)
    assert denied.returncode == 4 and "403" in denied.stderr
    runs = cli("runs", "--json", env=env)
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.strip() == "[]", (runs.stdout, runs.stderr)

    drain(sock)  # systemd reads as they come; this test only reads now
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert b"STOPPING=1" in drain(sock)
    output = (data_dir.parent / "serve.log").read_text()
    assert "admin token written to" in output and str(token_file) in output
    wait_until(lambda: http_get(f"{url}/healthz") is None, timeout=5, what="port released")
