"""The screen as plain text (for reading failures and debugging layouts)."""

from __future__ import annotations

from typing import Any


def screen_text(app: Any) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)
