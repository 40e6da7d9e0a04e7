"""Fixtures for deploy tests: sample service images, a store with a pipeline and service,
a Deployer on the real Docker engine, and a stand-in for the workspace mirror."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.bus import Bus
from agent.deploy.deployer import Deployer
from store.models import (
    CommitSummary,
    DockerTargetConfig,
    HealthCheck,
    PipelineConfig,
    RunKind,
    ServiceConfig,
    Trigger,
)
from store.store import Store
from tests.helpers import BASE_IMAGE, unique_name

PORT = 8080


def _dockerfile(cmd: str, tag: str) -> str:
    # The tag's label first: no intermediate image is shared with another build (a
    # parallel worker's identical one), whose removal would prune it from under this one.
    return (f'FROM {BASE_IMAGE}\nLABEL io.seamless.test-image="{tag}"\n'
            f"COPY app /www\nEXPOSE {PORT}\n"
            "# busybox httpd ignores SIGTERM as PID 1\nSTOPSIGNAL SIGKILL\n"
            f'CMD ["sh", "-c", "{cmd}"]\n')


def cgi_script(version: str, *, error_percent: int = 0, delay_s: float = 0,
               first_delay_s: float = 0) -> str:
    """/cgi-bin/version: answers `version`, 500 on `error_percent` % of requests, after
    `delay_s` (busybox httpd runs it per request); the container's first request only
    waits `first_delay_s` (a request stalled once, as a busy host does)."""
    delay = f"sleep {delay_s}\n" if delay_s else ""
    if first_delay_s:
        delay += f"[ -e /tmp/stalled ] || {{ touch /tmp/stalled; sleep {first_delay_s}; }}\n"
    fail = (f"if [ $((RANDOM % 100)) -lt {error_percent} ]; then\n"
            "  printf 'Status: 500 Internal Server Error\\r\\n\\r\\nboom\\n'; exit 0\nfi\n"
            if error_percent else "")
    return f"#!/bin/sh\n{delay}{fail}printf 'Content-Type: text/plain\\r\\n\\r\\n{version}\\n'\n"


def build_image(client, tag: str, version: str, *, healthy: bool = True,
                start_delay_s: float = 0, cgi: str | None = None) -> str:
    ctx = Path(tempfile.mkdtemp(prefix="seamless-deploy-img-"))
    try:
        (ctx / "app").mkdir()
        (ctx / "app" / "version").write_text(f"{version}\n")
        if cgi is not None:
            (ctx / "app" / "cgi-bin").mkdir()
            (ctx / "app" / "cgi-bin" / "version").write_text(cgi)
            (ctx / "app" / "cgi-bin" / "version").chmod(0o755)
        if healthy:
            (ctx / "app" / "health").write_text("ok\n")
        delay = f"sleep {start_delay_s}; " if start_delay_s else ""
        dockerfile = _dockerfile(f"{delay}exec httpd -f -p {PORT} -h /www", tag)
        (ctx / "Dockerfile").write_text(dockerfile)
        client.images.build(path=str(ctx), tag=tag, rm=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    return tag


class Images(dict):
    repo: str


@pytest.fixture(scope="session")
def service_images(docker_client, base_image) -> Iterator[Images]:
    """sha-tagged images of one sample service: v1, v2, broken (no /health), slow (v3)."""
    repo = unique_name("seamless-test/deploy")
    images = Images()
    images.repo = repo
    specs: dict[str, tuple[str, dict[str, Any]]] = {"v1": ("a" * 40, {}), "v2": ("b" * 40, {}),
             "broken": ("c" * 40, {"healthy": False}),
             "slow": ("d" * 40, {"start_delay_s": 2})}
    for name, (sha, kwargs) in specs.items():
        images[name] = (sha, build_image(docker_client, f"{repo}:{sha}", name, **kwargs))
    yield images
    name = repo.rsplit("/", 1)[-1]  # also the registry copies the ECS push tagged
    tags = [t for img in docker_client.images.list() for t in img.tags
            if t.rsplit(":", 1)[0].rsplit("/", 1)[-1] == name]
    for tag in tags:
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:
            pass


class FakeWorkspaces:
    """Stands in for agent.engine.workspace.Workspaces: commit times and ranges."""

    def __init__(self) -> None:
        self.committed_at = datetime.now(UTC) - timedelta(hours=1)
        self.between_calls: list[tuple[str | None, str]] = []

    def commit_info(self, service, sha: str) -> CommitSummary:
        return CommitSummary(sha=sha, author="dev", message=f"commit {sha[:7]}",
                             committed_at=self.committed_at)

    def commits_between(self, service, old_sha, new_sha, limit=50) -> list[CommitSummary]:
        self.between_calls.append((old_sha, new_sha))
        return [CommitSummary(sha=new_sha, author="dev", message="release v2")]


@pytest.fixture
def bus() -> Bus:
    return Bus()


@pytest.fixture
def events(bus: Bus) -> list:
    seen: list = []
    bus.add_listener(seen.append)
    return seen


def make_service(store: Store, repo: str, *, auto_deploy: bool = True,
                 production: DockerTargetConfig | None = None, **service_kwargs):
    pipeline = store.create_pipeline(PipelineConfig(
        name=unique_name("pl"), auto_deploy=auto_deploy, approval_expiry_s=3600,
        staging=DockerTargetConfig(), production=production or DockerTargetConfig()))
    service = store.create_service(ServiceConfig(
        name=unique_name("svc"), pipeline=pipeline.name, repo_url="/tmp/none",
        image_repository=repo, container_port=PORT,
        **{"health_check": HealthCheck(path="/health", timeout_s=5, interval_s=0.1),
           **service_kwargs}))
    return pipeline, service


def make_run(store: Store, service, sha: str, **kwargs):
    return store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full, sha=sha,
                            author="dev", message=f"commit {sha[:7]}", **kwargs)


@pytest.fixture
def fronts_dir(tmp_path) -> Path:
    return tmp_path / "fronts"


@pytest.fixture
def deployer(store, bus, docker_client, fronts_dir) -> Iterator[Deployer]:
    d = Deployer(store, bus, FakeWorkspaces(), lambda: docker_client, fronts_dir)
    yield d
    d.close()
    for service in store.list_services():
        for container in docker_client.containers.list(
                all=True, filters={"label": f"io.seamless.service={service.name}"}):
            container.remove(force=True)
        for env in ("staging", "production"):
            for net in docker_client.networks.list(names=[f"seamless-{service.name}-{env}"]):
                net.remove()


REGION = "us-east-1"


class MotoServer(str):
    """The moto server URL; `.client(name)` makes a boto3 client for it."""

    def client(self, name: str):
        import boto3

        return boto3.client(name, region_name=REGION, endpoint_url=str(self))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    import os

    from moto.server import ThreadedMotoServer

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        os.environ.setdefault(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield MotoServer(f"http://{host}:{port}")
    server.stop()
