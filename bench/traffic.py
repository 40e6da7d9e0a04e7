"""Production traffic through the HAProxy front, on loopback, bounded.

Steady requests (one client, a new connection each) on a production port:
(a) across 10 kill -9s and restarts of the agent (`seamless-agent serve` in its own
    process on the same data dir: its start reconciles the front) — goal 0 failed;
(b) while a good build goes through a canary 10 → 50 → 100 % — goal 0 failed;
(c) while a bad build (500 on 20 % of requests) is deployed as a canary: the time
    from the canary's first answer (seen by the client) until the stage log says the
    canary was stopped (weight 0, drained, removed) — goal < 10 s;
(d) the front's p99 latency against a direct connection to the live colour's
    published port, measured in turns in the same run — goal ≤ 1.2×. Both paths use the
    same client (a new connection per request) and the same hop into the engine's
    network (the engine's userland proxy of a published loopback port). The app is busybox
    httpd, which closes every connection: the front must open one to it per request;
(e) the same with an app server that keeps connections alive (HAProxy answering by
    itself, standing in for nginx/Go/Node/uvicorn), where the front reuses its open
    connections to the colour.

Deploys are made by an in-process Deployer on the agent's own store, so the served
agent's restarts reconcile what those deploys recorded.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import docker
from _agent import free_port, percentile
from _common import parser, report

from agent.bus import Bus
from agent.demo.agentproc import AgentProcess
from agent.deploy.deployer import Deployer
from agent.deploy.front_image import ensure_image as ensure_front_image
from agent.logs.logger import LoggingStageLog
from store.models import (
    CanaryConfig,
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
RESTARTS = 10
LATENCY_REQUESTS = 3000  # per side
CANARY = CanaryConfig(steps=[10, 50, 100], bake_s=3, min_requests=10, hold_timeout_s=60)


def build(client: docker.DockerClient, tag: str, version: str, error_percent: int = 0) -> None:
    ctx = Path(tempfile.mkdtemp(prefix="seamless-bench-traffic-"))
    try:
        (ctx / "app" / "cgi-bin").mkdir(parents=True)
        (ctx / "app" / "health").write_text("ok\n")
        fail = (f"if [ $((RANDOM % 100)) -lt {error_percent} ]; then printf 'Status: 500"
                f" Internal Server Error\\r\\n\\r\\nboom\\n'; exit 0; fi\n"
                if error_percent else "")
        script = ctx / "app" / "cgi-bin" / "version"
        script.write_text(f"#!/bin/sh\n{fail}printf 'Content-Type: text/plain\\r\\n\\r\\n"
                          f"{version}\\n'\n")
        script.chmod(0o755)
        (ctx / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}\nCOPY app /www\nSTOPSIGNAL SIGKILL\n"
            f'CMD ["httpd", "-f", "-p", "{PORT}", "-h", "/www"]\n')
        client.images.build(path=str(ctx), tag=tag, rm=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def build_keep_alive(client: docker.DockerClient, tag: str, version: str) -> None:
    """An app that keeps client connections alive and answers `version` on every path."""
    ctx = Path(tempfile.mkdtemp(prefix="seamless-bench-traffic-"))
    try:
        (ctx / "haproxy.cfg").write_text(
            "defaults\n    mode http\n    timeout client 30s\n    timeout http-keep-alive 30s\n"
            f"frontend app\n    bind :{PORT}\n"
            f"    http-request return status 200 content-type text/plain string {version}\n")
        (ctx / "Dockerfile").write_text(
            f"FROM {ensure_front_image(client)}\nCOPY haproxy.cfg /etc/seamless-front/\n")
        client.images.build(path=str(ctx), tag=tag, rm=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def get(port: int, path: str = "/cgi-bin/version") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    finally:
        conn.close()


class Client:
    """Steady requests in a thread; counts answers per body and failures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.failed = 0
        self.bodies: Counter[str] = Counter()
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = get(self.port)
            except OSError:
                self.failed += 1
                continue
            key = body if status == 200 else f"HTTP {status}"
            self.first_seen.setdefault(body if status == 200 else "error", time.monotonic())
            self.bodies[key] += 1
            if status == 200:
                self.ok += 1
            else:
                self.failed += 1

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_ok(self, more: int, timeout_s: float = 60) -> None:
        target, deadline = self.ok + more, time.monotonic() + timeout_s
        while self.ok < target and time.monotonic() < deadline:
            time.sleep(0.02)


