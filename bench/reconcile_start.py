"""How long the agent's start-up reconciliation takes with many deployed services (#22.2).

N services (default 20) are deployed blue-green to production on the local Docker engine
(a colour and a front each). Then a new Deployer — what a restarted agent builds — runs
`reconcile_fronts()` twice:
1. steady: nothing to fix (the baseline, measured in the same run);
2. after faults like a kill -9 leaves them: a third of the services lost their active
   colour container (made again from its image and health-checked), a third have a
   deploy cut in progress (recorded interrupted, the stray colour removed).
Afterwards every production port must serve v1 again.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import docker
from _common import parser, report
from rollback import build, version_at

from agent.bus import Bus
from agent.deploy.deployer import Deployer
from agent.logs.logger import LoggingStageLog
from store.models import (
    DeploymentKind,
    DeploymentStatus,
    DockerTargetConfig,
    HealthCheck,
    PipelineConfig,
    RunKind,
    ServiceConfig,
    Trigger,
)
from store.store import Store

PORT = 8080  # the port rollback.build's image serves on


def serving(urls: list[str], timeout_s: float = 30.0) -> int:
    """How many addresses serve v1 (each given up to `timeout_s` to come back)."""
    deadline = time.monotonic() + timeout_s
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        pending = [u for u in pending if version_at(u) != "v1"]
        if pending:
            time.sleep(0.2)
    return len(urls) - len(pending)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=20)
    args = p.parse_args()
    client = docker.from_env(timeout=120)
    tmp = Path(tempfile.mkdtemp(prefix="seamless-bench-reconcile-"))
    prefix = f"bench-rec-{uuid.uuid4().hex[:6]}"
    sha = "1" * 40
    tag = f"seamless-bench/{prefix}:{sha}"
    build(client, tag, "v1")
    store = Store(tmp / "seamless.db")
    deployer = Deployer(store, Bus(), None, lambda: client, tmp / "fronts")
    store.create_pipeline(PipelineConfig(name=prefix, production=DockerTargetConfig()))
    pipeline = store.get_pipeline(prefix)
    services = [store.create_service(ServiceConfig(
        name=f"{prefix}-{i}", pipeline=prefix, repo_url="/tmp/none", container_port=PORT,
        health_check=HealthCheck(path="/health", timeout_s=20, interval_s=0.05)))
        for i in range(args.services)]
    try:
        urls = []
        for service in services:
            run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full, sha=sha)
            result = deployer.deploy_stage(run, service, pipeline, "production", tag,
                                           LoggingStageLog("bench"))
            if not result.ok:
                raise SystemExit(f"deploy of {service.name} failed: {result.error}")
            current = store.current_deployment(service.id, "production")
            state = store.deployment_target_state(current.id) if current else None
            assert state is not None
            urls.append(state["address"])

        restarted = Deployer(store, Bus(), None, lambda: client, tmp / "fronts")
        t0 = time.monotonic()
        steady = restarted.reconcile_fronts()
        steady_s = time.monotonic() - t0

        third = max(1, len(services) // 3)
        for service in services[:third]:  # the active colour's container is gone
            for c in client.containers.list(all=True, filters={"label": [
                    f"io.seamless.service={service.name}", "io.seamless.colour"]}):
                c.remove(force=True)
        for service in services[third:2 * third]:  # a deploy cut in progress
            store.create_deployment(service_id=service.id, environment="production",
                                    sha="2" * 40, image=tag, kind=DeploymentKind.deploy)
        restarted = Deployer(store, Bus(), None, lambda: client, tmp / "fronts")
        t0 = time.monotonic()
        faulted = restarted.reconcile_fronts()
        faulted_s = time.monotonic() - t0
        interrupted = sum(d.status is DeploymentStatus.interrupted
                          for s in services for d in store.list_deployments(
                              service_id=s.id, environment="production"))
        served = serving(urls)
    finally:
        for c in client.containers.list(all=True, filters={"label": "io.seamless.service"}):
            if c.labels.get("io.seamless.service", "").startswith(prefix):
                c.remove(force=True)
        for net in client.networks.list(names=[prefix]):
            if net.name.startswith(f"seamless-{prefix}"):
                net.remove()
        client.images.remove(tag, force=True)
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)

    report(f"Start-up reconciliation with {len(services)} services deployed", [
        ("services (production environments with a front)", len(services)),
        ("environments looked at", steady["environments"]),
        ("steady: nothing to fix (s)", steady_s),
        ("after faults (s)", faulted_s),
        ("  active colours made again", third),
        ("  deploys recorded interrupted", interrupted),
        ("after faults / steady", faulted_s / steady_s if steady_s else 0.0),
        ("production ports serving v1 afterwards", f"{served}/{len(urls)}"),
    ], {"services": len(services), "environments": steady["environments"],
        "steady_s": round(steady_s, 3), "faulted_s": round(faulted_s, 3),
        "ratio": round(faulted_s / steady_s, 2) if steady_s else None,
        "revived": third, "interrupted": interrupted,
        "served_steady": steady["served"], "served_faulted": faulted["served"],
        "serving_after": served, "ports": len(urls)}, args.json)


if __name__ == "__main__":
    main()
