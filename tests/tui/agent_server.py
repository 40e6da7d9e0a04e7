"""A real agent (`Agent` + `create_app`) served by uvicorn in a thread on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn

from agent.api.app import create_app
from agent.config import AgentConfig
from agent.runtime import Agent


class AgentServer:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self._agent: Agent | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def agent(self) -> Agent:
        """The agent being served (between start and stop)."""
        if self._agent is None:
            raise RuntimeError("the agent server is not started")
        return self._agent

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AgentServer:
        # Seeded lines carry fixed (old) timestamps: keep retention from pruning them.
        config = AgentConfig(data_dir=self.data_dir, port=self.port, poll_enabled=False,
                             executor="local", log_retention_hours=24 * 365 * 100)
        self._agent = Agent(config)
        uv = uvicorn.Config(create_app(self._agent), host="127.0.0.1", port=self.port,
                            log_level="warning", lifespan="on", ws="websockets-sansio")
        self._server = uvicorn.Server(uv)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the agent did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=20)
        if self._agent is not None:
            self._agent.close()
        self._server = self._thread = self._agent = None
