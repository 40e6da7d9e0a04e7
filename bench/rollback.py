"""Rollback time and availability of the Docker (blue-green) deploy target.

1. Rollback time: with v1 and v2 both deployed once, ten rollbacks alternating between
   them, each timed from the rollback request until the stable address answers the
   rolled-back version (new colour healthy and serving). Median reported (goal < 3 s).
2. Availability: 20 blue-green deploys alternating v1/v2 while a client requests the
   stable address in a loop (new connection each time); failed requests counted (goal 0).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import docker
from _common import parser, report

from agent.bus import Bus
from agent.deploy.deployer import Deployer
from agent.logs.logger import LoggingStageLog
from store.models import (
    DockerTargetConfig,
    HealthCheck,
    PipelineConfig,
    RunKind,
    ServiceConfig,
    Trigger,
)
from store.store import Store

BASE_IMAGE = "seamless/busybox:latest"
PORT = 8080


def build(client: docker.DockerClient, tag: str, version: str) -> None:
    ctx = Path(tempfile.mkdtemp(prefix="seamless-bench-"))
    try:
        (ctx / "app").mkdir()
        (ctx / "app" / "version").write_text(f"{version}\n")
        (ctx / "app" / "health").write_text("ok\n")
        (ctx / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}\nCOPY app /www\nSTOPSIGNAL SIGKILL\n"
            f'CMD ["httpd", "-f", "-p", "{PORT}", "-h", "/www"]\n')
        client.images.build(path=str(ctx), tag=tag, rm=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def version_at(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/version", timeout=2) as resp:
            return resp.read().decode().strip()
    except OSError:
        return None


class Client(threading.Thread):
    """Requests the stable address in a loop and counts failures."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.ok, self.failed = url, 0, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if version_at(self.url) in ("v1", "v2"):
                self.ok += 1
            else:
                self.failed += 1


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    client = docker.from_env(timeout=120)
    tmp = Path(tempfile.mkdtemp(prefix="seamless-bench-rollback-"))
    name = f"bench-{uuid.uuid4().hex[:8]}"
    images = {v: (sha * 40, f"seamless-bench/{name}:{sha * 40}")
              for v, sha in (("v1", "1"), ("v2", "2"))}
    for version, (_sha, tag) in images.items():
        build(client, tag, version)
    store = Store(tmp / "seamless.db")
    deployer = Deployer(store, Bus(), None, lambda: client, tmp / "fronts")
    pipeline = store.create_pipeline(PipelineConfig(
        name=name, staging=DockerTargetConfig(), production=DockerTargetConfig()))
    service = store.create_service(ServiceConfig(
        name=name, pipeline=name, repo_url="/tmp/none", container_port=PORT,
        health_check=HealthCheck(path="/health", timeout_s=10, interval_s=0.05)))

    def deploy(version: str) -> None:
        sha, tag = images[version]
        run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full, sha=sha)
        result = deployer.deploy_stage(run, service, pipeline, "production", tag,
                                       LoggingStageLog("bench"))
        if not result.ok:
            raise SystemExit(f"deploy of {version} failed: {result.error}")

    try:
        deploy("v1")
        current = store.current_deployment(service.id, "production")
        url = store.deployment_target_state(current.id)["address"]

        deploys, started = 20, time.monotonic()
        hammer = Client(url)
        hammer.start()
        for i in range(deploys):
            deploy("v2" if i % 2 == 0 else "v1")
        hammer.stop.set()
        hammer.join()
        elapsed = time.monotonic() - started

        times = []
        for i in range(10):
            version = "v2" if i % 2 == 0 else "v1"  # the 20 deploys left v1 live
            t0 = time.monotonic()
            deployer.rollback(service, "production", images[version][0], actor="bench")
            while version_at(url) != version:
                time.sleep(0.005)
            times.append(time.monotonic() - t0)
            deployer.wait_idle()  # the old colour stopped before the next one
    finally:
        deployer.close()
        for c in client.containers.list(all=True,
                                        filters={"label": f"io.seamless.service={name}"}):
            c.remove(force=True)
        for net in client.networks.list(names=[f"seamless-{name}-production"]):
            net.remove()
        for _sha, tag in images.values():
            client.images.remove(tag, force=True)
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)

    median = statistics.median(times)
    report("Docker target: rollback time and availability during blue-green deploys", [
        ("rollback time, median of 10 (s)", median),
        ("rollback time, min (s)", min(times)),
        ("rollback time, max (s)", max(times)),
        ("blue-green deploys", deploys),
        ("requests during deploys", hammer.ok + hammer.failed),
        ("requests per second", (hammer.ok + hammer.failed) / elapsed),
        ("failed requests", hammer.failed),
        ("seconds per deploy", elapsed / deploys),
    ], {"median_s": round(median, 3), "failed_requests": hammer.failed, "deploys": deploys,
        "min_s": round(min(times), 3), "max_s": round(max(times), 3),
        "requests": hammer.ok + hammer.failed}, args.json)


if __name__ == "__main__":
    main()
