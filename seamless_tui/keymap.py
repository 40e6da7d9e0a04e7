"""Key bindings have ids (`screen.action`), so users can remap them in tui.toml:

    [keymap]
    "dashboard.filter" = "f"
    "log.top" = "g,home"

`apply_keymap` hands the remaps to Textual's keymap support and reports ids that no
binding uses, so a typo is not silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.app import App
from textual.binding import Binding


def binding_ids(classes: Iterable[type]) -> set[str]:
    ids: set[str] = set()
    for cls in classes:
        for item in getattr(cls, "BINDINGS", []):
            if isinstance(item, Binding) and item.id:
                ids.add(item.id)
    return ids


def apply_keymap(app: App[Any], keymap: dict[str, str], known: set[str]) -> list[str]:
    """Install the remaps; returns the unknown ids (shown to the user as a warning)."""
    unknown = sorted(k for k in keymap if k not in known)
    app.set_keymap({k: v for k, v in keymap.items() if k in known})
    return unknown