def latency(front_port: int, direct_port: int) -> dict[str, float]:
    """p50/p99 (ms) through the front and straight to the colour, request by request in
    turns (the same machine noise on both), and the load average meanwhile."""
    front_ms: list[float] = []
    direct_ms: list[float] = []
    load_before = os.getloadavg()[0]  # p99 on a busy machine is mostly its scheduler
    pair = ((front_port, front_ms), (direct_port, direct_ms))
    for i in range(LATENCY_REQUESTS):
        # each side goes first every other time: neither always follows the other's
        # wake-ups of the same colour process
        for port, out in pair if i % 2 else pair[::-1]:
            t0 = time.perf_counter()
            get(port, "/health")
            out.append((time.perf_counter() - t0) * 1000)
    return {"front_p99": percentile(front_ms, 99), "direct_p99": percentile(direct_ms, 99),
            "front_p50": percentile(front_ms, 50), "direct_p50": percentile(direct_ms, 50),
            "load": max(load_before, os.getloadavg()[0])}


def latency_figures(m: dict[str, float], suffix: str) -> dict[str, float]:
    return {f"front_p99_ms{suffix}": round(m["front_p99"], 2),
            f"direct_p99_ms{suffix}": round(m["direct_p99"], 2),
            f"proxy_overhead_ratio{suffix}": round(m["front_p99"] / m["direct_p99"], 2),
            f"front_p50_ms{suffix}": round(m["front_p50"], 3),
            f"direct_p50_ms{suffix}": round(m["direct_p50"], 3)}


def colour_port(client: docker.DockerClient, service: str, sha: str) -> int:
    """The published port of the colour running `sha` (the direct path)."""
    live = client.containers.list(filters={"label": [
        f"io.seamless.service={service}", f"io.seamless.sha={sha}"]})
    return int(live[0].ports[f"{PORT}/tcp"][0]["HostPort"])


