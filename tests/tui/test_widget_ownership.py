"""Widgets own their work: the log view's stream ends with the view, fetch answers come back
as typed messages, and agent events reach the shown screen only (a hidden screen reloads
once when it is shown again)."""

from __future__ import annotations

from typing import Any

from textual.message import Message
from textual.worker import WorkerState

from seamless_tui.screens.base import Fetched
from seamless_tui.screens.dashboard import DashboardScreen
from seamless_tui.screens.run import RunScreen, StageList
from seamless_tui.widgets.log_view import LogView
from store.models import RunInfo
from tests.tui.conftest import LiveAgent, wait_for


def _streams(app) -> list:
    return [w for w in app.workers if w.group == "log-stream"]


async def _run_view(app, pilot, run_id: int) -> LogView:
    await wait_for(pilot, lambda: app.connection_state == "connected", "the event stream")
    # From the app's own loop, as a key would: the message hook only sees that context.
    app.call_later(app.open_run, run_id)
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.query(LogView)
                   and app.screen.query_one(LogView).loaded_once, "the log")
    return app.screen.query_one(LogView)


async def test_the_log_stream_belongs_to_its_view_and_ends_with_it(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(100, 30)) as pilot:
        first = await _run_view(app, pilot, live_agent.seeded.runs["checkout"])
        streams = _streams(app)
        assert [w.node for w in streams] == [first]  # one stream, started by the view itself
        old_stream = streams[0]

        stages = app.screen.query_one(StageList)
        stages.focus()
        stages.highlighted = 0  # Prepare
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.query_one(LogView) is not first
                       and app.screen.query_one(LogView).loaded_once, "Prepare's log")
        await wait_for(pilot, lambda: old_stream.state is WorkerState.CANCELLED,
                       "the old stream cancelled")
        second = app.screen.query_one(LogView)
        assert [w.node for w in _streams(app) if not w.is_finished] == [second]

        await pilot.press("escape")  # leaving the run view ends its stream
        await wait_for(pilot, lambda: not any(not w.is_finished for w in _streams(app)),
                       "no log stream left running")


async def test_fetch_answers_arrive_as_typed_messages(live_agent: LiveAgent):
    seen: list[Message] = []
    app = live_agent.app()
    run_id = live_agent.seeded.runs["checkout"]
    async with app.run_test(size=(100, 30), message_hook=seen.append) as pilot:
        await _run_view(app, pilot, run_id)
    runs = [m.value for m in seen if isinstance(m, Fetched) and isinstance(m.value, RunInfo)]
    assert runs and runs[0].id == run_id
    pages = [m for m in seen if isinstance(m, LogView.PageLoaded)]
    assert pages and pages[0].kind == "tail" and len(pages[0].lines) == 60


async def test_agent_events_reach_the_shown_screen_and_a_hidden_one_reloads_once(
        live_agent: LiveAgent, monkeypatch):
    calls: list[str] = []
    original = DashboardScreen.agent_event
    def spy(self: DashboardScreen, ev: Any) -> Any:
        calls.append(ev.type)
        return original(self, ev)

    monkeypatch.setattr(DashboardScreen, "agent_event", spy)
    app = live_agent.app()
    pending = live_agent.seeded.runs["pay-approval"]
    async with app.run_test(size=(100, 30)) as pilot:
        await _run_view(app, pilot, live_agent.seeded.runs["checkout"])
        dashboard = app.screen_stack[1]
        assert isinstance(dashboard, DashboardScreen)
        with live_agent.http() as http:  # the run on the dashboard changes while it is hidden
            assert http.post(f"/api/v1/runs/{pending}/cancel").status_code == 200
        # The shown screen hears about it; wait until it must have been published.
        await wait_for(pilot, lambda: dashboard._missed_events, "the hidden screen's note")
        assert calls == []  # the hidden dashboard was not handed the event
        assert _last_status(dashboard) == "awaiting_approval"

        await pilot.press("escape")
        await wait_for(pilot, lambda: _last_status(dashboard) == "cancelled",
                       "the dashboard reloaded when shown again")
        with live_agent.http() as http:  # and, shown, it follows events live
            assert http.post(f"/api/v1/runs/{live_agent.seeded.runs['checkout']}/rerun"
                             ).status_code in (200, 201)
        await wait_for(pilot, lambda: calls, "a live event on the shown dashboard")


def _last_status(dashboard: DashboardScreen) -> str | None:
    run = dashboard.rows["payments"].last_run
    return run.status if run is not None else None
