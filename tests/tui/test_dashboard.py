"""Dashboard against a real agent: rows, live updates, filter, pending approvals."""

from __future__ import annotations

from seamless_tui.screens.dashboard import DashboardScreen
from seamless_tui.widgets.tables import VimTable
from tests.tui.conftest import LiveAgent, wait_for
from tests.tui.textdump import screen_text


def _row(app, name: str) -> list[str]:
    table = app.screen.query_one(VimTable)
    return [str(c) for c in table.get_row(name)]


def _cell(app, name: str, column: str) -> str:
    return str(app.screen.query_one(VimTable).get_cell(name, column))


async def test_dashboard_lists_services_with_status_and_deployed_shas(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                       and len(app.screen.rows) == 4, "the overview")
        await pilot.pause()
        row = _row(app, "payments")
        assert "◆ approval" in row
        assert _cell(app, "payments", "commit") == "aaaa103"
        assert _cell(app, "payments", "staging") == "aaaa103"
        assert _cell(app, "payments", "prod") == "aaaa102"
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


async def test_pinned_environment_shows_on_the_dashboard(live_agent: LiveAgent):
    store = live_agent.server.agent.store
    payments = store.get_service("payments")
    store.set_pin(payments.id, "production", payments.pinned.get("production") or "aaaa1020")
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await pilot.pause()
        assert _cell(app, "payments", "prod") == "aaaa102 pin"
        assert _cell(app, "checkout", "prod") == "—"


async def test_last_run_on_a_pipeline_row_opens_its_newest_run(live_agent: LiveAgent):
    from seamless_tui.screens.run import RunScreen

    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await pilot.press("g", "l")  # the first row is the "platform" group
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), "the run view")
        assert isinstance(app.screen, RunScreen)
        assert app.screen.run_id == live_agent.seeded.runs["auth"]


async def test_start_run_asks_first_and_reports_the_agents_answer(live_agent: LiveAgent):
    from seamless_tui.screens.confirm import ConfirmModal

    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await pilot.press("G", "t")  # payments, the last row
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        assert "Start run (y)" in screen_text(app) and "Cancel (n)" in screen_text(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), "no")
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        await pilot.press("y")
        # The seeded repository URL is not reachable: the agent says why, the TUI shows it.
        await wait_for(pilot, lambda: any("git.example.com" in n.message
                                          for n in app._notifications), "the agent's refusal",
                       timeout=30)
    with live_agent.http() as http:
        runs = http.get("/api/v1/runs", params={"service": "payments"}).json()["items"]
    assert len(runs) == 3  # nothing queued by the "n"


async def test_a_new_pending_approval_rings_the_bell_and_says_so(live_agent: LiveAgent):
    from store.db import now
    from store.models import Event

    app = live_agent.app()
    bells = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    agent = live_agent.server.agent
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await wait_for(pilot, lambda: app.connection_state == "connected", "event stream")
        run = agent.store.get_run(live_agent.seeded.runs["checkout"])
        approval = agent.store.create_approval(
            run_id=run.id, candidate_sha=run.sha, production_sha=None, commits=[],
            staging_health="active: GET /health → 200", expires_at=None)
        agent.bus.publish_event(Event(type="approval", ts=now(), approval=approval, run=run))
        await wait_for(pilot, lambda: bells, "the bell")
        assert any("checkout #1 is waiting for approval" in n.message
                   for n in app._notifications)
        agent.bus.publish_event(Event(type="approval", ts=now(), approval=approval, run=run))
        await pilot.pause(0.5)
        assert len(bells) == 1  # the same approval again: no second bell


async def test_filter_by_status_and_branch(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await pilot.press("slash", *"status:failed", "enter")
        table = app.screen.query_one(VimTable)
        assert [k.value for k in table.rows] == ["pipeline:shop", "checkout"]
        await pilot.press("slash", *" branch:nope")
        assert [k.value for k in table.rows] == []
        await pilot.press("escape", "slash", *"status:bogus", "enter")
        assert any("unknown status 'bogus'" in n.message for n in app._notifications)
