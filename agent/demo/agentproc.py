"""`seamless-agent serve` as a subprocess (the demo's agent, and the one the benches and
tests start: tests/harness), and a small REST client for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import tomli_w

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def pick_ports(preferred: list[int], taken: set[int] | None = None) -> list[int]:
    """The preferred ports when free (stable, easy to type), else ephemeral free ones."""
    taken = set(taken or ())
    out = []
    for port in preferred:
        if port in taken or not port_is_free(port):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        taken.add(port)
        out.append(port)
    return out


def agent_command() -> list[str]:
    """`seamless-agent` from the same environment as this interpreter."""
    exe = Path(sys.executable).with_name("seamless-agent")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "agent.cli"]


class ApiError(RuntimeError):
    pass


class Api:
    """Blocking JSON client for the agent's REST API; errors carry the agent's answer."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30.0)
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        resp = self.http.request(method, path, json=json, params=params or None,
                                 headers=self._headers())
        if resp.status_code >= 400:
            raise ApiError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, **params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def raw_post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.http.post(path, content=body, headers=headers)

    def close(self) -> None:
        self.http.close()


# Webhooks trigger every run; polling stays off so a story is deterministic.
DEMO_SETTINGS: dict[str, str | int | bool] = {
    "max_parallel_runs": 4, "executor": "docker", "poll_enabled": False, "log_level": "info"}


class AgentProcess:
    """Starts `seamless-agent serve` with a config file of `settings` (default: the
    demo's); stops it by its own pid."""

    def __init__(self, workdir: Path, data_dir: Path, port: int,
                 settings: dict[str, Any] | None = None,
                 wrap: Callable[[list[str]], list[str]] | None = None) -> None:
        """`wrap`: the command it runs in, e.g. `nsenter --net=…` (a test's own network
        namespace)."""
        self.workdir, self.data_dir, self.port = workdir, data_dir, port
        self.wrap = wrap
        self.settings = DEMO_SETTINGS if settings is None else settings
        self.url = f"http://127.0.0.1:{port}"
        self.config_path = workdir / "agent.toml"
        self.log_path = workdir / "agent.log"
        self.pid_path = workdir / "agent.pid"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        self.config_path.write_text(tomli_w.dumps({
            "data_dir": str(self.data_dir), "host": "127.0.0.1", "port": self.port,
            **self.settings}))

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        # The demo's config file alone decides: SEAMLESS_* variables of the caller's shell
        # (which override the file) must not change the demo.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
        cmd = [*agent_command(), "serve", "--config", str(self.config_path),
               "--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.wrap is not None:
            cmd = self.wrap(cmd)
        with open(self.log_path, "ab") as log_file:
            # Its own session: with --keep the agent outlives the demo (and its terminal).
            self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        self.pid_path.write_text(f"{self.proc.pid}\n")
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {self.proc.returncode}; see "
                                   f"{self.log_path}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    if self.token_path.exists():
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the agent did not answer on {self.url} within {START_TIMEOUT_S:g}"
                           f" s; see {self.log_path}:\n{self.log_tail()}")

    @property
    def token_path(self) -> Path:
        return self.data_dir / "admin-token"

    def admin_token(self) -> str:
        return self.token_path.read_text().strip()

    def api(self) -> Api:
        """A REST client with the admin token."""
        return Api(self.url, self.admin_token())

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, no goodbye (crash and restart-recovery tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
        self.pid_path.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.pid_path.unlink(missing_ok=True)
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.pid_path.unlink(missing_ok=True)
