"""Every glyph the TUI draws is single-width in common terminal fonts: nothing from the
emoji-prone Miscellaneous Technical block (U+23xx, e.g. the pause sign that showed as a
missing-glyph box), no wide or emoji code points."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from rich.cells import cell_len

from seamless_tui import fmt

SOURCES = Path(fmt.__file__).parent


def _risky(ch: str) -> bool:
    code = ord(ch)
    return (0x2300 <= code <= 0x23FF or code >= 0x1F000 or 0xFE00 <= code <= 0xFE0F
            or unicodedata.east_asian_width(ch) in ("W", "F"))


def test_status_icons_are_one_cell_and_not_emoji() -> None:
    icons = [icon for table in (fmt.RUN_ICONS, fmt.STAGE_ICONS, fmt.DEPLOY_ICONS)
             for icon, _ in table.values()] + [fmt.APPROVAL_ICON, fmt.REUSED_ICON]
    for icon in icons:
        assert cell_len(icon) == 1 and not _risky(icon), f"{icon!r} U+{ord(icon):04X}"


def test_no_risky_glyph_anywhere_in_the_tui_sources() -> None:
    found = [(path.name, ch, f"U+{ord(ch):04X}")
             for path in SOURCES.rglob("*") if path.suffix in (".py", ".tcss")
             for ch in set(path.read_text(encoding="utf-8")) if _risky(ch)]
    assert found == []
