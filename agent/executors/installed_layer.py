"""What a stage's install put into its container, read back for keeping it: the install
roots and paths from `docker diff`, and a tar of those files to lay on the stage image
(agent.executors.installed_deps keeps it)."""

from __future__ import annotations

import re
import tarfile
import tempfile
from pathlib import PurePosixPath
from typing import IO, Any

import docker

SITE = re.compile(r"^(/.+?)/lib/python3(?:\.\d+)?/(?:site|dist)-packages(?=/|$)")
ADDED, CHANGED, REMOVED = 1, 0, 2  # docker diff kinds


def installed_paths(changes: list[dict[str, Any]]) -> tuple[set[str], set[str], set[str]]:
    """From `docker diff`: the install roots (site-packages, the bin beside them), the
    files added or changed under them, and what was removed under them."""
    made = {change["Path"] for change in changes if change["Kind"] == ADDED}
    roots = set()
    for change in changes:
        found = SITE.match(change["Path"])
        if found and f"{found.group(1)}/pyvenv.cfg" in made:
            roots.add(found.group(1))  # a venv the stage made: all of it, or it is none
        elif found:
            roots.add(found.group(0))
            roots.add(f"{found.group(1)}/bin")
    wanted: set[str] = set()
    removed: set[str] = set()
    for change in changes:
        path = change["Path"]
        if not any(path.startswith(root + "/") for root in roots):
            continue
        (removed if change["Kind"] == REMOVED else wanted).add(path)
    return roots, wanted, removed


def write_layer(api: Any, container_id: str, roots: set[str], wanted: set[str],
                out: IO[bytes]) -> int:
    """A tar of the wanted files (and their directories), by absolute path; its size
    in file bytes."""
    keep_dirs = {str(parent) for path in wanted for parent in PurePosixPath(path).parents}
    size = 0
    with tarfile.open(fileobj=out, mode="w") as layer:
        for root in sorted(roots):
            try:
                stream, _ = api.get_archive(container_id, root)
            except docker.errors.NotFound:
                continue
            parent = str(PurePosixPath(root).parent).rstrip("/")
            with tempfile.TemporaryFile() as whole:
                for chunk in stream:
                    whole.write(chunk)
                whole.seek(0)
                with tarfile.open(fileobj=whole, mode="r:") as found:
                    for member in found:
                        path = f"{parent}/{member.name}"
                        if path not in wanted and not (member.isdir()
                                                       and path in keep_dirs):
                            continue
                        member.name = path.lstrip("/")
                        if member.islnk():  # a hard link names its target in the tar
                            member.linkname = f"{parent}/{member.linkname}".lstrip("/")
                        data = found.extractfile(member) if member.isfile() else None
                        layer.addfile(member, data)
                        size += member.size if member.isfile() else 0
    return size
