"""The journey's agent in a process of its own, as in real use (a systemd service): the
tests' tmux polling and the bench's clock then do not share a GIL with an agent streaming
10,000 lines/s through its log writer, masker and local stage pumps.

`python -m tests.tui_terminal.agent_process DATA_DIR PORT` serves the (already seeded)
data dir until its stdin closes."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx

from store.models import Role
from tests.tui.seed import Seeded

REPO_ROOT = Path(__file__).resolve().parents[2]
START_BOUND_S = 120.0
STOP_BOUND_S = 30.0


class AgentProcess:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AgentProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self._proc = proc = subprocess.Popen(
            [sys.executable, "-m", "tests.tui_terminal.agent_process", str(self.data_dir),
             str(self.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=REPO_ROOT, env=env)
        assert proc.stdout is not None
        deadline = time.monotonic() + START_BOUND_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                if line.startswith("READY"):
                    return self
                if not line:
                    break  # it exited
        self.stop()
        raise AssertionError(f"the agent process did not start within {START_BOUND_S:g} s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the child stops its agent (local stages first) and exits
        try:
            proc.wait(STOP_BOUND_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class ProcessAgent:
    """A seeded agent served by an AgentProcess: what the journey needs of LiveAgent."""

    def __init__(self, server: AgentProcess, seeded: Seeded) -> None:
        self.server, self.seeded = server, seeded

    @property
    def url(self) -> str:
        return self.server.url

    def http(self, role: Role = Role.admin) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, headers={
            "Authorization": f"Bearer {self.seeded.tokens[role]}"})


def _serve(data_dir: Path, port: int) -> None:
    from tests.tui.agent_server import AgentServer

    server = AgentServer(data_dir, port).start()
    print("READY", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        server.stop()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), int(sys.argv[2]))
