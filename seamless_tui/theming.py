"""Themes live in the top-level `themes/` directory: one TOML file per Theme plus the
app's stylesheet, so a user can add a theme without touching code."""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parent.parent / "themes"
STYLESHEET = THEMES_DIR / "seamless.tcss"


def load_themes(directory: Path = THEMES_DIR) -> list[Theme]:
    themes = []
    for path in sorted(directory.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        variables = {str(k): str(v) for k, v in dict(data.pop("variables", {})).items()}
        themes.append(Theme(**data, variables=variables))
    return themes
