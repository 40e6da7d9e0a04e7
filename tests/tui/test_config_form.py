"""Admins edit a service's config; the agent's 422 lands under the offending field."""

from __future__ import annotations

from textual.widgets import Input, Static

from seamless_tui.screens.config_form import ConfigForm
from seamless_tui.screens.service import ServiceScreen
from tests.tui.conftest import LiveAgent, wait_for


async def test_field_errors_from_the_api_show_under_the_field_then_save_works(
        live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.role == "admin", "the role")
        app.open_service("payments")
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceScreen)
                       and app.screen.service is not None, "service view")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigForm), "the form")
        form = app.screen
        form.query_one("#f-container_port", Input).value = "99999"
        form.query_one("#f-branch", Input).value = "bad..branch"
        await pilot.press("ctrl+s")
        port_error = form.query_one("#e-container_port", Static)
        await wait_for(pilot, lambda: "✗" in str(port_error.render()), "the field error")
        assert "65535" in str(port_error.render())
        assert "branch" in str(form.query_one("#e-branch", Static).render())

        form.query_one("#f-container_port", Input).value = "9090"
        form.query_one("#f-branch", Input).value = "main"
        form.query_one("#f-unit_test_command", Input).value = "sh test.sh --fast"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceScreen), "saved")
    with live_agent.http() as http:
        service = http.get("/api/v1/services/payments").json()
    assert service["container_port"] == 9090
    assert service["unit_test_command"] == "sh test.sh --fast"
