"""The user's TUI settings in ~/.config/seamless/tui.toml: theme, key remaps, last agent."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "seamless"


def default_path() -> Path:
    env = os.environ.get("SEAMLESS_TUI_CONFIG")
    return Path(env) if env else config_dir() / "tui.toml"


@dataclass
class UserConfig:
    theme: str = "seamless-dark"
    last_agent: str | None = None
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> keys, e.g. "f,ctrl+f"
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> UserConfig:
        path = path or default_path()
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            return cls(path=path)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SystemExit(f"seamless-tui: cannot read {path}: {exc}") from exc
        keymap = {str(k): str(v) for k, v in dict(data.get("keymap", {})).items()}
        return cls(theme=str(data.get("theme", cls.theme)), last_agent=data.get("last_agent"),
                   keymap=keymap, path=path)

    def save(self) -> None:
        if self.path is None:
            return
        data: dict[str, object] = {"theme": self.theme, "keymap": self.keymap}
        if self.last_agent:
            data["last_agent"] = self.last_agent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(tomli_w.dumps(data))
