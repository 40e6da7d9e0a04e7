"""Fixtures for the security suite: a real agent served in its own process (the engine
and the API, as `seamless-agent serve` runs them), hostile repositories, cleanup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import serve, svc_name  # noqa: F401  (reused as they are)
from tests.sample_repo import SampleRepo, git, make_sample_service_repo


@pytest.fixture
def hostile_repo(tmp_path: Path) -> Callable[..., SampleRepo]:
    """Factory: a sample service repository, then `files` committed on top (a value of
    `("symlink", target)` commits a symlink)."""
    count = 0

    def make(files: dict[str, Any] | None = None) -> SampleRepo:
        nonlocal count
        count += 1
        repo = make_sample_service_repo(tmp_path / f"repo{count}", name=f"hostile{count}")
        plain = {k: v for k, v in (files or {}).items() if isinstance(v, str)}
        links = {k: v[1] for k, v in (files or {}).items() if isinstance(v, tuple)}
        for path, target in links.items():
            link = repo.path / path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(target)
            git(repo.path, "add", path)
        repo.commit("hostile change", plain)
        return repo

    return make


@pytest.fixture
def secret_file(tmp_path: Path) -> Iterator[Path]:
    """A host file outside every workspace, standing for the agent's admin token."""
    path = tmp_path / "outside" / "admin-token"
    path.parent.mkdir()
    path.write_text("TOKEN-9f2c41d7e0-outside\n")
    yield path
