"""Keyboard-first navigation, remappable bindings, themes remembered, permission messages."""

from __future__ import annotations

from textual.widgets import DataTable

from seamless_tui.config import UserConfig
from seamless_tui.screens.dashboard import DashboardScreen
from seamless_tui.screens.help import HelpScreen
from seamless_tui.screens.run import RunScreen
from seamless_tui.screens.service import ServiceScreen
from store.models import Role
from tests.tui.conftest import LiveAgent, wait_for


async def _dashboard(app, pilot) -> DashboardScreen:
    await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "the overview")
    return app.screen


async def test_jump_drill_in_and_back_with_the_keyboard(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _dashboard(app, pilot)
        await pilot.press("colon", *"chec", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceScreen), "service view")
        assert isinstance(app.screen, ServiceScreen)
        assert app.screen.service_name == "checkout"
        await wait_for(pilot, lambda: app.screen.query_one("#runs-table", DataTable).row_count
                       == 1, "runs")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), "run view")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "escape", "escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_a_remapped_key_works_and_the_theme_choice_is_remembered(live_agent: LiveAgent):
    app = live_agent.app()
    app.user_config.keymap = {"dashboard.filter": "f"}
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await _dashboard(app, pilot)
        await pilot.press("f", *"pay")
        assert dash.filter_text == "pay"
        assert list(dash.query_one("#services", DataTable).rows) == ["pipeline:shop", "payments"]
        await pilot.press("escape")
        await pilot.press("ctrl+t")
        chosen = app.theme
    assert UserConfig.load(live_agent.tmp / "tui.toml").theme == chosen != "seamless-dark"


async def test_viewer_cannot_edit_config_and_is_told_why(live_agent: LiveAgent):
    app = live_agent.app(role=Role.viewer)
    async with app.run_test(size=(80, 24)) as pilot:
        await _dashboard(app, pilot)
        await wait_for(pilot, lambda: app.role == "viewer", "the role")
        app.open_service("payments")
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceScreen), "service view")
        await pilot.press("e")
        messages = [n.message for n in app._notifications]
        assert any("needs the admin role" in m for m in messages)
