"""Run `seamless-tui --agent URL --token T` headless and exit once the dashboard rows
are painted (used by tui_log.py to time start-up in a fresh interpreter)."""

from __future__ import annotations

import sys

from seamless_tui import cli
from seamless_tui.app import SeamlessApp

_mount, _run = SeamlessApp.on_mount, SeamlessApp.run


def on_mount(self: SeamlessApp) -> None:
    _mount(self)

    def check() -> None:
        if getattr(self.screen, "rows", None):
            self.call_after_refresh(self.exit)

    self.set_interval(0.005, check)


SeamlessApp.on_mount = on_mount  # type: ignore[method-assign]
SeamlessApp.run = lambda self, **kw: _run(self, headless=True)  # type: ignore[method-assign]
sys.exit(cli.main(sys.argv[1:]))
