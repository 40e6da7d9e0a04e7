"""Stage containers run as root and write into the per-service cache; an agent running
as its own user (the systemd service) still trims and clears it, whatever the owner and
mode of what the stage left (#17.6). Against the real engine: the files are written by a
real container, the clear runs in a process of a non-root user in the docker group."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

AGENT_USER = "daemon"  # stands for the service's own user

# Imports first, then the agent's user (its interpreter lives under /root here).
CLEAR = """
import os, sys
from pathlib import Path
import docker
from agent.executors.caches import Caches, CacheError
from agent.executors.docker import DockerExecutor

root, how = Path(sys.argv[1]), sys.argv[2]
uid, gid, docker_gid = (int(v) for v in sys.argv[4:7])
os.setgroups([docker_gid]); os.setgid(gid); os.setuid(uid)
caches = Caches(root, max_bytes=0)
if how == "with-engine":
    DockerExecutor(docker.from_env(), caches=caches)  # gives the caches its root remover
if how == "trim":
    DockerExecutor(docker.from_env(), caches=caches)
    print("trimmed", caches.trim("svc", sys.argv[3]))
    sys.exit()
try:
    print("freed", caches.clear("svc", sys.argv[3]))
except CacheError as exc:
    print("refused:", exc)
"""


def _as_agent_user(*args: str) -> subprocess.CompletedProcess[str]:
    account = pwd.getpwnam(AGENT_USER)
    ids = (account.pw_uid, account.pw_gid, grp.getgrnam("docker").gr_gid)
    return subprocess.run(
        [sys.executable, "-c", CLEAR, *args, *map(str, ids)], capture_output=True, text=True,
        timeout=120, cwd=REPO_ROOT, env={**os.environ, "HOME": "/tmp"})


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Where the agent's user can reach (pytest's own tmp dirs are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="seamless-cache-owners-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)  # as root: whatever the test left


def _cache_a_stage_wrote(data_dir: Path, base_image: str, docker_client) -> Path:
    root = data_dir / "caches"
    cache = root / "svc"
    cache.mkdir(parents=True)
    account = pwd.getpwnam(AGENT_USER)
    for path in (root, cache):  # the agent's own directories
        os.chown(path, account.pw_uid, account.pw_gid)
    # What `pip install` as root leaves: root's directories and files, some read-only,
    # one directory nobody may enter.
    docker_client.containers.run(
        base_image, ["sh", "-c", "mkdir -p /cache/pip/http/a /cache/npm/locked && "
                     "echo wheel > /cache/pip/http/a/w.whl && echo x > /cache/npm/locked/f && "
                     "chmod 0444 /cache/pip/http/a/w.whl && chmod 0 /cache/npm/locked"],
        volumes={str(cache): {"bind": "/cache", "mode": "rw"}}, remove=True)
    assert (cache / "pip").stat().st_uid == 0
    return cache


@pytest.mark.docker
def test_an_agent_running_as_its_own_user_clears_the_files_root_left_in_the_cache(
        data_dir: Path, base_image: str, docker_client) -> None:
    cache = _cache_a_stage_wrote(data_dir, base_image, docker_client)

    without = _as_agent_user(str(cache.parent), "no-engine", base_image)
    assert without.returncode == 0, without.stderr
    assert "refused:" in without.stdout and "owned by uid 0" in without.stdout
    assert f"sudo rm -rf {cache}" in without.stdout

    # Over its bound (0 bytes here): the least recently used files go, root's included.
    trimmed = _as_agent_user(str(cache.parent), "trim", base_image)
    assert trimmed.returncode == 0, trimmed.stderr
    assert "pip/http/a/w.whl" in trimmed.stdout
    assert not (cache / "pip/http/a/w.whl").exists()

    cleared = _as_agent_user(str(cache.parent), "with-engine", base_image)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.startswith("freed"), cleared.stdout
    assert not cache.exists()
