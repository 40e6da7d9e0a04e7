"""Dependency caches: one directory per service, mounted into its stage containers at
/cache and named by the variables package managers read (pip, npm, yarn, Go, Cargo,
Gradle, and XDG for the rest), so `pip install` and `npm ci` reuse what earlier runs
fetched — across runs and branches. Bounded in size: after each stage the least
recently used files go until the service is under its bound. Clearable per service.

Runs of every branch of a service share its cache (pull requests included); a fork's
pull request is never run automatically, so nothing untrusted writes to it by itself.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MOUNT = "/cache"
_VARIABLES = {
    "PIP_CACHE_DIR": "pip",
    "npm_config_cache": "npm",
    "YARN_CACHE_FOLDER": "yarn",
    "GOMODCACHE": "go/mod",
    "GOCACHE": "go/build",
    "CARGO_HOME": "cargo",
    "GRADLE_USER_HOME": "gradle",
    "XDG_CACHE_HOME": "xdg",
}


def cache_env(root: str = MOUNT) -> dict[str, str]:
    """The package managers' cache variables, under `root` (the mount, or a host path)."""
    return {name: f"{root}/{sub}" for name, sub in _VARIABLES.items()}


@dataclass
class Caches:
    root: Path
    max_bytes: int

    def dir_for(self, service: str) -> Path:
        path = self.root / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def size(self, service: str) -> int:
        return sum(size for _, _, size in _files(self.root / service))

    def trim(self, service: str) -> list[str]:
        """Remove least recently used files until the service is under its bound."""
        files = sorted(_files(self.root / service))  # oldest use first
        total = sum(size for _, _, size in files)
        removed = []
        for _, path, size in files:
            if total <= self.max_bytes:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
            removed.append(str(path))
        return removed

    def clear(self, service: str) -> int:
        """Empty the service's cache; the bytes freed."""
        freed = self.size(service)
        shutil.rmtree(self.root / service, ignore_errors=True)
        return freed


def _files(root: Path) -> list[tuple[float, Path, int]]:
    """(last use, path, size) of every file: last use is the later of access and change,
    as mounts with relatime update the access time at most daily."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            try:
                st = path.lstat()
            except OSError:
                continue
            found.append((max(st.st_atime, st.st_mtime), path, st.st_size))
    return found


def caches_of(config: Any) -> Caches:
    """The agent's caches (`config`: an AgentConfig)."""
    return Caches(config.caches_dir, config.cache_max_mb * 1024 * 1024)
