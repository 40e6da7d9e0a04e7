"""The run view's test counts and the test pane (`t`), against the real agent: failures
first with message, trace and history (✓✗), `enter` to the line of the stage log where
the test's output starts, `Q` to quarantine it with a reason (deployer, audited)."""

from __future__ import annotations

from datetime import timedelta

from seamless_tui.screens.results import ReasonModal, TestsScreen
from seamless_tui.screens.run import RunScreen
from seamless_tui.screens.service import ServiceScreen
from seamless_tui.widgets.log_view import LogView
from store.models import Role, TestOutcome
from store.store import Store
from store.tests import Attempt, CaseRecord
from tests.tui.conftest import LiveAgent, wait_for
from tests.tui.seed import FIXED_NOW, add_log
from tests.tui.textdump import screen_text


def _results(live: LiveAgent) -> int:
    """The seeded failed `checkout` run gets JUnit results: 1 failed / 1,204 passed, with
    the failing test's output in the middle of its Unit Test log."""
    run_id = live.seeded.runs["checkout"]
    store = Store(live.tmp / "seamless.db")
    try:
        run = store.get_run(run_id)
        cases = [CaseRecord("tests.test_pay", "test_refund", TestOutcome.failed, 0.2,
                            "AssertionError: refund not recorded",
                            "def test_refund():\n>       assert refunds == 1\nE       0 != 1"),
                 *(CaseRecord(f"tests.test_shop{i % 9}", f"test_{i}", TestOutcome.passed, 0.01)
                   for i in range(1204))]
        store.record_tests(Attempt(run_id, "Unit Test", 1, run.service_id, run.sha, 3.5),
                           cases)
        add_log(store, run_id, "Unit Test", 1, start=FIXED_NOW + timedelta(hours=1),
                text="tests/test_pay.py::test_refund FAILED")
        add_log(store, run_id, "Unit Test", 300, start=FIXED_NOW + timedelta(hours=2))
    finally:
        store.close()
    return run_id


async def test_the_test_pane_lists_failures_jumps_to_the_log_and_quarantines(
        live_agent: LiveAgent) -> None:
    run_id = _results(live_agent)
    app = live_agent.app(role=Role.deployer)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.connection_state == "connected", "the event stream")
        app.open_run(run_id)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                       and app.screen.test_counts, "the run's test counts")
        assert "1 failed / 1,204 passed" in screen_text(app)

        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TestsScreen)
                       and app.screen.summary is not None, "the test pane")
        await wait_for(pilot, lambda: "refund not recorded" in screen_text(app),
                       "the failure's message")
        text = screen_text(app)
        assert "Unit Test: 1 failed / 1,204 passed" in text
        assert "FAILED" in text and "tests.test_pay::test_refund" in text
        assert "assert refunds == 1" in text  # the trace
        assert "✗" in text  # its history

        await pilot.press("Q")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonModal), "the reason prompt")
        await pilot.press(*["space" if c == " " else c for c in "refund mock is slow on CI"])
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TestsScreen)
                       and "QUARANTINED" in screen_text(app),
                       f"the quarantined row {[n.message for n in app._notifications]}",
                       timeout=20)

        await pilot.press("enter")  # to where its output starts in the stage log
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), "the run view")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: (view := screen.query_one(LogView)).match_line is not None
                       and view.stage == "Unit Test", "the test's log line")
        view = screen.query_one(LogView)
        assert view.match_line is not None
        assert "test_refund FAILED" in view.window.lines[view.match_line].text

    with live_agent.http(Role.viewer) as http:
        held = http.get("/api/v1/services/checkout/tests/quarantine").json()
    assert [(q["name"], q["reason"], q["actor"]) for q in held] == [
        ("test_refund", "refund mock is slow on CI", "deployer-tui")]


async def test_the_service_view_shows_the_test_figures(live_agent: LiveAgent) -> None:
    _results(live_agent)
    app = live_agent.app(role=Role.viewer)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.connection_state == "connected", "the event stream")
        app.open_service("checkout")
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceScreen)
                       and app.screen.query("#test-figures"), "the service view")
        await wait_for(pilot, lambda: "#1" in screen_text(app), "the service's runs")
        await pilot.press("3")
        await wait_for(pilot, lambda: "flaky rate" in screen_text(app), "the test figures")
        text = screen_text(app)
        assert "failure rate           0.1%" in text  # 1 of 1,205
        assert "slowest tests (mean)" in text and "tests.test_pay::test_refund" in text
