"""Repositories shared by services (monorepos): one spelling per repository URL, the
key its mirror and checkouts are stored under, and a service's paths seen from the
repository's top (its `root` folder applied)."""

from __future__ import annotations

import hashlib
import re
import shlex
from posixpath import join, normpath
from typing import TypeVar

from store.models.config import ServiceConfig

S = TypeVar("S", bound=ServiceConfig)


def normalize_repo_url(url: str) -> str:
    """One spelling per repository: `https://github.com/O/R.git`, `git@github.com:O/R`,
    `ssh://git@github.com/O/R` and `git://github.com/O/R.git` all become
    `github.com/o/r`; local paths and file:// URLs become the bare path."""
    url = url.strip()
    scp = re.match(r"^[\w.-]+@([\w.-]+):(?!//)(.*)$", url)
    if scp:
        url = f"{scp.group(1)}/{scp.group(2)}"
    else:
        url = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url, flags=re.I)
        url = re.sub(r"^[^/@]+@", "", url)  # user (and password) before the host
    url = url.rstrip("/")
    if url.endswith(".git"):
        url = url[:-4]
    host, _, path = url.partition("/")
    if host and ("." in host or ":" in host or host == "localhost"):
        host = re.sub(r":(22|80|443|9418)$", "", host.lower())
        return f"{host}/{path}".lower()  # GitHub owner/repo names are case-insensitive
    return url


def repo_key(url: str) -> str:
    """A file-name-safe key per repository (its last path part and a hash of its
    normalized URL): every service of a repository shares the mirror and checkouts
    stored under it."""
    normalized = normalize_repo_url(url)
    tail = re.sub(r"[^a-z0-9-]+", "-", normalized.rsplit("/", 1)[-1].lower()).strip("-")
    digest = hashlib.sha256(normalized.encode()).hexdigest()[:10]
    return f"{tail[:40] or 'repo'}-{digest}"


def _under(root: str, path: str) -> str:
    return normpath(join(root, path))


def rooted(service: S) -> S:
    """The service with its folder applied: build context, compose file and env files as
    paths from the repository's top, and its commands run from the folder. Stages see
    this copy; the stored configuration keeps the paths as the user wrote them."""
    if service.root in (".", ""):
        return service
    cd = f"cd -- {shlex.quote(service.root)} && "
    update: dict[str, object] = {
        "build_context": _under(service.root, service.build_context),
        "compose_file": service.compose_file and _under(service.root, service.compose_file),
        "env_files": {_under(service.root, target): _under(service.root, source)
                      for target, source in service.env_files.items()},
    }
    commands = ["prepare_command", "code_quality_command", "unit_test_command"]
    if not service.integration_test_service:  # a compose service has its own workdir
        commands.append("integration_test_command")
    for field in commands:
        command = getattr(service, field)
        if command:
            update[field] = cd + command
    return service.model_copy(update=update)
