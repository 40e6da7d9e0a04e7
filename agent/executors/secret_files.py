"""Stage secrets as files: `/run/secrets/<NAME>` in the stage container, mode 0400 and
owned by the stage's user, from a directory on a tmpfs of the host (RAM, never the disk),
bind-mounted read-only. Then `docker inspect` shows the mount's path, never a value.

One directory per stage container, `<root>/<run id>/<container name>`, under a root only
the agent can enter (0700); removed when the stage ends, and with its run otherwise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MOUNT = "/run/secrets"
DEFAULT_TMPFS = Path("/dev/shm")


class SecretFilesError(RuntimeError):
    """Why the secrets could not be made files (the stage then does not run)."""


def _is_tmpfs(path: Path) -> bool:
    """Whether `path` is on a tmpfs (its longest mount point in /proc/self/mounts)."""
    best, kind = "", ""
    target = str(path.resolve())
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        return False
    return kind == "tmpfs"


def _owner(user: str) -> tuple[int, int] | None:
    """uid, gid of an image's `User` when numeric ("", "0", "1000", "1000:1000");
    None for a name (only the image's /etc/passwd knows it)."""
    name, _, group = (user or "0").partition(":")
    if not name.isdigit() or (group and not group.isdigit()):
        return None
    return int(name), int(group or name)


class SecretFiles:
    def __init__(self, instance: str = "", tmpfs: Path = DEFAULT_TMPFS) -> None:
        self.tmpfs = tmpfs
        self.root = tmpfs / f"seamless-secrets-{instance or 'agent'}"

    def dir_for(self, run_id: int, container: str) -> Path:
        return self.root / str(run_id) / container

    def write(self, run_id: int, container: str, secrets: dict[str, str], user: str) -> Path:
        """The directory to mount at MOUNT: one file per secret, 0400 and the stage
        user's (0444 when the image names its user, or the agent cannot chown)."""
        if not _is_tmpfs(self.tmpfs):
            raise SecretFilesError(
                f"secrets_as files needs a tmpfs at {self.tmpfs} (secrets must not reach "
                "the disk); mount one there, or set the service's secrets_as to env")
        path = self.dir_for(run_id, container)
        _remove_tree(path)  # an earlier attempt of the same stage
        for attempt in range(3):  # another stage's `remove` may prune an empty parent
            try:
                path.mkdir(parents=True, mode=0o700)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        # Before any secret is written: the host's other users never reach one.
        os.chmod(self.root, 0o700)
        owner = _owner(user)
        for name, value in secrets.items():
            file = path / name
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "w") as fh:
                fh.write(value)
            if not self._give(file, owner, 0o400):
                os.chmod(file, 0o444)
        # The mount point: listable by the stage user, the files only by their owner.
        if not self._give(path, owner, 0o500):
            os.chmod(path, 0o555)
        return path

    @staticmethod
    def _give(path: Path, owner: tuple[int, int] | None, mode: int) -> bool:
        if owner is None:
            return False
        try:
            if (path.stat().st_uid, path.stat().st_gid) != owner:
                os.chown(path, *owner)
        except PermissionError:  # an agent not running as root
            return False
        os.chmod(path, mode)
        return True

    def remove(self, run_id: int, container: str) -> None:
        path = self.dir_for(run_id, container)
        _remove_tree(path)
        for empty in (path.parent, self.root):  # nothing left behind in the host's RAM
            try:
                empty.rmdir()
            except OSError:  # another stage of the run (or another run) still has files
                break

    def remove_runs_except(self, keep_run_ids: set[int]) -> None:
        if not self.root.is_dir():
            return
        for run in self.root.iterdir():
            if not (run.name.isdigit() and int(run.name) in keep_run_ids):
                _remove_tree(run)


def _remove_tree(path: Path) -> None:
    """rmtree, making read-only directories of ours writable first."""
    for parent, _dirs, _files in os.walk(path):
        try:
            os.chmod(parent, 0o700)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)
