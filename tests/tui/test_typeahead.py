"""Keys typed faster than a screen or dialog opens are kept for it, in order (type-ahead):
a burst of keys, as a fast typist or a paste sends them, does what the same keys typed
slowly do."""

from __future__ import annotations

from textual import events

from seamless_tui.screens.rollback import RollbackScreen
from seamless_tui.screens.service import ServiceScreen
from store.models import Role
from tests.tui.conftest import LiveAgent, wait_for
from tests.tui.seed import sha
from tests.tui.textdump import screen_text

_NAMES = {":": "colon", "#": "number_sign"}


def burst(app, text: str) -> None:
    """Every key queued at once, none waiting for the one before to be handled."""
    for char in text:
        key = "enter" if char == "\n" else _NAMES.get(char, char)
        app.post_message(events.Key(key, None if char == "\n" else char))


async def test_a_jump_typed_in_one_burst_reaches_the_jump_box(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        burst(app, ":payments\n")
        await wait_for(pilot, lambda: isinstance(app.screen, ServiceScreen)
                       and app.screen.service is not None, "the service", timeout=15)
        assert isinstance(app.screen, ServiceScreen) and app.screen.service_name == "payments"


async def test_unpin_and_its_confirmation_typed_at_once_unpin(live_agent: LiveAgent):
    """`u` asks the agent for the pin, then opens the dialog: the `y` typed meanwhile is
    the dialog's answer, not a key lost on the picker."""
    store = live_agent.server.agent.store
    store.set_pin(store.get_service("payments").id, "production", sha(0x102))
    app = live_agent.app(role=Role.deployer)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        app.open_rollback("payments")
        await wait_for(pilot, lambda: "production is pinned at aaaa102" in screen_text(app),
                       "the pin")
        burst(app, "uy")
        await wait_for(pilot, lambda: "production unpinned" in screen_text(app), "unpinned",
                       timeout=15)
        assert isinstance(app.screen, RollbackScreen)
    with live_agent.http() as http:
        assert http.get("/api/v1/services/payments").json()["pinned"] == {}
