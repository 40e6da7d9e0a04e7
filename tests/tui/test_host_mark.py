"""What an admin let a service reach past its container shows in the TUI: a run with a
stage on the agent's host (the local executor) is marked `[host]`, and a service's
opt-ins (compose_opt_ins, mount_docker_socket) are in its view."""

from __future__ import annotations

from seamless_tui.screens.dashboard import DashboardScreen
from seamless_tui.screens.service import ServiceScreen
from store.models import ServiceConfig
from tests.tui.conftest import LiveAgent, wait_for
from tests.tui.textdump import screen_text


async def test_a_run_that_ran_on_the_host_is_marked_on_the_dashboard(live_agent: LiveAgent):
    store = live_agent.server.agent.store
    store.set_stage_executor(live_agent.seeded.runs["checkout"], "Unit Test", "local")
    app = live_agent.app()
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen)
                       and len(app.screen.rows) == 4, "the overview")
        await pilot.pause()
        text = screen_text(app)
        [checkout] = [line for line in text.splitlines() if "checkout" in line]
        others = [line for line in text.splitlines() if "payments" in line or "catalog" in line]
        assert "[host]" in checkout, text
        assert others and not any("[host]" in line for line in others), text


async def test_the_service_view_shows_the_admins_compose_opt_ins(live_agent: LiveAgent):
    store = live_agent.server.agent.store
    current = store.get_service("catalog")
    fields = current.model_dump(include=set(ServiceConfig.model_fields))
    store.update_service("catalog", ServiceConfig(**{**fields,
                                                     "compose_opt_ins": {"db": ["volumes"]}}))
    app = live_agent.app()
    async with app.run_test(size=(120, 50)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), "overview")
        app.push_screen(ServiceScreen("catalog"))
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceScreen), "service view")
        await pilot.pause()
        await pilot.press("4")
        await wait_for(pilot, lambda: "compose_opt_ins" in screen_text(app), "config tab")
        assert "compose_opt_ins: db=['volumes']" in screen_text(app)
