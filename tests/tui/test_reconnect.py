"""A dropped agent: the TUI keeps its view, says "reconnecting…", and resumes by cursor."""

from __future__ import annotations

from datetime import timedelta

from seamless_tui.screens.dashboard import DashboardScreen
from seamless_tui.screens.run import RunScreen
from seamless_tui.widgets.log_view import LogView
from store.store import Store
from tests.tui.conftest import LiveAgent, wait_for
from tests.tui.seed import FIXED_NOW, add_log


async def test_reconnect_after_the_agent_restarts_resumes_the_log_without_gap(
        live_agent: LiveAgent):
    run_id = live_agent.seeded.runs["checkout"]
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection_state == "connected", "the event stream")
        app.open_run(run_id)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                       and app.screen.query(LogView) and app.screen.query_one(LogView).loaded_once,
                       "the Unit Test log")
        view = app.screen.query_one(LogView)
        assert view.stage == "Unit Test" and len(view.window) == 60

        live_agent.server.stop()
        await wait_for(pilot, lambda: app.connection_state == "reconnecting", "reconnecting…")
        assert isinstance(app.screen, RunScreen) and len(view.window) == 60  # view kept

        # Lines written while the TUI was cut off must arrive once, in order.
        store = Store(live_agent.tmp / "seamless.db")
        add_log(store, run_id, "Unit Test", 25, start=FIXED_NOW + timedelta(minutes=5),
                text="after restart {i}")
        store.close()
        live_agent.server.start()
        await wait_for(pilot, lambda: app.connection_state == "connected", "reconnected", 20)
        await wait_for(pilot, lambda: len(view.window) == 85, "the missed lines", 20)
        texts = [line.text for line in view.window.lines]
        assert texts[59] == "checkout Unit Test 60"
        assert texts[60:] == [f"after restart {i}" for i in range(1, 26)]
        ids = [line.id for line in view.window.lines]
        assert ids == sorted(set(ids))

        # And the event stream is live again: a change on the agent shows up unprompted.
        with live_agent.http() as http:
            pending = live_agent.seeded.runs["pay-approval"]
            assert http.post(f"/api/v1/runs/{pending}/cancel").status_code == 200
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                       and "payments" in app.screen.rows
                       and getattr(app.screen.rows["payments"].last_run, "status", None)
                       == "cancelled",
                       "the live change after the restart")
