"""The demo shop: three small HTTP services, each a real git repository on disk, and a
monorepo (`storefront`) holding two more services and the library folder they share.

Every service is busybox `httpd` serving `app/` (`/health` -> `ok`, `/version` -> its
version) from an image built FROM the local base image, with everything the shared
pipeline runs: `lint.sh`, `test.sh`, a `Dockerfile`, a `compose.yaml` that starts the
just-built image (named by `SEAMLESS_IMAGE`: compose cannot pull here) and
`integration.sh`, which checks the service from a container on the compose network.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

BASE_IMAGE = "seamless/busybox:latest"
IMAGE_PREFIX = "seamless-demo"  # every image the demo builds: seamless-demo/<service>:<sha>
SERVICE_NAMES = ("payments", "inventory", "notifications")
# The storefront monorepo: services/catalog, services/web (web deploys after catalog) and
# libs/common, a change to which runs both.
MONOREPO_NAME = "storefront"
MONO_SERVICES = ("catalog", "web")
SHARED_LIBRARY = "libs/common"
CONTAINER_PORT = 8080

_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "Dana Demo",
    "GIT_AUTHOR_EMAIL": "dana@shop.example",
    "GIT_COMMITTER_NAME": "Dana Demo",
    "GIT_COMMITTER_EMAIL": "dana@shop.example",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **_GIT_ENV}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def unit_test_script(name: str, passing: bool) -> str:
    last = "test_version ... ok" if passing else "test_version ... FAILED"
    summary = "4 passed" if passing else "1 failed, 3 passed"
    failure = ("" if passing else
               'echo "  AssertionError: version file must be one line: got 2" >&2\n')
    return (
        "#!/bin/sh\n"
        f"# Unit tests of the {name} service (kept tiny: this is a demo).\n"
        "set -u\n"
        'echo "collected 4 tests"\n'
        'test -s app/health && echo "test_health_file ... ok"\n'
        'grep -q "<h1>" app/index.html && echo "test_index_title ... ok"\n'
        'echo "test_config_defaults ... ok"\n'
        f'echo "{last}"\n'
        f"{failure}"
        f'echo "{summary}"\n'
        f"exit {0 if passing else 1}\n"
    )


def service_files(name: str, version: str) -> dict[str, str]:
    port = CONTAINER_PORT
    return {
        "app/index.html": f"<h1>{name}</h1><p>{version}</p>\n",
        "app/health": "ok\n",
        "app/version": f"{version}\n",
        "README.md": f"# {name}\n\nA demo service of the Seamless shop, served by busybox httpd.\n",
        "Dockerfile": (
            f"FROM {BASE_IMAGE}\n"
            "COPY app /www\n"
            f"EXPOSE {port}\n"
            "# busybox httpd ignores SIGTERM as PID 1: without this `docker stop` waits 10 s.\n"
            "STOPSIGNAL SIGKILL\n"
            f'CMD ["httpd", "-f", "-p", "{port}", "-h", "/www"]\n'
        ),
        "lint.sh": (
            "#!/bin/sh\n"
            "# Code quality: the files the service needs exist and scripts have no CRLF.\n"
            "set -e\n"
            "for f in app/index.html app/health app/version Dockerfile; do test -s \"$f\"; done\n"
            "if grep -l \"$(printf '\\r')\" *.sh; then\n"
            "    echo 'lint: CRLF line endings' >&2; exit 1\n"
            "fi\n"
            'echo "lint: checked $(ls *.sh | wc -l) scripts, 0 problems"\n'
        ),
        "test.sh": unit_test_script(name, passing=True),
        "compose.yaml": (
            'version: "3"\n'
            "services:\n"
            "  app:\n"
            "    # The image built from this commit; compose must not build or pull.\n"
            "    image: ${SEAMLESS_IMAGE:?set SEAMLESS_IMAGE to the image to test}\n"
        ),
        "integration.sh": (
            "#!/bin/sh\n"
            "# Runs in a container on the compose network, where the service is `app`.\n"
            f'base="http://${{APP_HOST:-app}}:{port}"\n'
            "i=0\n"
            "while [ $i -lt 100 ]; do\n"
            '    body=$(wget -qO- "$base/health" 2>/dev/null) && [ "$body" = ok ] && {\n'
            '        echo "integration: GET $base/health -> $body"\n'
            '        echo "integration: GET $base/version -> $(wget -qO- "$base/version")"\n'
            "        exit 0\n"
            "    }\n"
            "    i=$((i + 1))\n"
            "    sleep 0.2\n"
            "done\n"
            'echo "integration: $base/health never answered ok" >&2\n'
            "exit 1\n"
        ),
    }


@dataclass
class ShopRepo:
    """One service's repository; commits land on `main`."""

    name: str
    path: Path

    @property
    def url(self) -> str:
        return str(self.path)

    @property
    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")

    def commit(self, message: str, files: dict[str, str]) -> str:
        for rel, content in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            if rel.endswith(".sh"):
                target.chmod(0o755)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return self.head

    def release(self, version: str, message: str) -> str:
        return self.commit(message, {
            "app/version": f"{version}\n",
            "app/index.html": f"<h1>{self.name}</h1><p>{version}</p>\n",
        })

    def break_unit_tests(self, version: str, message: str) -> str:
        """A commit whose unit tests fail (the version file gains a second line)."""
        return self.commit(message, {
            "app/version": f"{version}\n{version}-dirty\n",
            "test.sh": unit_test_script(self.name, passing=False),
        })

    def commit_info(self, sha: str) -> dict[str, str]:
        fmt = "%H%x00%an%x00%ae%x00%cI%x00%B"
        sha, author, email, when, message = git(self.path, "show", "-s", f"--format={fmt}",
                                                sha).split("\x00", 4)
        return {"sha": sha, "author": author, "email": email, "timestamp": when,
                "message": message.strip()}

    def changed_files(self, sha: str) -> dict[str, list[str]]:
        out = git(self.path, "show", "--name-status", "--format=", sha)
        files: dict[str, list[str]] = {"added": [], "removed": [], "modified": []}
        for line in out.splitlines():
            status, _, path = line.partition("\t")
            key = {"A": "added", "D": "removed"}.get(status[:1], "modified")
            files[key].append(path)
        return files


