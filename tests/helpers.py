"""Small helpers shared by the test suite (importable: ``from tests.helpers import ...``)."""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

# The one polling wait lives in the harness; re-exported for tests written against this module.
from tests.harness.waiting import wait_until as wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "seamless/busybox:latest"
BUILD_BASE_IMAGE_SCRIPT = REPO_ROOT / "scripts" / "build-base-image.sh"

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_name(prefix: str = "seamless-test") -> str:
    """A lowercase, docker- and compose-safe unique name (tests share one engine)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """``(status, body)`` of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return None


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- Docker availability -------------------------------------------------------------


_engine_error: str | None = None
_engine_probed = False


def docker_engine_error() -> str | None:
    """Why the Docker engine is unusable, or None when it answers. Probed once per session."""
    global _engine_error, _engine_probed
    if not _engine_probed:
        _engine_probed = True
        try:
            import docker

            client = docker.from_env(timeout=10)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:  # DockerException, requests errors, missing socket...
            _engine_error = f"Docker engine unreachable ({type(exc).__name__}: {exc})"
    return _engine_error


def fail_missing(reason: str) -> NoReturn:
    """A missing engine or tool is missing set-up, never a reason to skip: fail and say
    how to fix it (`make test` installs and starts everything itself)."""
    hint = " — run `make docker` (scripts/ensure-docker.sh) to install/start it"
    pytest.fail(f"{reason}{hint}", pytrace=False)


def require_docker() -> None:
    err = docker_engine_error()
    if err:
        fail_missing(err)


def ensure_base_image(client) -> str:  # client: docker.DockerClient
    """Build ``seamless/busybox:latest`` with the repo script unless it already exists."""
    import docker

    try:
        client.images.get(BASE_IMAGE)
        return BASE_IMAGE
    except docker.errors.ImageNotFound:
        pass
    proc = subprocess.run(
        [str(BUILD_BASE_IMAGE_SCRIPT)], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        pytest.fail(f"building {BASE_IMAGE} failed:\n{proc.stdout}{proc.stderr}", pytrace=False)
    return BASE_IMAGE
