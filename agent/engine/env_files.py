"""`env_files`: files a service's stages need that the repository ships only as a
template, e.g. `{".env": ".env.example"}` — made in the checkout before each stage."""

from __future__ import annotations

import shutil
from pathlib import Path

from agent.engine.workspace import WorkspaceError
from agent.executors.repo_paths import PathEscape, inside, missing
from agent.logs import StageLog
from store.models import Service


def make_env_files(service: Service, workspace: Path, log: StageLog) -> None:
    """Copy each source to its target inside the checkout (WorkspaceError: why not)."""
    for target, source in service.env_files.items():
        try:  # neither end may lead out of the checkout through a symlink
            src = inside(workspace, source, "env_files source")
            inside(workspace, str(Path(target).parent), "env_files target")
        except PathEscape as exc:
            raise WorkspaceError(str(exc)) from None
        if why := missing(workspace, source):
            raise WorkspaceError(f"env_files: {why}")
        dst = workspace / target
        if dst.is_symlink():  # never write through a link the repository ships
            dst.unlink()
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        log.system(f"env_files: {target} made from {source}")
