"""Polling a git remote that accepts connections and never answers (#21.8): the
poller's git runs like every other git of the agent — its whole process group killed at
the timeout or when the agent stops, in threads of its own, never on the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agent.engine.workspace import WorkspaceError
from agent.triggers.polling import Poller
from store.models import Triggers
from tests.api.conftest import add_service, local_agent
from tests.harness import wait_until
from tests.security.hanging import hanging_remote


def git_processes(port: int) -> list[int]:
    """Pids of processes (git, git-remote-http) talking to the hanging remote."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"127.0.0.1:{port}/" in cmdline and "git" in cmdline:
            found.append(int(proc.name))
    return found


async def test_polling_a_remote_that_never_answers_times_out_and_stop_kills_its_git(
        tmp_path: Path) -> None:
    agent = local_agent(tmp_path / "data")  # not started: only its store and git
    try:
        with hanging_remote() as url:
            port = urlsplit(url).port
            assert port is not None
            service = add_service(agent.store, "hangs", repo_url=url,
                                  triggers=Triggers(poll_interval_s=10))
            # One pass gives up at the poller's git timeout, leaving no git behind.
            quick = Poller(agent, git_timeout_s=1)
            with pytest.raises(WorkspaceError, match="ls-remote timed out after 1 s"):
                await asyncio.wait_for(asyncio.to_thread(quick.poll_service, service), 60)
            wait_until(lambda: git_processes(port) == [], timeout=10,
                       what="no git left after the timeout")

            # The running poller (20 s timeout): stopping the agent kills the hanging git
            # at once, rather than leaving it (and the agent's shutdown) waiting.
            poller = Poller(agent, tick_s=0.05)
            await poller.start()
            for _ in range(300):  # bounded: 15 s
                if git_processes(port):
                    break
                await asyncio.sleep(0.05)  # the loop keeps running while git hangs
            assert git_processes(port), "the poller never started git"
            await asyncio.wait_for(poller.stop(), 10)
            wait_until(lambda: git_processes(port) == [], timeout=5,
                       what="the hanging git killed by stop")
    finally:
        agent.close()
