"""Themes live in the package's `themes/` directory: one TOML file per Theme plus the
app's stylesheet, so a user can add a theme without touching code. They ship in the
wheel as package data (pyproject.toml), so an installed TUI finds them anywhere."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path, PurePath

from textual.theme import Theme

PACKAGE_DIR = Path(__file__).resolve().parent
THEMES_DIR = PACKAGE_DIR / "themes"
STYLESHEET = THEMES_DIR / "seamless.tcss"


class IncompleteInstall(RuntimeError):
    """A file the TUI needs at run time is not where the package put it."""


def missing_files(stylesheets: str | PurePath | Iterable[str | PurePath] | None
                  ) -> list[Path]:
    """The run-time files that are not there: the app's stylesheets and at least one theme."""
    if stylesheets is None or isinstance(stylesheets, str | PurePath):
        stylesheets = [] if stylesheets is None else [stylesheets]
    missing = [Path(p) for p in stylesheets if not Path(p).is_file()]
    if not any(THEMES_DIR.glob("*.toml")):
        missing.append(THEMES_DIR / "*.toml")
    return missing


def check_install(stylesheets: str | PurePath | Iterable[str | PurePath] | None) -> None:
    """Raise IncompleteInstall naming the missing files (a broken wheel or a partial copy):
    Textual would only print a stylesheet error and end with status 0 after a blank screen."""
    missing = missing_files(stylesheets)
    if missing:
        names = ", ".join(str(p) for p in missing)
        raise IncompleteInstall(f"the seamless package is incomplete: missing {names}; "
                                "reinstall it (pip install --force-reinstall seamless)")


def load_themes(directory: Path = THEMES_DIR) -> list[Theme]:
    themes = []
    for path in sorted(directory.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        variables = {str(k): str(v) for k, v in dict(data.pop("variables", {})).items()}
        themes.append(Theme(**data, variables=variables))
    return themes
