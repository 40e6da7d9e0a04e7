"""Dependency caches: a per-service directory mounted at /cache with the package
managers' variables set, kept across runs and branches, LRU-bounded, clearable."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.executors.caches import Caches
from agent.runtime import Agent
from store.models import RunKind, RunStatus
from tests.engine.conftest import add_service, log_text, push, wait_run

# What `pip install` does with its cache, in a line: use it when there, fill it when not.
USES_CACHE = ('echo "pip cache: $PIP_CACHE_DIR npm cache: $npm_config_cache go: $GOMODCACHE"; '
              'if [ -f "$PIP_CACHE_DIR/wheel" ]; then echo "cache: hit"; '
              'else echo "cache: miss"; mkdir -p "$PIP_CACHE_DIR"; '
              'head -c 4096 /dev/zero > "$PIP_CACHE_DIR/wheel"; fi')


async def test_the_cache_is_kept_across_runs_and_branches_and_clearable(
        agent: Agent, sample_repo) -> None:
    repo = sample_repo("cached")
    service = add_service(agent, repo, code_quality_command=None, unit_test_command=USES_CACHE,
                          compose_file=None, integration_test_command=None, dockerfile=None)

    async def unit_test_output(sha: str, branch: str) -> str:
        run = push(agent, service, sha, kind=RunKind.partial)
        run = await wait_run(agent, run.id)
        assert run.status is RunStatus.success, log_text(agent, run.id, "Unit Test")
        return log_text(agent, run.id, "Unit Test")

    first = await unit_test_output(repo.head_sha, "main")
    assert "pip cache: /cache/pip npm cache: /cache/npm go: /cache/go/mod" in first
    assert "cache: miss" in first
    repo.branch("feature")
    other_branch = await unit_test_output(repo.commit("on a branch"), "feature")
    assert "cache: hit" in other_branch

    caches = Caches(agent.config.caches_dir, 0)
    assert caches.size("cached") == 4096
    assert caches.clear("cached") == 4096
    assert "cache: miss" in await unit_test_output(repo.head_sha, "feature")


def test_the_least_recently_used_files_go_first(tmp_path: Path) -> None:
    caches = Caches(tmp_path, max_bytes=2500)
    root = caches.dir_for("svc")
    now = time.time()
    for age, name in ((300, "old"), (200, "older-but-used"), (100, "new")):
        path = root / "pip" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age, now - age))
    os.utime(root / "pip" / "older-but-used", (now - 10, now - 200))  # read a moment ago

    removed = caches.trim("svc")

    assert [Path(p).name for p in removed] == ["old"]
    assert sorted(p.name for p in (root / "pip").iterdir()) == ["new", "older-but-used"]
    assert caches.size("svc") == 2000
