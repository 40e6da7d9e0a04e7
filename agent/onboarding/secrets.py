"""Secrets the agent needs (the GitHub token) live in a 0600 file in the data dir.

The agent config TOML is world-readable by design; nothing secret goes there.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import tomli_w

from agent.config import AgentConfig

SECRETS_FILE = "secrets.toml"
KNOWN_SECRETS = ("github_token",)


def secrets_path(data_dir: Path) -> Path:
    return Path(data_dir) / SECRETS_FILE


def read_secrets(data_dir: Path) -> dict[str, str]:
    path = secrets_path(data_dir)
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        return {k: str(v) for k, v in tomllib.load(fh).items() if k in KNOWN_SECRETS}


def write_secret(data_dir: Path, key: str, value: str | None) -> Path:
    """Set (or with None remove) one secret; the file is created 0600 and kept 0600."""
    if key not in KNOWN_SECRETS:
        raise ValueError(f"unknown secret {key!r}")
    values = read_secrets(data_dir)
    if value is None:
        values.pop(key, None)
    else:
        values[key] = value
    path = secrets_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Created with 0600 from the start: never a moment where the token is world-readable.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(tomli_w.dumps(values).encode())
    os.replace(tmp, path)
    return path


def github_token(config: AgentConfig) -> str | None:
    """The token from the config/environment (SEAMLESS_GITHUB_TOKEN) or the secrets file."""
    return config.github_token or read_secrets(config.data_dir).get("github_token") or None
