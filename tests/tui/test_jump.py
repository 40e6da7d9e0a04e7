"""`:` jumps to a service (`:payments`), a run of it (`:payments#2`) or a run of the
service in view (`:#1`), and says why when it cannot."""

from __future__ import annotations

from seamless_tui.screens.jump import JumpModal, resolve
from seamless_tui.screens.run import RunScreen
from seamless_tui.screens.service import ServiceScreen
from tests.tui.conftest import LiveAgent, wait_for

NAMES = ["auth", "catalog", "checkout", "payments"]


def test_resolve_reads_service_run_and_both() -> None:
    assert resolve(":payments", NAMES, None) == ("payments", None)
    assert resolve("pay#12", NAMES, None) == ("payments", 12)
    assert resolve(":#12", NAMES, "checkout") == ("checkout", 12)
    assert "of which service" in str(resolve("#12", NAMES, None))
    assert "no service named 'nope'" in str(resolve("nope#1", NAMES, None))


async def _jump(app, pilot, text: str) -> None:
    await pilot.press("colon")
    await wait_for(pilot, lambda: isinstance(app.screen, JumpModal), "the jump box")
    await pilot.press(*text, "enter")


async def test_jumps_to_a_service_a_run_and_a_run_of_the_service_in_view(
        live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await _jump(app, pilot, "payments#2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                       and app.screen.run is not None, "run #2")
        assert isinstance(app.screen, RunScreen)
        assert app.screen.run_id == live_agent.seeded.runs["pay-prev"]
        await _jump(app, pilot, "#1")  # the service in view is payments
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                       and app.screen.run_id == live_agent.seeded.runs["pay-old"], "run #1")
        await _jump(app, pilot, "checkout")
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceScreen)
                       and app.screen.service_name == "checkout", "the service")
        await _jump(app, pilot, "#9")
        await wait_for(pilot, lambda: any("checkout #9 not found" in n.message
                                          for n in app._notifications), "not found")
