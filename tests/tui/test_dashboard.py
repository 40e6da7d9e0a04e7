"""Dashboard against a real agent: rows, live updates, filter, pending approvals."""

from __future__ import annotations

from seamless_tui.screens.dashboard import DashboardScreen
from seamless_tui.widgets.tables import VimTable
from tests.tui.conftest import LiveAgent, wait_for


def _row(app, name: str) -> list[str]:
    table = app.screen.query_one(VimTable)
    return [str(c) for c in table.get_row(name)]


async def test_dashboard_lists_services_with_status_and_deployed_shas(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                       and len(app.screen.rows) == 4, "the overview")
        await pilot.pause()
        row = _row(app, "payments")
        assert "⏸ approval" in row
        assert row[3] == "aaaa103"  # commit
        assert row[-2] == "aaaa103" and row[-1] == "aaaa102"  # staging, production
        assert "✗ failed" in _row(app, "checkout")


async def test_live_status_change_appears_without_a_key_press(live_agent: LiveAgent):
    app = live_agent.app()
    run_id = live_agent.seeded.runs["pay-approval"]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await wait_for(pilot, lambda: app.connection_state == "connected", "event stream")
        with live_agent.http() as http:
            assert http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
        await wait_for(pilot, lambda: "⊘ cancelled" in _row(app, "payments"),
                       "the cancelled status on the payments row")
