"""Shared fixtures: Docker engine, base image, a local registry, git daemon, sample repos.

Docker rule: tests that need the engine (marked ``@pytest.mark.docker`` or using
``docker_client``/``base_image``/``requires_docker``) fail with a clear message when the
engine is unreachable: it is missing set-up (`make test` installs and starts it), never a
reason to skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.bus import Bus
from agent.logs.writer import LogWriter
from store.store import Store
from tests.harness import wait_until
from tests.helpers import (
    ensure_base_image,
    fail_missing,
    free_port,
    http_get,
    port_open,
    require_docker,
)
from tests.sample_repo import SampleRepo, git, make_sample_service_repo

# Fixtures that imply the docker marker (so `-m "not docker"` deselects their users).
_DOCKER_FIXTURES = {"docker_client", "base_image", "requires_docker"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker"):
        require_docker()


# --- Docker ----------------------------------------------------------------------------


@pytest.fixture
def requires_docker() -> None:
    """Use (or mark ``@pytest.mark.docker``) to fail a test clearly when the engine is down."""
    require_docker()


@pytest.fixture(scope="session")
def docker_client():
    """A ``docker.DockerClient`` for the local engine (``docker.from_env()``)."""
    require_docker()
    import docker

    client = docker.from_env(timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """Name of the local busybox base image, built by scripts/build-base-image.sh if missing."""
    return ensure_base_image(docker_client)


# --- Registry (Debian's docker-registry, i.e. distribution 2.x) -------------------------

REGISTRY_BIN = "docker-registry"

_REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT": use as image prefix, e.g. f"{registry.host}/svc:sha"
    root: Path
    log_path: Path
    proc: subprocess.Popen = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def tags(self, repo: str) -> list[str]:
        """Tags of ``repo`` (e.g. "seamless/svc"); [] when the repository does not exist."""
        try:
            with urllib.request.urlopen(f"{self.url}/v2/{repo}/tags/list", timeout=5) as resp:
                return sorted(json.load(resp).get("tags") or [])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise

    def catalog(self) -> list[str]:
        with urllib.request.urlopen(f"{self.url}/v2/_catalog", timeout=5) as resp:
            return list(json.load(resp).get("repositories") or [])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_registry(binary: str, workdir: Path) -> Registry | None:
    """Start a registry on a fresh port; None if it died or never answered."""
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(_REGISTRY_CONFIG.format(root=workdir / "data", port=port))
    log_path = workdir / "registry.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    reg = Registry(f"127.0.0.1:{port}", workdir / "data", log_path, proc)
    try:
        wait_until(
            lambda: proc.poll() is not None or http_get(f"{reg.url}/v2/") is not None,
            timeout=15,
            what="registry /v2/",
        )
    except TimeoutError:
        pass
    if proc.poll() is None and http_get(f"{reg.url}/v2/") is not None:
        return reg
    _stop(proc)
    return None


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A throwaway plain-HTTP registry on 127.0.0.1 (dockerd trusts loopback registries)."""
    binary = shutil.which(REGISTRY_BIN)
    if not binary:
        fail_missing(f"{REGISTRY_BIN} not installed (Debian package docker-registry)")
    workdir = tmp_path_factory.mktemp("registry")
    reg = None
    for _attempt in range(3):  # the free port may be taken between probe and bind
        reg = _start_registry(binary, workdir)
        if reg:
            break
    if reg is None:
        log = (workdir / "registry.log").read_text()[-2000:]
        pytest.fail(f"docker-registry did not start; log:\n{log}", pytrace=False)
    yield reg
    _stop(reg.proc)


# --- git daemon ------------------------------------------------------------------------


class GitDaemonURL(str):
    """The daemon's base URL ``git://127.0.0.1:PORT/`` (a str), plus where it serves from.

    ``git_daemon + "svc.git"`` is a clone URL for ``git_daemon.base_path / "svc.git"``.
    """

    base_path: Path

    def __new__(cls, url: str, base_path: Path) -> GitDaemonURL:
        obj = super().__new__(cls, url)
        obj.base_path = base_path
        return obj

    def publish(self, repo: SampleRepo, name: str | None = None, remote: str = "daemon") -> str:
        """Bare-clone ``repo`` under the daemon, add it as ``remote`` of ``repo``, return its URL.

        Afterwards ``repo.commit(...); repo.push("daemon")`` makes new commits visible to
        anyone polling the returned URL.
        """
        name = name or f"{repo.path.name}.git"
        bare = self.base_path / name
        git(self.base_path, "clone", "-q", "--bare", str(repo.path), str(bare))
        repo.add_remote(str(bare), remote)
        return self + name


def _start_git_daemon(base: Path, log_path: Path) -> tuple[subprocess.Popen, int] | None:
    port = free_port()
    args = [
        "git", "daemon", "--export-all", "--reuseaddr", "--informative-errors",
        f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}", "--enable=receive-pack",
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: proc.poll() is not None or port_open("127.0.0.1", port),
            timeout=10,
            what="git daemon",
        )
    except TimeoutError:
        pass
    if proc.poll() is None and port_open("127.0.0.1", port):
        return proc, port
    _stop(proc)
    return None


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemonURL]:
    """``git daemon`` on 127.0.0.1 serving (and accepting pushes to) a temp directory."""
    base = tmp_path_factory.mktemp("git-daemon")
    log_path = base.parent / f"{base.name}.log"
    started = None
    for _attempt in range(3):  # the free port may be taken between probe and bind
        started = _start_git_daemon(base, log_path)
        if started:
            break
    if started is None:
        pytest.fail(f"git daemon did not start; log:\n{log_path.read_text()[-2000:]}")
    proc, port = started
    yield GitDaemonURL(f"git://127.0.0.1:{port}/", base)
    _stop(proc)


# --- sample repos and data dirs --------------------------------------------------------


@pytest.fixture
def sample_repo(tmp_path: Path) -> Callable[..., SampleRepo]:
    """Factory: ``sample_repo(name="svc", unit_test_passes=True, version="v1")``.

    Each call creates a fresh git repo under ``tmp_path / "repos" / name``.
    """

    def make(name: str = "svc", **kwargs) -> SampleRepo:
        return make_sample_service_repo(tmp_path / "repos" / name, name, **kwargs)

    return make


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    """An (existing) empty data directory for an agent/store under test."""
    path = tmp_path / "data"
    path.mkdir()
    return path


# --- a store and its log writer ----------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store in the test's temp dir."""
    db = Store(tmp_path / "seamless.db")
    yield db
    db.close()


@pytest.fixture
def writer(store: Store) -> Iterator[LogWriter]:
    """The real log writer (batches into `store`, publishes on its own bus)."""
    w = LogWriter(store, Bus())
    w.start()
    yield w
    w.stop()
