"""A real git repository holding a tiny containerized service, for pipeline tests.

The service is busybox ``httpd`` serving ``app/`` (``/health`` -> ``ok``,
``/version`` -> the version string). The repo carries everything a full
pipeline run needs: ``lint.sh``, ``test.sh``, a ``Dockerfile`` FROM the local
base image, a ``compose.yaml`` that runs the just-built image (named by the
``SEAMLESS_IMAGE`` environment variable, since compose cannot pull here) and
``integration.sh``, which checks ``http://app:<port>/health`` from a container
joined to the compose network.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent.demo.shop import CONTAINER_PORT, ShopRepo, service_files, unit_test_script

GIT_ENV = {
    # Keep tests independent from the machine's git configuration.
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(cwd: Path | str, *args: str) -> str:
    """Run git in ``cwd`` and return its stripped stdout (raises on failure)."""
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}:\n{proc.stderr}")
    return proc.stdout.strip()


def _service_files(name: str, version: str, unit_test_passes: bool) -> dict[str, str]:
    """The demo shop's service files (the product ships them; tests build on the same)."""
    files = service_files(name, version)
    files["test.sh"] = unit_test_script(name, unit_test_passes)
    return files


@dataclass
class SampleRepo:
    path: Path
    name: str = "svc"
    port: int = CONTAINER_PORT

    @property
    def url(self) -> str:
        """Usable as a service's repo_url (git clones local paths directly)."""
        return str(self.path)

    @property
    def head_sha(self) -> str:
        return git(self.path, "rev-parse", "HEAD")

    @property
    def current_branch(self) -> str:
        return git(self.path, "rev-parse", "--abbrev-ref", "HEAD")

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        """Write ``files`` (path -> content; ``*.sh`` made executable), commit, return the sha."""
        return ShopRepo(self.name, self.path).commit(message, files or {})

    def set_unit_tests(self, passing: bool) -> str:
        state = "pass" if passing else "fail"
        script = unit_test_script(self.name, passing)
        return self.commit(f"make unit tests {state}", {"test.sh": script})

    def set_version(self, version: str) -> str:
        index = f"<h1>{self.name}</h1><p>{version}</p>\n"
        return self.commit(
            f"release {version}", {"app/version": f"{version}\n", "app/index.html": index}
        )

    def branch(self, name: str, checkout: bool = True) -> None:
        """Create branch ``name`` at HEAD (and switch to it, so next commits land there)."""
        git(self.path, "branch", name)
        if checkout:
            self.checkout(name)

    def checkout(self, name: str) -> None:
        git(self.path, "checkout", "-q", name)

    def add_remote(self, url: str, remote: str = "origin") -> None:
        git(self.path, "remote", "add", remote, url)

    def push(self, remote: str = "origin", branch: str | None = None) -> None:
        """Push ``branch`` (default: all branches) to ``remote``."""
        if branch:
            git(self.path, "push", "-q", remote, f"{branch}:{branch}")
        else:
            git(self.path, "push", "-q", "--all", remote)


def make_sample_service_repo(
    path: Path | str,
    name: str = "svc",
    *,
    unit_test_passes: bool = True,
    version: str = "v1",
) -> SampleRepo:
    """Create the sample service repository at ``path`` with one commit on ``main``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Seamless Tests")
    git(path, "config", "user.email", "tests@seamless.invalid")
    git(path, "config", "commit.gpgsign", "false")
    repo = SampleRepo(path=path, name=name, port=CONTAINER_PORT)
    repo.commit(f"initial {name} service", _service_files(name, version, unit_test_passes))
    return repo
