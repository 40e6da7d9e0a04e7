"""Snapshots of every screen at 80×24 against the seeded agent (frozen clock, no toasts).

Accept changes with `pytest tests/tui/test_snapshots.py --snapshot-update` after looking
at the SVGs in __snapshots__/."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable

from seamless_tui.screens.approval import ApprovalModal
from seamless_tui.screens.config_form import ConfigForm
from seamless_tui.screens.confirm import ConfirmModal
from seamless_tui.screens.rollback import RollbackScreen
from seamless_tui.screens.run import RunScreen
from seamless_tui.screens.service import ServiceScreen
from seamless_tui.widgets.log_view import LogView
from tests.tui.conftest import LiveAgent, settle, wait_for


async def _connected(pilot: Any) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4
                   and app.connection_state == "connected" and app.role, "the dashboard")
    await pilot.pause(0.2)


@pytest.fixture(autouse=True)
def _fixed_agent_url(monkeypatch):
    # The test agent listens on a free port: the header shows one fixed address instead.
    monkeypatch.setattr("seamless_tui.widgets.topbar.display_url",
                        lambda url: "127.0.0.1:8787")


def _snap(snap_compare, app, steps) -> bool:
    async def run_before(pilot: Any) -> None:
        await _connected(pilot)
        await steps(pilot)
        pilot.app.clear_notifications()
        await settle(pilot)  # fetches done: under load a fixed pause was not always enough
        await pilot.pause(0.2)

    return snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("theme", ["seamless-dark", "seamless-light", "seamless-high-contrast"])
def test_dashboard_snapshot(snap_compare, live_agent: LiveAgent, theme: str):
    app = live_agent.app()
    app.user_config.theme = theme

    async def steps(pilot: Any) -> None:
        pass

    assert _snap(snap_compare, app, steps)


def test_service_view_snapshot(snap_compare, live_agent: LiveAgent):
    async def steps(pilot: Any) -> None:
        pilot.app.open_service("payments")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ServiceScreen)
                       and pilot.app.screen.is_mounted
                       and sum(t.row_count for t in
                               pilot.app.screen.query("#runs-table").results(DataTable)) == 3,
                       "runs")

    assert _snap(snap_compare, live_agent.app(), steps)


def test_service_config_snapshot(snap_compare, live_agent: LiveAgent):
    async def steps(pilot: Any) -> None:
        pilot.app.open_service("payments")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ServiceScreen)
                       and pilot.app.screen.service is not None, "service")
        await pilot.press("4")

    assert _snap(snap_compare, live_agent.app(), steps)


def test_run_view_snapshot(snap_compare, live_agent: LiveAgent):
    run_id = live_agent.seeded.runs["checkout"]

    async def steps(pilot: Any) -> None:
        pilot.app.open_run(run_id)
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunScreen)
                       and pilot.app.screen.query(LogView)
                       and pilot.app.screen.query_one(LogView).loaded_once, "the log")

    assert _snap(snap_compare, live_agent.app(), steps)


def test_approval_modal_snapshot(snap_compare, live_agent: LiveAgent):
    async def steps(pilot: Any) -> None:
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ApprovalModal)
                       and pilot.app.screen.approval is not None, "the approval")

    assert _snap(snap_compare, live_agent.app(), steps)


def test_rollback_picker_snapshot(snap_compare, live_agent: LiveAgent):
    async def steps(pilot: Any) -> None:
        pilot.app.open_rollback("payments")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, RollbackScreen)
                       and len(pilot.app.screen.deployments) == 2, "the images")

    assert _snap(snap_compare, live_agent.app(), steps)


def test_rollback_confirm_snapshot(snap_compare, live_agent: LiveAgent):
    async def steps(pilot: Any) -> None:
        pilot.app.open_rollback("payments")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, RollbackScreen)
                       and len(pilot.app.screen.deployments) == 2, "the images")
        await pilot.press("j", "enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "confirm")

    assert _snap(snap_compare, live_agent.app(), steps)


def test_config_form_snapshot(snap_compare, live_agent: LiveAgent):
    async def steps(pilot: Any) -> None:
        pilot.app.open_service("payments")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ServiceScreen)
                       and pilot.app.screen.service is not None, "service")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfigForm), "the form")
        pilot.app.screen.focused.cursor_blink = False

    assert _snap(snap_compare, live_agent.app(), steps)


def test_help_snapshot(snap_compare, live_agent: LiveAgent):
    async def steps(pilot: Any) -> None:
        await pilot.press("question_mark")

    assert _snap(snap_compare, live_agent.app(), steps)
