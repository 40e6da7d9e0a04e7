"""Regenerate screenshots/*.svg: every TUI screen, driven against a seeded real agent.

Run by `make screenshots` (or `.venv/bin/python scripts/screenshots.py`). The agent is
the one the TUI tests use (tests/tui): a seeded SQLite database, served on loopback.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from seamless_tui.screens.approval import ApprovalModal  # noqa: E402
from seamless_tui.screens.config_form import ConfigForm  # noqa: E402
from seamless_tui.screens.confirm import ConfirmModal  # noqa: E402
from seamless_tui.screens.rollback import RollbackScreen  # noqa: E402
from seamless_tui.screens.run import RunScreen  # noqa: E402
from seamless_tui.screens.service import ServiceScreen  # noqa: E402
from seamless_tui.widgets.log_view import LogView  # noqa: E402
from tests.tui.conftest import LiveAgent, start_live_agent, wait_for  # noqa: E402

OUT = REPO_ROOT / "screenshots"
Step = Callable[[Any], Awaitable[None]]


async def dashboard(pilot: Any) -> None:
    pass


async def service(pilot: Any) -> None:
    pilot.app.open_service("payments")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ServiceScreen)
                   and pilot.app.screen.service is not None, "service")
    await pilot.pause(0.3)


async def run_view(pilot: Any) -> None:
    pilot.app.open_run(pilot.app.seeded_runs["checkout"])
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunScreen)
                   and pilot.app.screen.query(LogView)
                   and pilot.app.screen.query_one(LogView).loaded_once, "log")


async def approval(pilot: Any) -> None:
    await pilot.press("a")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ApprovalModal)
                   and pilot.app.screen.approval is not None, "approval")


async def rollback(pilot: Any) -> None:
    pilot.app.open_rollback("payments")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RollbackScreen)
                   and pilot.app.screen.deployments, "images")


async def rollback_confirm(pilot: Any) -> None:
    await rollback(pilot)
    await pilot.press("j", "enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "confirm")


async def config_form(pilot: Any) -> None:
    await service(pilot)
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfigForm), "form")
    pilot.app.screen.focused.cursor_blink = False


async def help_screen(pilot: Any) -> None:
    await pilot.press("question_mark")


async def palette(pilot: Any) -> None:
    await pilot.press("ctrl+p")
    await pilot.pause(0.5)


SHOTS: dict[str, tuple[Step, str]] = {
    "dashboard": (dashboard, "seamless-dark"),
    "dashboard-light": (dashboard, "seamless-light"),
    "dashboard-high-contrast": (dashboard, "seamless-high-contrast"),
    "service": (service, "seamless-dark"),
    "run": (run_view, "seamless-dark"),
    "approval": (approval, "seamless-dark"),
    "rollback": (rollback, "seamless-dark"),
    "rollback-confirm": (rollback_confirm, "seamless-dark"),
    "config-form": (config_form, "seamless-dark"),
    "help": (help_screen, "seamless-dark"),
    "command-palette": (palette, "seamless-dark"),
}


async def shoot(live: LiveAgent, name: str, step: Step, theme: str) -> None:
    app = live.app()
    app.user_config.theme = theme
    app.seeded_runs = live.seeded.runs  # type: ignore[attr-defined]
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4
                       and app.connection_state == "connected", "dashboard")
        await step(pilot)
        app.clear_notifications()
        await pilot.pause(0.3)
        app.save_screenshot(filename=f"{name}.svg", path=str(OUT))
    print(f"screenshots/{name}.svg")


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, (step, theme) in SHOTS.items():
        with tempfile.TemporaryDirectory(prefix="seamless-shots-") as tmp:
            live = start_live_agent(Path(tmp))
            try:
                await shoot(live, name, step, theme)
            finally:
                live.server.stop()


if __name__ == "__main__":
    asyncio.run(main())
