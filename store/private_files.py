"""Key files the agent keeps outside its database: written whole, 0600, never half-written."""

from __future__ import annotations

import os
from pathlib import Path


def write_private_file(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, 0600 from its first byte, keeping the owner of
    the file it replaces (root rotating a key must leave it readable by the service user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # O_CREAT's mode does not apply to a leftover tmp
        fh.write(text)
        fh.flush()
        if path.exists() and os.geteuid() == 0:
            old = path.stat()
            os.fchown(fh.fileno(), old.st_uid, old.st_gid)
        os.fsync(fh.fileno())
    os.replace(tmp, path)