def create_repo(root: Path, name: str, version: str = "v1") -> ShopRepo:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "commit.gpgsign", "false")
    repo = ShopRepo(name=name, path=path)
    repo.commit(f"{name}: first version of the service", service_files(name, version))
    return repo


def service_name(role: str, suffix: str = "") -> str:
    """`payments`, or `payments-<suffix>` so two demos can share one Docker engine."""
    return f"{role}-{suffix}" if suffix else role


def create_shop(root: Path, suffix: str = "") -> dict[str, ShopRepo]:
    """The three services' repositories under `root` (one commit each: version v1),
    keyed by their role in the story (payments, inventory, notifications)."""
    return {role: create_repo(root, service_name(role, suffix)) for role in SERVICE_NAMES}


class MonoRepo(ShopRepo):
    """The storefront monorepo: each service in `services/<role>/`, the shared library in
    `libs/common/`. `names` maps a role to its service name (suffixed in tests)."""

    def __init__(self, name: str, path: Path, names: dict[str, str]) -> None:
        super().__init__(name=name, path=path)
        self.names = names

    @staticmethod
    def folder(role: str) -> str:
        return f"services/{role}"

    def release_service(self, role: str, version: str, message: str) -> str:
        """A commit touching only `role`'s folder."""
        name, folder = self.names[role], self.folder(role)
        return self.commit(message, {
            f"{folder}/app/version": f"{version}\n",
            f"{folder}/app/index.html": f"<h1>{name}</h1><p>{version}</p>\n",
        })

    def change_library(self, text: str, message: str) -> str:
        """A commit touching only the shared library (every service depends on it)."""
        return self.commit(message, {f"{SHARED_LIBRARY}/currency.sh": text})


def create_monorepo(root: Path, suffix: str = "", version: str = "v1") -> MonoRepo:
    """The storefront repository: two services and a shared library, one commit."""
    name = service_name(MONOREPO_NAME, suffix)
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "commit.gpgsign", "false")
    names = {role: service_name(role, suffix) for role in MONO_SERVICES}
    repo = MonoRepo(name=name, path=path, names=names)
    files = {f"{SHARED_LIBRARY}/currency.sh": "SHOP_CURRENCY=EUR\n",
             "README.md": "# storefront\n\nTwo services and the library they share.\n"}
    for role in MONO_SERVICES:
        for rel, content in service_files(names[role], version).items():
            files[f"{MonoRepo.folder(role)}/{rel}"] = content
    repo.commit("storefront: catalog and web, first version", files)
    return repo
