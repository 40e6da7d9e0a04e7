"""Repository paths stay inside the checkout: a path from the service config or from a
file in the repository (build context, Dockerfile, compose file, env_file, report globs)
is resolved with its symlinks, and refused when it leaves the workspace — a symlink in
the repository must not hand host files to a build or a container."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath


class PathEscape(ValueError):
    """A repository path that resolves outside the checkout (the message names it)."""


def _within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def inside(workspace: Path, relative: str | Path, what: str, base: Path | None = None) -> Path:
    """`relative` (to `base`, default the workspace) resolved with every symlink; raises
    PathEscape when the result is not inside the workspace."""
    root = Path(os.path.realpath(workspace))
    candidate = Path(base or workspace) / relative
    resolved = Path(os.path.realpath(candidate))
    if not _within(resolved, root):
        shown = str(relative)
        via = " through a symlink" if _within(Path(os.path.abspath(candidate)),
                                              Path(os.path.abspath(workspace))) else ""
        raise PathEscape(f"{what} {shown!r} leaves the repository{via}: it resolves to "
                         f"{resolved}, outside the checkout")
    return resolved


def escaping_links(workspace: Path, directory: Path, names: Iterable[str]) -> list[str]:
    """Which of `names` (relative to `directory`) are symlinks resolving outside the
    workspace, as paths relative to `directory`."""
    root = Path(os.path.realpath(workspace))
    found = []
    for name in names:
        path = directory / name
        if path.is_symlink() and not _within(Path(os.path.realpath(path)), root):
            found.append(name)
    return sorted(found)


def build_context_files(context: Path, dockerfile: str) -> list[str]:
    """The files a `docker build` of `context` sends (its .dockerignore applied, as the
    Docker SDK applies it), relative to the context."""
    from docker.utils.build import exclude_paths

    patterns: list[str] = []
    ignore = context / ".dockerignore"
    if ignore.is_file():
        patterns = [line.strip() for line in ignore.read_text(errors="replace").splitlines()
                    if line.strip() and not line.strip().startswith("#")]
    return sorted(exclude_paths(str(context), patterns, dockerfile=dockerfile))


def check_build_context(workspace: Path, context_rel: str, dockerfile: str) -> tuple[Path, str]:
    """The build context and Dockerfile of a service, both inside the checkout, and no file
    the build would send being a symlink out of it. Raises PathEscape naming the path."""
    context = inside(workspace, context_rel, "build_context")
    inside(workspace, dockerfile, "dockerfile", base=context)
    leaving = escaping_links(workspace, context, build_context_files(context, dockerfile))
    if leaving:
        shown = ", ".join(repr(os.path.join(context_rel, name)) for name in leaving[:5])
        more = f" and {len(leaving) - 5} more" if len(leaving) > 5 else ""
        raise PathEscape(f"the build context holds symlinks leaving the repository: "
                         f"{shown}{more} (remove them or list them in .dockerignore)")
    return context, dockerfile


def missing(root: Path, relative: str, *, directory: bool = False) -> str | None:
    """None when `relative` exists under `root` as a file (or directory); else which part
    is missing and what is there instead. A misspelt Dockerfile, build context or compose
    file fails its stage (it never skips):
    `no Dockerfile.production in project/; found Dockerfile, Dockerfile.prod`."""
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    here = root
    for depth, part in enumerate(parts):
        wanted_dir = depth < len(parts) - 1 or directory
        candidate = here / part
        exists = candidate.is_dir() if wanted_dir else candidate.is_file()
        if exists:
            here = candidate
            continue
        where = "/".join(parts[:depth]) + "/" if depth else "./"
        return f"no {part}{'/' if wanted_dir else ''} in {where}; {_found(here, part, wanted_dir)}"
    return None


def _found(parent: Path, name: str, directory: bool) -> str:
    try:
        entries = [p.name for p in parent.iterdir()
                   if (p.is_dir() if directory else p.is_file()) and p.name != ".git"]
    except OSError:
        entries = []
    stem = name.split(".")[0].lower()
    close = set(difflib.get_close_matches(name, entries, n=5, cutoff=0.6))
    close |= {e for e in entries if stem and e.lower().split(".")[0] == stem}
    if not close:
        return "nothing with a similar name there"
    return "found " + ", ".join(e + ("/" if directory else "") for e in sorted(close)[:5])
