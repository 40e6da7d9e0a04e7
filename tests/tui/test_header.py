"""The header line: the agent's address and version, runs running and queued, the Docker
engine's state — asked of the agent, and updated while the screen is shown."""

from __future__ import annotations

from seamless_tui.widgets.topbar import TopBar, agent_line
from store.models import AgentInfo, DockerState
from tests.tui.conftest import LiveAgent, wait_for


def test_an_engine_that_is_down_says_why() -> None:
    info = AgentInfo(version="1.2.3", instance="x", running=2, queued=5, awaiting_approval=0,
                     docker=DockerState(state="down", detail="ConnectionError: refused"))
    line = agent_line("build-host:8787", info).plain
    assert line == ("build-host:8787 v1.2.3 · 2 running · 5 queued · docker down "
                    "(ConnectionError: refused)")


async def test_header_shows_the_agent_and_follows_its_counts(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.query(TopBar)
                       and app.screen.query_one(TopBar).info is not None, "the header")
        bar = app.screen.query_one(TopBar)
        assert bar.info is not None and bar.info.awaiting_approval == 1
        text = str(bar.query_one("#agent-info").render())
        assert live_agent.url.removeprefix("http://") in text
        assert f"0 running · 0 queued · docker {bar.info.docker.state}" in text
        with live_agent.http() as http:
            run = live_agent.seeded.runs["pay-approval"]
            assert http.post(f"/api/v1/runs/{run}/cancel").status_code == 200
        bar._ask()
        await wait_for(pilot, lambda: bar.info is not None and bar.info.awaiting_approval == 0,
                       "the new count")
