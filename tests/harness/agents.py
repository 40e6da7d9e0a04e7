"""One way to start an agent for tests and benches.

In the test's process: `agent_running(data_dir, fakes=...)` starts the real `Agent`
(engine, log writer, bus, store) on the caller's event loop. With `Fakes` it runs on the
fake executor, workspaces and deploy target (tests/harness/fakes.py): engine logic in
milliseconds, no Docker. As a subprocess, `seamless-agent serve` the way the demo starts
it: `AgentProcess` (agent/demo/agentproc.py). Served over HTTP in the test's process:
`ServerThread` (server.py) runs `create_app(agent)` under uvicorn in a thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.demo.agentproc import AgentProcess
from agent.runtime import Agent, Parts
from tests.harness.fakes import FakeExecutor, FakeTarget, FakeWorkspaces, fake_targets

__all__ = ["AgentProcess", "Fakes", "agent_config", "agent_running"]


@dataclass
class Fakes:
    """The fake parts an in-process agent runs on; read them back in assertions."""

    executor: FakeExecutor = field(default_factory=FakeExecutor)
    target: FakeTarget = field(default_factory=FakeTarget)

    def parts(self, config: AgentConfig) -> Parts:
        return Parts(docker_executor=self.executor,
                     workspaces=FakeWorkspaces(config.mirrors_dir, config.workspaces_dir),
                     make_target=fake_targets(self.target))


def agent_config(data_dir: Path, **overrides: Any) -> AgentConfig:
    """A test agent's config: its own data dir, no polling, Docker stages, 4 runs at once."""
    fields: dict[str, Any] = dict(data_dir=data_dir, poll_enabled=False,
                                  executor="docker", max_parallel_runs=4)
    fields.update(overrides)
    return AgentConfig(**fields)


@asynccontextmanager
async def agent_running(data_dir: Path, *, fakes: Fakes | None = None,
                        **config: Any) -> AsyncIterator[Agent]:
    """A started agent on this loop; stopped and closed on the way out."""
    settings = agent_config(data_dir, **config)
    agent = Agent(settings, fakes.parts(settings) if fakes else None)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()
        agent.close()
