"""Regenerate screenshots/*.svg from a real demo: the demo shop is built and its story
played (`python -m agent.demo --headless --keep`: real pushes, real stage containers,
real logs, a unit test that fails, an approval waiting, a production rollback), then the
TUI is pointed at that agent and every screen is saved. Everything the demo made is
removed afterwards (scripts/demo-clean.sh on its own directory).

Run by `make screenshots` (or `.venv/bin/python scripts/screenshots.py [--keep-demo]`).
Needs the Docker engine and the base image (`make images`), as `make demo` does.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from seamless_tui.app import SeamlessApp  # noqa: E402
from seamless_tui.client import AgentClient  # noqa: E402
from seamless_tui.config import UserConfig  # noqa: E402
from seamless_tui.screens.approval import ApprovalModal  # noqa: E402
from seamless_tui.screens.config_form import ConfigForm  # noqa: E402
from seamless_tui.screens.confirm import ConfirmModal  # noqa: E402
from seamless_tui.screens.rollback import RollbackScreen  # noqa: E402
from seamless_tui.screens.run import RunScreen  # noqa: E402
from seamless_tui.screens.service import ServiceScreen  # noqa: E402
from seamless_tui.widgets.log_view import LogView  # noqa: E402

OUT = REPO_ROOT / "screenshots"
SIZE = (100, 30)
DEMO_TIMEOUT_S = 900
Step = Callable[[Any, "Demo"], Awaitable[None]]


class Demo:
    """The demo agent and what its story left behind, found through the REST API."""

    def __init__(self, workdir: Path) -> None:
        state = json.loads((workdir / "demo.json").read_text())
        self.url, self.token = state["url"], state["token"]
        self.services: list[str] = state["services"]
        self.payments, self.inventory, self.notifications = self.services

    def app(self, theme: str) -> SeamlessApp:
        config = UserConfig(theme=theme, path=None)
        return SeamlessApp(AgentClient(self.url, self.token), config=config)


async def wait_for(pilot: Any, predicate: Callable[[], object], what: str,
                   timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        await pilot.pause(0.05)


async def dashboard(pilot: Any, demo: Demo) -> None:
    pass


async def service(pilot: Any, demo: Demo) -> None:
    pilot.app.open_service(demo.payments)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ServiceScreen)
                   and pilot.app.screen.service is not None and pilot.app.screen.runs,
                   "the service view")


async def _open_failed_run(pilot: Any, demo: Demo) -> LogView:
    runs = await pilot.app.client.runs(service=demo.inventory, status="failed", limit=1)
    pilot.app.open_run(runs[0].id)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunScreen)
                   and pilot.app.screen.query(LogView)
                   and pilot.app.screen.query_one(LogView).loaded_once, "the failed run's log")
    return pilot.app.screen.query_one(LogView)


async def run_view(pilot: Any, demo: Demo) -> None:
    view = await _open_failed_run(pilot, demo)
    view.focus()
    await pilot.press("e")  # the first error: the failed assertion


async def log_search(pilot: Any, demo: Demo) -> None:
    view = await _open_failed_run(pilot, demo)
    view.focus()
    await pilot.press("slash", *"ok", "enter")
    await wait_for(pilot, lambda: view.search_note(), "the match counter")


async def approval(pilot: Any, demo: Demo) -> None:
    pending = await pilot.app.client.approvals()
    pilot.app.open_approval(pending[0].run_id)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ApprovalModal)
                   and pilot.app.screen.approval is not None, "the approval")


async def rollback(pilot: Any, demo: Demo) -> None:
    pilot.app.open_rollback(demo.payments)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RollbackScreen)
                   and pilot.app.screen.deployments and pilot.app.screen.service, "images")


async def rollback_confirm(pilot: Any, demo: Demo) -> None:
    await rollback(pilot, demo)
    picker = pilot.app.screen
    other = next(i for i, d in enumerate(picker.deployments) if not d.current)
    picker.query_one("#images").move_cursor(row=other)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "the question")


async def config_form(pilot: Any, demo: Demo) -> None:
    await wait_for(pilot, lambda: pilot.app.role, "the token's role")
    await service(pilot, demo)
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfigForm), "the form")
    pilot.app.screen.focused.cursor_blink = False


async def help_screen(pilot: Any, demo: Demo) -> None:
    await pilot.press("question_mark")


async def palette(pilot: Any, demo: Demo) -> None:
    await pilot.press("ctrl+p")
    await pilot.pause(0.5)


SHOTS: dict[str, tuple[Step, str]] = {
    "dashboard": (dashboard, "seamless-dark"),
    "dashboard-light": (dashboard, "seamless-light"),
    "dashboard-high-contrast": (dashboard, "seamless-high-contrast"),
    "service": (service, "seamless-dark"),
    "run": (run_view, "seamless-dark"),
    "log-search": (log_search, "seamless-dark"),
    "approval": (approval, "seamless-dark"),
    "rollback": (rollback, "seamless-dark"),
    "rollback-confirm": (rollback_confirm, "seamless-dark"),
    "config-form": (config_form, "seamless-dark"),
    "help": (help_screen, "seamless-dark"),
    "command-palette": (palette, "seamless-dark"),
}


async def shoot(demo: Demo, name: str, step: Step, theme: str) -> None:
    app = demo.app(theme)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) >= 3
                       and app.connection_state == "connected", "the dashboard")
        await step(pilot, demo)
        await pilot.pause(0.5)
        app.clear_notifications()
        await pilot.pause(0.3)
        app.save_screenshot(filename=f"{name}.svg", path=str(OUT))
    fix_svg(OUT / f"{name}.svg")
    print(f"screenshots/{name}.svg")


_TEXT = re.compile(r'(<text [^>]*?x=")([\d.]+)("[^>]*?textLength=")([\d.]+)("[^>]*>)'
                   r'([^<]*)(</text>)')
_NBSP = "&#160;"


def _unpad(match: re.Match[str]) -> str:
    """A text run that starts or ends with spaces, as its own element: several SVG renderers
    drop those spaces (`failed  40e047b` read `failed40e047b`). Move the run right past its
    leading spaces and cut the trailing ones instead, so no renderer can lose them."""
    head, x, mid, length, tail, body, end = match.groups()
    chars = len(html.unescape(body))
    lead, stripped = 0, body
    while stripped.startswith(_NBSP):
        stripped, lead = stripped[len(_NBSP):], lead + 1
    trail = 0
    while stripped.endswith(_NBSP):
        stripped, trail = stripped[:-len(_NBSP)], trail + 1
    if not (lead or trail) or not stripped or not chars:
        return match.group(0)
    cell = float(length) / chars
    return (f"{head}{float(x) + lead * cell:g}{mid}{float(length) - (lead + trail) * cell:g}"
            f"{tail}{stripped}{end}")


def fix_svg(path: Path) -> None:
    path.write_text(_TEXT.sub(_unpad, path.read_text(encoding="utf-8")), encoding="utf-8")


def play_demo(workdir: Path, suffix: str) -> None:
    cmd = [sys.executable, "-m", "agent.demo", "--headless", "--keep", "--dir", str(workdir),
           "--port", "18787"] + (["--suffix", suffix] if suffix else [])
    print("screenshots: playing the demo story (real runs on the Docker engine)…")
    done = subprocess.run(cmd, cwd=REPO_ROOT, timeout=DEMO_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise SystemExit(f"screenshots: the demo failed (exit {done.returncode}); its output "
                         "above ends with the agent's log (--keep-demo keeps the directory)")


def clean_demo(workdir: Path) -> None:
    subprocess.run([str(REPO_ROOT / "scripts" / "demo-clean.sh"), str(workdir)],
                   cwd=REPO_ROOT, timeout=300, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep-demo", action="store_true",
                        help="leave the demo agent and what it made (make demo-clean removes)")
    parser.add_argument("--suffix", default="",
                        help="name the demo services <name>-SUFFIX (beside another demo)")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="seamless-shots-"))
    try:
        play_demo(workdir, args.suffix)
        demo = Demo(workdir)
        for name, (step, theme) in SHOTS.items():
            asyncio.run(shoot(demo, name, step, theme))
    finally:
        if args.keep_demo:
            print(f"screenshots: the demo stays in {workdir} "
                  f"(remove: scripts/demo-clean.sh {workdir})")
        else:
            clean_demo(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
