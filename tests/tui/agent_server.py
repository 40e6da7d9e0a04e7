"""A real agent (`Agent` + `create_app`) served by uvicorn in a thread on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from agent.api.app import create_app
from agent.runtime import Agent, Parts
from tests.harness import FakeExecutor, agent_config
from tests.harness.server import ServerThread


class AgentServer:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self._agent: Agent | None = None
        self._server: ServerThread | None = None

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
        config = agent_config(self.data_dir, port=self.port, executor="auto",
                              log_retention_hours=24 * 365 * 100)
        # The seeded pipelines run their stages on the host (`executor: local`); the rest
        # would go to the fake, so the header's "docker not used" does not hang on an engine.
        self._agent = Agent(config, Parts(docker_executor=FakeExecutor()))
        self._server = ServerThread(create_app(self._agent), self.port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self._agent is not None:
            self._agent.close()
        self._server = self._agent = None
