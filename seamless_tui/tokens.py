"""Where the API token lives: $SEAMLESS_TOKEN, the OS keyring, then a 0600 file (or the
file named by --token-file; --token works but warns: argv is visible in `ps`).

On a headless host (no D-Bus, no Secret Service) `keyring` has no backend; we
say so plainly and use `~/.config/seamless/token`, readable only by the user,
rather than letting keyrings.alt write a base64 "encrypted" file behind our back.
"""

from __future__ import annotations

import os
from pathlib import Path

from seamless_tui.config import config_dir

SERVICE = "seamless"


def token_file() -> Path:
    return config_dir() / "token"


def _keyring_backend() -> object | None:
    """A usable, real keyring backend, or None."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    backend = keyring.get_keyring()
    name = type(backend).__module__
    if isinstance(backend, fail.Keyring) or "keyrings.alt" in name or "null" in name.lower():
        return None
    return backend


def store_token(agent_url: str, token: str) -> str:
    """Save the token; returns a sentence saying where it went."""
    backend = _keyring_backend()
    if backend is not None:
        try:
            import keyring

            keyring.set_password(SERVICE, agent_url, token)
            return f"token stored in the OS keyring ({type(backend).__name__})"
        except Exception as exc:  # noqa: BLE001 - a locked or broken keyring: use the file
            reason = f"the keyring refused it ({exc})"
    else:
        reason = "no OS keyring backend is available on this host (headless, no D-Bus)"
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # other agents' tokens stay
        others = [ln for ln in path.read_text().splitlines()
                  if ln.strip() and ln.split(" ", 1)[0] != agent_url]
    except OSError:
        others = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{ln}\n" for ln in [*others, f"{agent_url} {token}"]))
    os.chmod(path, 0o600)
    return f"{reason}; token stored in {path} (mode 0600, readable only by you)"


def _from_file(agent_url: str) -> str | None:
    path = token_file()
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    fallback = None
    for line in lines:
        url, _, token = line.strip().partition(" ")
        if url == agent_url:
            return token
        fallback = fallback or token
    return fallback


ARGV_WARNING = ("a token on the command line is visible to every user of this host in `ps`; "
                "use $SEAMLESS_TOKEN, --token-file or the stored token instead")


def read_token_file(path: Path) -> str:
    """The token in a file of its own (the first non-empty line); OSError if unreadable."""
    for line in path.read_text().splitlines():
        if line.strip():
            return line.strip()
    raise OSError(f"{path} is empty")


def resolve_token(agent_url: str, flag: str | None, file: Path | None = None
                  ) -> tuple[str | None, str]:
    """The token and where it came from. Explicit first (--token, --token-file), then
    $SEAMLESS_TOKEN, the keyring, the token file of `seamless-tui login`."""
    if flag:
        return flag, "--token"
    if file is not None:
        return read_token_file(file), f"--token-file {file}"
    if os.environ.get("SEAMLESS_TOKEN"):
        return os.environ["SEAMLESS_TOKEN"], "SEAMLESS_TOKEN"
    if _keyring_backend() is not None:
        try:
            import keyring

            token = keyring.get_password(SERVICE, agent_url)
            if token:
                return token, "keyring"
        except Exception:  # noqa: BLE001 - fall through to the file
            pass
    token = _from_file(agent_url)
    return (token, str(token_file())) if token else (None, "none")
