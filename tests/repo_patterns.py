"""Fixture repositories shaped like real projects' (issue #17), as real git repos.

Each builder writes the files a public microservice repository typically has and
commits them; the app is busybox `httpd` (nothing can be pulled here), the
layouts and compose features are the real ones: custom networks, a `testing`
profile, `depends_on: condition: service_healthy`, named volumes, `env_file:`,
fixed host ports, `.env.example`, a Dockerfile in a subfolder.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import BASE_IMAGE
from tests.sample_repo import SampleRepo, git

APP_DOCKERFILE = (
    f"FROM {BASE_IMAGE}\n"
    "COPY app /www\n"
    "# busybox httpd ignores SIGTERM as PID 1: stop it at once\n"
    "STOPSIGNAL SIGKILL\n"
    'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
)

# Waits for a URL to answer, then prints what it said (a test's first step).
FETCH = (
    "fetch() {\n"
    "    i=0\n"
    "    while [ $i -lt 100 ]; do\n"
    '        body=$(wget -qO- "$1" 2>/dev/null) && { echo "$1 -> $body"; return 0; }\n'
    "        i=$((i + 1)); sleep 0.2\n"
    "    done\n"
    '    echo "$1 never answered" >&2; return 1\n'
    "}\n"
)


def make_repo(path: Path, files: dict[str, str], name: str = "svc") -> SampleRepo:
    """A git repository at `path` with `files` committed on `main`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Seamless Tests")
    git(path, "config", "user.email", "tests@seamless.invalid")
    git(path, "config", "commit.gpgsign", "false")
    repo = SampleRepo(path=path, name=name)
    repo.commit("initial commit", files)
    return repo


E2E_IGNORING_SIGTERM = (f"FROM {BASE_IMAGE}\n"
                        'ENTRYPOINT ["sh", "-c", "trap \\"\\" TERM; echo e2e: waiting; '
                        'while :; do sleep 1; done"]\n')


def networks_and_profile_repo(path: Path, host_port: int = 8000,
                              e2e_ignores_sigterm: bool = False) -> SampleRepo:
    """A web app and a cache on their own networks (`front`, `back`), the cache healthy
    before the app starts, a named volume, an `env_file:`, a fixed host port, and the
    end-to-end test as a compose service under the `testing` profile, built from its own
    Dockerfile (a second, per-run image) — or, with `e2e_ignores_sigterm`, one whose
    entrypoint ignores SIGTERM and never ends."""
    compose = f"""\
services:
  web:
    build: .
    ports: ["{host_port}:8080"]
    env_file: [web.env]
    command: ["sh", "-c", "echo $$WEB_MODE > /www/mode; httpd -f -p 8080 -h /www"]
    networks: [front, back]
    depends_on:
      cache:
        condition: service_healthy
  cache:
    image: {BASE_IMAGE}
    command: ["sh", "-c", "echo PONG > /data/ping; httpd -f -p 6379 -h /data"]
    volumes: ["cache-data:/data"]
    networks: [back]
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:6379/ping"]
      interval: 1s
      retries: 30
  e2e:
    build:
      context: .
      dockerfile: Dockerfile.e2e
    profiles: [testing]
    networks: [front]
    depends_on: [web]
    command: ["sh", "/e2e.sh"]
networks:
  front:
  back:
volumes:
  cache-data:
"""
    e2e = ("#!/bin/sh\nset -e\n" + FETCH +
           "fetch http://web:8080/health\nfetch http://web:8080/mode\n"
           # `cache` is only on `back`: the e2e service (on `front`) must not see it, a
           # test container (on every network) must.
           'if [ "${E2E_SEES_CACHE:-0}" = 1 ]; then fetch http://cache:6379/ping; fi\n'
           'echo "e2e: passed"\n')
    return make_repo(path, {
        "Dockerfile": APP_DOCKERFILE,
        "Dockerfile.e2e": (E2E_IGNORING_SIGTERM if e2e_ignores_sigterm
                           else f"FROM {BASE_IMAGE}\nCOPY e2e.sh /e2e.sh\n"),
        "app/health": "ok\n",
        "web.env": "WEB_MODE=from-env-file\n",
        "docker-compose.yml": compose,
        "e2e.sh": e2e,
    })


def env_example_repo(path: Path) -> SampleRepo:
    """Ports and settings interpolated from `.env`, which the repository ships only as
    `.env.example` (the usual way: `cp .env.example .env`)."""
    compose = """\
services:
  web:
    image: ${SEAMLESS_IMAGE}
    ports: ["${WEB_PORT}:8080"]
    environment:
      GREETING: ${GREETING}
      API_KEY: ${API_KEY:-none}
    command: ["sh", "-c", "echo $$GREETING > /www/greeting; echo $$API_KEY > /www/key;
                           httpd -f -p 8080 -h /www"]
"""
    return make_repo(path, {
        "Dockerfile": APP_DOCKERFILE,
        "app/health": "ok\n",
        ".env.example": "WEB_PORT=8000\nGREETING=hello-from-example\n",
        "compose.yaml": compose,
        "integration.sh": ("#!/bin/sh\nset -e\n" + FETCH +
                           "fetch http://web:8080/greeting\nfetch http://web:8080/key\n"),
    })


def fixed_ports_repo(path: Path, host_port: int) -> SampleRepo:
    """An app publishing a fixed host port and naming its container, as many do."""
    compose = f"""\
version: "3.8"
services:
  web:
    image: ${{SEAMLESS_IMAGE}}
    container_name: web
    ports:
      - "{host_port}:8080"
      - target: 8080
        published: {host_port + 1}
"""
    return make_repo(path, {
        "Dockerfile": APP_DOCKERFILE,
        "app/health": "ok\n",
        "compose.yaml": compose,
        "integration.sh": "#!/bin/sh\nset -e\n" + FETCH + "fetch http://web:8080/health\n",
    })


def subfolder_dockerfile_repo(path: Path) -> SampleRepo:
    """The production Dockerfile lives in `project/` as `Dockerfile.prod`, beside a dev
    `Dockerfile` (a FastAPI + Postgres layout)."""
    return make_repo(path, {
        "project/Dockerfile": APP_DOCKERFILE,
        "project/Dockerfile.prod": APP_DOCKERFILE,
        "project/app/health": "ok\n",
        "README.md": "# api\n",
    })
