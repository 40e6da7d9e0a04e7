"""Dependency caches: one directory per service, mounted into its stage containers at
/cache and named by the variables package managers read (pip, npm, yarn, Go, Cargo,
Gradle, and XDG for the rest), so `pip install` and `npm ci` reuse what earlier runs
fetched — across runs and branches. Bounded in size: after each stage the least
recently used files go until the service is under its bound. Clearable per service.

Runs of every branch of a service share its cache (pull requests included); a fork's
pull request is never run automatically, so nothing untrusted writes to it by itself.

Beside the download caches: what a stage installed (installed_deps.py), kept as images
of the engine, counted in the service's size and removed by `clear` with the rest.

Who owns the files: stage containers run as their image's user (root, mostly), so the
cache fills with files of that user and whatever modes the tools gave them. An agent
running as root removes them directly; an agent running as its own user (the systemd
service) makes its own directories writable, and has what it cannot remove (files of
root in directories of root) removed by a short container of the stage image as root,
`root_remover` — through the engine it drives anyway.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.executors.installed_deps import InstalledDeps, kept_bytes

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


# (a service's cache directory, paths relative to it, an image with `rm`): remove the
# paths as root, in a container (DockerExecutor.remove_as_root).
RootRemover = Callable[[Path, list[str], str], None]


class CacheError(RuntimeError):
    """Files the agent could not remove, with who owns them and what to do."""


@dataclass
class Caches:
    root: Path
    max_bytes: int
    root_remover: RootRemover | None = None
    installed_keep: int = 3  # installed dependencies kept per service (0: none)
    installed: InstalledDeps | None = None  # set by the Docker executor (needs the engine)

    @property
    def installed_markers(self) -> Path:
        return self.root / ".installed"  # not a service's: names start with [a-z0-9]

    def dir_for(self, service: str) -> Path:
        path = self.root / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def size(self, service: str) -> int:
        kept = kept_bytes(self.installed_markers, service)
        return kept + sum(size for _, _, size in _files(self.root / service))

    def trim(self, service: str, image: str | None = None) -> list[str]:
        """Remove least recently used files until the service is under its bound (files
        the agent may not remove go through `root_remover` with `image`)."""
        base = self.root / service
        files = sorted(_files(base))  # oldest use first
        total = sum(size for _, _, size in files)
        removed, refused = [], []
        for _, path, size in files:
            if total <= self.max_bytes:
                break
            if not _unlink(path):
                if not (self.root_remover and image):
                    continue
                refused.append(path)
            total -= size
            removed.append(str(path))
        if refused and self.root_remover and image:
            self.root_remover(base, [str(p.relative_to(base)) for p in refused], image)
        return removed

    def clear(self, service: str, image: str | None = None) -> int:
        """Empty the service's cache, whoever owns its files and whatever their modes;
        the bytes freed. CacheError names what is left and why."""
        base = self.root / service
        freed = self.size(service)
        if self.installed is not None:
            self.installed.clear(service)
        _make_ours_writable(base)
        shutil.rmtree(base, ignore_errors=True)
        if base.exists() and self.root_remover and image:
            self.root_remover(base, sorted(p.name for p in base.iterdir()), image)
            shutil.rmtree(base, ignore_errors=True)
        if base.exists():
            left = _files(base)
            owners = sorted({_owner(path) for _, path, _ in left} or {_owner(base)})
            raise CacheError(
                f"{len(left)} file(s) under {base} could not be removed: owned by "
                f"{', '.join(owners)}, and the agent runs as uid {os.geteuid()}; with the "
                "Docker engine up the agent removes them in a container of the stage image "
                f"as root, else remove them as root (sudo rm -rf {base})")
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


def _unlink(path: Path) -> bool:
    """Remove a file; a directory of ours that forbids it is made writable first."""
    for attempt in range(2):
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return True
        except PermissionError:
            if attempt or not _writable(path.parent):
                return False
        except OSError:
            return False
    return False


def _writable(folder: Path) -> bool:
    """Give the owner rwx on `folder` if it is ours; whether it was."""
    try:
        st = folder.lstat()
        if st.st_uid != os.geteuid():
            return False
        os.chmod(folder, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
        return True
    except OSError:
        return False


def _make_ours_writable(root: Path) -> None:
    """rwx for the owner on every directory of ours, top-down (a tool's 0o500 or 0o000
    directory would otherwise stop its removal, and hide what is below it)."""
    if root.is_dir() and not root.is_symlink():
        _writable(root)
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            path = Path(folder, name)
            if not path.is_symlink():
                _writable(path)


def _owner(path: Path) -> str:
    try:
        return f"uid {path.lstat().st_uid}"
    except OSError:
        return "unknown"


def caches_of(config: Any, root_remover: RootRemover | None = None) -> Caches:
    """The agent's caches (`config`: an AgentConfig)."""
    return Caches(config.caches_dir, config.cache_max_mb * 1024 * 1024, root_remover,
                  config.installed_deps_keep)
