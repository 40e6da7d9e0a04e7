"""Build the project's wheel and install it into a fresh virtualenv, as a user would
(`pip wheel` + `python -m venv` + `pip install`), and run its programs from outside the
source tree. Used by tests/install/ and bench/first_run.py."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "store", "seamless_tui")
INSTALL_TIMEOUT_S = 600


def build_wheel(out_dir: Path, source: Path = REPO_ROOT) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(out_dir), str(source)], check=True, capture_output=True, text=True,
                   timeout=INSTALL_TIMEOUT_S)
    (wheel,) = out_dir.glob("seamless-*.whl")
    return wheel


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no virtualenv, no PYTHONPATH, no SEAMLESS_*."""
    keep = ("PATH", "LANG", "LC_ALL", "DOCKER_HOST", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), TERM="xterm-256color")
    env.update(extra)
    return env


@dataclass
class Installed:
    venv: Path
    install_s: float

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def install_into_fresh_venv(wheel: Path, venv: Path,
                            env: dict[str, str] | None = None) -> Installed:
    """`python -m venv` + `pip install WHEEL` (dependencies from the package index)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                   timeout=INSTALL_TIMEOUT_S)
    result = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
                            capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                            cwd=venv, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"pip install {wheel.name} failed:\n{result.stderr[-3000:]}")
    return Installed(venv, time.monotonic() - started)


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, mode)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def shared_install(root: Path) -> Installed:
    """One wheel and one fresh venv under `root` for every test process (pytest-xdist
    workers share `root`): the first one builds, the others wait and reuse it."""
    root.mkdir(parents=True, exist_ok=True)
    done = root / "installed.json"
    with _flock(root / "build.lock", fcntl.LOCK_EX):
        if not done.exists():
            wheel = build_wheel(root / "dist")
            installed = install_into_fresh_venv(wheel, root / "venv")
            done.write_text(json.dumps({"wheel": str(wheel), "install_s": installed.install_s}))
    return Installed(root / "venv", json.loads(done.read_text())["install_s"])


@contextlib.contextmanager
def using(installed: Installed, *, exclusive: bool = False) -> Iterator[Installed]:
    """Hold the install shared while running from it; exclusive to change it for a test."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with _flock(installed.venv.parent / "use.lock", mode):
        yield installed
