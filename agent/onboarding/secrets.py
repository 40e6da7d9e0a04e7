"""Secrets the agent needs (the GitHub token) live in a 0600 file in the data dir,
encrypted with the key that encrypts the secrets in the database (store/crypto.py).

The agent config TOML is world-readable by design; nothing secret goes there. A value
without the `enc:v1:` prefix is a plaintext token from before encryption: it is read as
is and encrypted when the agent starts (`encrypt_secrets_file`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import tomli_w

from agent.config import AgentConfig
from store.crypto import SecretCipher, ensure_key_file

SECRETS_FILE = "secrets.toml"
KNOWN_SECRETS = ("github_token",)


def secrets_path(data_dir: Path) -> Path:
    return Path(data_dir) / SECRETS_FILE


def default_key_path(data_dir: Path) -> Path:
    """The key when the config names none (see `AgentConfig.key_path`)."""
    return AgentConfig(data_dir=Path(data_dir)).key_path


def _stored(data_dir: Path) -> dict[str, str]:
    path = secrets_path(data_dir)
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        return {k: str(v) for k, v in tomllib.load(fh).items() if k in KNOWN_SECRETS}


def _write(data_dir: Path, values: dict[str, str]) -> Path:
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


def read_secrets(data_dir: Path, key_path: Path | None = None) -> dict[str, str]:
    """The secrets file's values, decrypted with the key at `key_path` (default: the
    data dir's key or the systemd credential)."""
    values = _stored(data_dir)
    if any(SecretCipher.is_encrypted(v) for v in values.values()):
        cipher = SecretCipher(key_path or default_key_path(data_dir))
        values = {k: cipher.decrypt(v) for k, v in values.items()}
    return values


def write_secret(data_dir: Path, key: str, value: str | None,
                 key_path: Path | None = None) -> Path:
    """Set (or with None remove) one secret, encrypted with the key at `key_path` (made if
    missing); the file is created 0600 and kept 0600."""
    if key not in KNOWN_SECRETS:
        raise ValueError(f"unknown secret {key!r}")
    values = _stored(data_dir)
    if value is None:
        values.pop(key, None)
    else:
        cipher = SecretCipher(ensure_key_file(key_path or default_key_path(data_dir)))
        values[key] = cipher.encrypt(value)
    return _write(data_dir, values)


def encrypt_secrets_file(config: AgentConfig, cipher: SecretCipher, *,
                         rotate: bool = False) -> int:
    """Encrypt the secrets file's plaintext values (from before encryption), or with
    `rotate` re-encrypt every value with the newest key; the number of values rewritten."""
    values = _stored(config.data_dir)
    todo = [k for k, v in values.items() if rotate or not cipher.is_encrypted(v)]
    if todo:
        _write(config.data_dir, {k: cipher.rotate(v) if k in todo else v
                                 for k, v in values.items()})
    return len(todo)


def github_token(config: AgentConfig) -> str | None:
    """The token from the config/environment (SEAMLESS_GITHUB_TOKEN) or the secrets file."""
    return (config.github_token
            or read_secrets(config.data_dir, config.key_path).get("github_token") or None)
