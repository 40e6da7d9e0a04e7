"""The README's journey in a real terminal (tmux) against a real agent with real runs: every
key is answered (within a generous bound: a freeze detector), every screen shows what it
should, at 80x24 and at 200x50, resized to the other size on the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.seed import sha
from tests.tui_terminal.journey import KEY_BOUND_S, Journey, journey_agent, start_tui, walk

# The rollback deploys a real image. `journey`: part of `make test`; `make test-journey` runs
# only these.
pytestmark = [pytest.mark.docker, pytest.mark.journey]


@pytest.mark.parametrize(("size", "other"), [((80, 24), (200, 50)), ((200, 50), (80, 24))],
                         ids=["80x24", "200x50"])
def test_the_readme_journey_in_tmux_answers_every_key(tmp_path: Path, docker_client,
                                                       base_image: str, size, other):
    with journey_agent(tmp_path, docker_client, base_image) as agent:
        run = agent.start_run()
        term = start_tui(agent, tmp_path / "home", *size)
        try:
            status = walk(Journey(term, agent, run["number"]), other)
        finally:
            term.close()
        runs = agent.api("GET", "/runs", params={"service": "stream"})["items"]
        approval = agent.api("GET", f"/runs/{agent.live.seeded.runs['pay-approval']}/approval")
        deployed = agent.api("GET", f"/services/{agent.rollback_service}/deployments",
                             params={"environment": "production"})
        service = agent.api("GET", f"/services/{agent.rollback_service}")
    assert status == 0  # `q` quit cleanly
    slowest = max(term.answers, key=lambda answer: answer[1])
    assert len(term.answers) > 30 and slowest[1] < KEY_BOUND_S, slowest
    # What the keys asked for happened on the agent.
    assert any(r["rerun_from_stage"] == "Unit Test" for r in runs)
    assert approval["status"] == "approved"
    assert deployed[0]["kind"] == "rollback" and deployed[0]["sha"] == sha(0x2f1)
    assert service["pinned"] == {}  # the rollback's pin, lifted from the picker
