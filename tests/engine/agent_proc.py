"""Run an agent in its own process, submit one run, then wait to be killed.

Used by the restart-recovery tests: `kill -9` this process mid-stage.
Usage: python -m tests.engine.agent_proc DATA_DIR SERVICE SHA
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agent.config import AgentConfig
from agent.runtime import Agent
from store.models import RunKind, Trigger


async def main(data_dir: str, service_name: str, sha: str) -> None:
    agent = Agent(AgentConfig(data_dir=Path(data_dir), poll_enabled=False, executor="docker"))
    await agent.start()
    service = agent.store.get_service(service_name)
    run = agent.engine.submit(service, trigger=Trigger.manual, kind=RunKind.partial, sha=sha,
                              branch="main")
    print(f"run {run.id}", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