class TimedLog(LoggingStageLog):
    """A stage log that remembers when each line was written."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.times: list[tuple[float, str]] = []

    def system(self, text: str) -> None:
        self.times.append((time.monotonic(), text))
        super().system(text)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    client = docker.from_env(timeout=120)
    tmp = Path(tempfile.mkdtemp(prefix="seamless-bench-traffic-"))
    data_dir = tmp / "data"
    data_dir.mkdir()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    images = {v: (str(i) * 40, f"seamless-bench/{name}:{str(i) * 40}")
              for i, v in enumerate(("v1", "good", "bad", "keepalive"), start=1)}
    build(client, images["v1"][1], "v1")
    build(client, images["good"][1], "good")
    build(client, images["bad"][1], "bad", error_percent=20)
    build_keep_alive(client, images["keepalive"][1], "keepalive")
    store = Store(data_dir / "seamless.db")
    deployer = Deployer(store, Bus(), None, lambda: client, data_dir / "fronts")
    prod_port = free_port()
    pipeline = store.create_pipeline(PipelineConfig(
        name=name, staging=DockerTargetConfig(),
        production=DockerTargetConfig(port=prod_port, strategy="canary", canary=CANARY)))
    service = store.create_service(ServiceConfig(
        name=name, pipeline=name, repo_url="/tmp/none", container_port=PORT,
        health_check=HealthCheck(path="/health", timeout_s=20, interval_s=0.05)))
    agent: AgentProcess | None = None

    def deploy(version: str, log: LoggingStageLog | None = None) -> Any:
        sha, tag = images[version]
        run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full, sha=sha)
        return deployer.deploy_stage(run, service, pipeline, "production", tag,
                                     log or LoggingStageLog("bench"))

    try:
        assert deploy("v1").ok, "the first deploy failed"
        # (a) the agent killed and restarted under steady traffic
        agent = AgentProcess(tmp, data_dir, free_port(),
                             {"log_level": "warning", "poll_enabled": False})
        agent.start()
        with Client(prod_port) as steady:
            steady.wait_ok(50)
            for _ in range(RESTARTS):
                assert agent.proc is not None
                agent.proc.send_signal(signal.SIGKILL)
                agent.proc.wait(10)
                steady.wait_ok(30)  # served with no agent at all
                agent.start()
                steady.wait_ok(30)
        restarts = {"ok": steady.ok, "failed": steady.failed}
        agent.stop()

        # (b) a good build through every canary step
        with Client(prod_port) as steady:
            steady.wait_ok(30)
            good = deploy("good")
            steady.wait_ok(30)
        assert good.ok, good.error
        good_figures = {"ok": steady.ok, "failed": steady.failed, "bodies": dict(steady.bodies)}

        # (c) a bad build (20 % errors) as a canary
        log = TimedLog("bench")
        with Client(prod_port) as steady:
            steady.wait_ok(30)
            bad = deploy("bad", log)
            steady.wait_ok(30)
        assert not bad.ok, "the bad canary was promoted"
        first = min(steady.first_seen.get(k, float("inf")) for k in ("bad", "error"))
        stopped = next(t for t, line in log.times if line.startswith("canary stopped"))
        detect_s = stopped - first
        bad_failed = steady.failed

        # (d) latency through the front vs straight to the live colour's published port
        closing = latency(prod_port, colour_port(client, name, images["good"][0]))

        # (e) the same with an app that keeps connections alive (deployed as a canary)
        with Client(prod_port) as steady:
            steady.wait_ok(30)
            keep = deploy("keepalive")
        assert keep.ok, keep.error
        alive = latency(prod_port, colour_port(client, name, images["keepalive"][0]))
    finally:
        if agent is not None and agent.running():
            agent.stop()
        for c in client.containers.list(all=True, filters={"label": f"io.seamless.service={name}"}):
            c.remove(force=True)
        for net in client.networks.list(names=[f"seamless-{name}-"]):
            net.remove()
        for _, tag in images.values():
            client.images.remove(tag, force=True)
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)

    figures = {
        "failed_during_agent_restarts": restarts["failed"],
        "requests_during_agent_restarts": restarts["ok"],
        "failed_requests_good": good_figures["failed"],
        "requests_good": good_figures["ok"],
        "bad_canary_failed_requests": bad_failed,
        "detect_s": round(detect_s, 2),
        **latency_figures(closing, ""),
        "load_average_during_latency": round(closing["load"], 2),
        **latency_figures(alive, "_keepalive_app"),
        "load_average_during_keepalive_latency": round(alive["load"], 2),
    }
    report("Production traffic through the front", [
        (f"(a) failed requests across {RESTARTS} agent kill -9s (goal 0)",
         figures["failed_during_agent_restarts"]),
        ("    requests answered meanwhile", figures["requests_during_agent_restarts"]),
        ("(b) failed requests, good canary 10→50→100 (goal 0)",
         figures["failed_requests_good"]),
        ("    requests answered meanwhile", figures["requests_good"]),
        ("(c) bad canary: first answer → stopped, s (goal < 10)", figures["detect_s"]),
        ("    errors the client saw from it", figures["bad_canary_failed_requests"]),
        ("(d) p99 through the front, ms", figures["front_p99_ms"]),
        ("    p99 direct to the colour, ms", figures["direct_p99_ms"]),
        ("    proxy_overhead_ratio (goal ≤ 1.2)", figures["proxy_overhead_ratio"]),
        ("    p50 through the front / direct, ms",
         f"{figures['front_p50_ms']} / {figures['direct_p50_ms']}"),
        ("    load average (1 min) while measuring", figures["load_average_during_latency"]),
        ("(e) p99 through the front / direct, keep-alive app, ms",
         f"{figures['front_p99_ms_keepalive_app']} / {figures['direct_p99_ms_keepalive_app']}"),
        ("    proxy_overhead_ratio_keepalive_app", figures["proxy_overhead_ratio_keepalive_app"]),
        ("    p50 through the front / direct, ms",
         f"{figures['front_p50_ms_keepalive_app']} / {figures['direct_p50_ms_keepalive_app']}"),
        ("    load average (1 min) while measuring",
         figures["load_average_during_keepalive_latency"]),
    ], figures, args.json)


if __name__ == "__main__":
    main()
