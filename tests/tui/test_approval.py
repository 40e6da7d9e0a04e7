"""The approval modal against a real agent: approve changes the run; a viewer is told no."""

from __future__ import annotations

from textual.widgets import Button, Input, OptionList, Static

from seamless_tui.screens.approval import ApprovalModal
from seamless_tui.screens.dashboard import DashboardScreen
from store.models import Role
from tests.tui.conftest import LiveAgent, wait_for


async def _open_modal(app, pilot) -> ApprovalModal:
    await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "the overview")
    await pilot.press("p")  # focus the pending-approvals panel on its first entry
    panel = app.screen.query_one("#approvals", OptionList)
    await wait_for(pilot, lambda: panel.has_focus and panel.highlighted == 0,
                   "the approvals panel focused on its first entry")
    await pilot.press("enter")  # open it
    await wait_for(pilot, lambda: isinstance(app.screen, ApprovalModal)
                   and app.screen.approval is not None, "the approval modal")
    return app.screen


async def test_focus_starts_on_leave_pending_not_approve(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        modal = await _open_modal(app, pilot)
        focused = modal.focused
        assert isinstance(focused, Button) and focused.id == "leave"
        await pilot.press("enter")  # the default choice leaves it pending
        await wait_for(pilot, lambda: not isinstance(app.screen, ApprovalModal), "dismissal")
    with live_agent.http() as http:
        run = live_agent.seeded.runs["pay-approval"]
        assert http.get(f"/api/v1/runs/{run}/approval").json()["status"] == "pending"


async def test_approve_from_the_modal_changes_the_run_on_the_agent(live_agent: LiveAgent):
    app = live_agent.app(role=Role.deployer)
    run = live_agent.seeded.runs["pay-approval"]
    async with app.run_test(size=(80, 24)) as pilot:
        modal = await _open_modal(app, pilot)
        await pilot.press("slash", *"ship it", "tab")  # type a comment, leave the box
        assert modal.query_one("#comment", Input).value == "ship it"
        await pilot.press("a")
        await wait_for(pilot, lambda: not isinstance(app.screen, ApprovalModal), "dismissal")
        # The result is visible at once: the approvals panel empties from the live events.
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                       and not app.screen.rows["payments"].pending_approval,
                       "the pending approval to leave the dashboard")
    with live_agent.http() as http:
        approval = http.get(f"/api/v1/runs/{run}/approval").json()
        assert approval["status"] == "approved"
        assert approval["comment"] == "ship it"
        assert approval["actor"] == "deployer-tui"
        assert http.get(f"/api/v1/runs/{run}").json()["status"] != "awaiting_approval"


async def test_viewer_trying_to_approve_gets_a_clear_message(live_agent: LiveAgent):
    app = live_agent.app(role=Role.viewer)
    run = live_agent.seeded.runs["pay-approval"]
    async with app.run_test(size=(80, 24)) as pilot:
        modal = await _open_modal(app, pilot)
        await pilot.press("a")
        error = modal.query_one("#error", Static)
        await wait_for(pilot, lambda: "may not approve" in str(error.render()),
                       "the permission message")
        assert isinstance(app.screen, ApprovalModal)  # still open, nothing crashed
        assert "role" in str(error.render())
    with live_agent.http() as http:
        assert http.get(f"/api/v1/runs/{run}/approval").json()["status"] == "pending"


async def test_healthy_staging_reads_healthy_with_the_agents_detail(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(100, 30)) as pilot:
        modal = await _open_modal(app, pilot)
        await wait_for(pilot, lambda: "payments #" in str(modal.query_one("#box").border_title),
                       "the run number in the title")
        summary = str(modal.query_one("#summary", Static).render())
        assert "✓ healthy" in summary and "GET /health → 200" in summary
        assert "✗" not in summary and "(2 commits)" in summary
