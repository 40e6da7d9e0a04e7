"""The canary screen: the front's figures per window and the verdict, from the agent."""

from __future__ import annotations

from datetime import timedelta

from seamless_tui.screens.canary import CanaryScreen
from store.models import CanaryMeasurement, DeploymentKind, DeploymentStatus
from store.store import Store
from tests.tui.conftest import settle, wait_for
from tests.tui.seed import FIXED_NOW, sha


def _failed_canary(live) -> None:
    store = Store(live.tmp / "seamless.db")
    try:
        service = store.get_service("payments")
        dep = store.create_deployment(service_id=service.id, environment="production",
                                      sha=sha(0x103), image="x", kind=DeploymentKind.deploy)
        rule = "error rate 21.0% > max_error_rate 5.0%"
        for role, colour, req, err in (("canary", "green", 43, 9), ("stable", "blue", 380, 0)):
            store.add_canary_measurement(dep.id, CanaryMeasurement(
                step=1, weight=10, role=role, colour=colour, window_start=FIXED_NOW,
                window_end=FIXED_NOW + timedelta(seconds=4), requests=req, errors=err,
                p50_ms=2, p95_ms=7, verdict="fail", rule=rule))
        store.finish_deployment(dep.id, DeploymentStatus.failed,
                                error=f"canary stopped: step 1 (10%) failed: {rule}")
    finally:
        store.close()


async def test_the_canary_screen_shows_each_window_and_why_it_stopped(live_agent):
    _failed_canary(live_agent)
    app = live_agent.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        app.open_service("payments")
        await settle(pilot)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CanaryScreen)
                       and app.screen.status is not None, "the canary screen")
        screen = app.screen
        assert [(m.role, m.requests, m.errors, m.verdict) for m in screen.status.measurements] \
            == [("canary", 43, 9, "fail"), ("stable", 380, 0, "fail")]
        table = screen.query_one("#windows")
        assert table.row_count == 2
        summary = str(screen.query_one("#summary").render())
        assert "failed" in summary and "max_error_rate" in summary
        await pilot.press("p")  # nothing running: told so, nothing sent
        await settle(pilot)
        assert isinstance(app.screen, CanaryScreen)
        assert any("no canary is running" in n.message for n in app._notifications)
