"""The Docker engine restarts under deployed services (#22 item 1), loopback only.

A second dockerd in its own network namespace (tests/reliability/second_engine.py), a
served agent inside it with `docker_host` at that engine, two services each with v1
approved on production and v2 on staging waiting for approval. One client per stable
port (4) requests `/version` steadily, a new connection each, through a forward from the
host's loopback:

- baseline: the same clients for BASELINE_S with no restart (failures there are the
  machine's, not the engine's);
- then the engine restarts RESTARTS times (SIGTERM + start, and kill -9 + start, in
  turns); after each, every port must serve its recorded build again.

Figures: `wrong_build_served` (answers with another build than the store records for
that port: the goal is 0), `failed_requests` (no answer or not 200, during the restart
phase), `recover_s` (p99 over ports × restarts of the time from the engine answering
again to the port's first answer with its recorded build: the goal is ≤ 5 s).
Needs root (network namespaces), as `make test` does.
"""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from _agent import percentile
from _common import parser, report

from agent.deploy.front_image import ensure_image
from tests.helpers import BASE_IMAGE, free_port
from tests.reliability.second_engine import SecondEngine
from tests.reliability.served import ServedAgent
from tests.sample_repo import make_sample_service_repo

RESTARTS = 10
BASELINE_S = 10.0
RECOVER_BOUND_S = 60.0  # a port not back by then counts as this long, and as unrecovered
STEADY_S = 2.0  # requests on every port after it recovered, before the next restart


@dataclass
class Client:
    """Steady GETs of one port; every answer kept as (time, body or None)."""

    port: int
    recorded: str
    answers: list[tuple[float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Client:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        url = f"http://127.0.0.1:{self.port}/version"
        while not self._stop.is_set():
            body: str | None = None
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    body = resp.read().decode().strip() if resp.status == 200 else None
            except (OSError, urllib.error.URLError, http.client.HTTPException):
                pass  # a refused, reset or cut answer (the engine going down) is a failure
            self.answers.append((time.monotonic(), body))
            if body is None:
                time.sleep(0.05)  # bounded: no hot loop while the port is down

    def window(self, start: float, end: float) -> list[str | None]:
        return [body for t, body in self.answers if start <= t < end]

    def back_at(self, since: float) -> float | None:
        return next((t for t, body in self.answers if t >= since and body == self.recorded),
                    None)


def _deploy(agent: ServedAgent, root: Path) -> dict[int, str]:
    """Two services: v1 approved on production, v2 on staging waiting. Port → build."""
    agent.add_pipeline("shop", auto_deploy=False)
    services = []
    for name in ("bench-a", "bench-b"):
        repo = make_sample_service_repo(root / "repos" / name, name)
        ports = {"staging": free_port(), "production": free_port()}
        agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                          health_check={"path": "/health", "timeout_s": 30},
                          staging={"kind": "docker", "port": ports["staging"]},
                          production={"kind": "docker", "port": ports["production"]})
        services.append((name, repo, ports))
    for name, repo, _ in services:
        run = agent.trigger(name, repo.head_sha)
        agent.wait_run(run["id"], lambda r: r["status"] == "awaiting_approval", timeout=300)
        agent.call("POST", f"/api/v1/runs/{run['id']}/approve", 200, json={"comment": "bench"})
        done = agent.wait_run(run["id"], timeout=300)
        assert done["status"] == "success", done
    for name, repo, _ in services:
        run = agent.trigger(name, repo.set_version("v2"))
        agent.wait_run(run["id"], lambda r: r["status"] == "awaiting_approval", timeout=300)
    return {port: ("v1" if env == "production" else "v2")
            for _, _, ports in services for env, port in ports.items()}


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    root = Path(tempfile.mkdtemp(prefix="seamless-bench-engine-"))
    host = docker.from_env(timeout=300)
    engine = SecondEngine.start_new()
    agent: ServedAgent | None = None
    clients: list[Client] = []
    try:
        engine.load_images(host, [BASE_IMAGE, ensure_image(host)])
        agent = ServedAgent.start(root / "data", docker_host=engine.url, netns=engine.netns)
        recorded = _deploy(agent, root)
        for port in recorded:
            engine.netns.forward(port)
        clients = [Client(port, build).start() for port, build in recorded.items()]

        started = time.monotonic()
        time.sleep(BASELINE_S)
        baseline = [b for c in clients for b in c.window(started, time.monotonic())]

        phase = time.monotonic()
        loads = [os.getloadavg()[0]]  # a busy machine's scheduler shows in recover_s
        recover: list[float] = []
        by_way: dict[str, list[float]] = {"stop": [], "kill": []}
        unrecovered = 0
        for i in range(RESTARTS):
            engine.stop() if i % 2 == 0 else engine.kill()
            engine.start()
            back = time.monotonic()
            deadline = back + RECOVER_BOUND_S
            while time.monotonic() < deadline and not all(c.back_at(back) for c in clients):
                time.sleep(0.1)
            for c in clients:
                at = c.back_at(back)
                recover.append((at - back) if at is not None else RECOVER_BOUND_S)
                by_way["stop" if i % 2 == 0 else "kill"].append(recover[-1])
                unrecovered += at is None
            time.sleep(STEADY_S)
            loads.append(os.getloadavg()[0])
        during = [(c, b) for c in clients for b in c.window(phase, time.monotonic())]
    finally:
        for c in clients:
            c.stop()
        if agent is not None:
            agent.stop()
        engine.close()
        host.close()
        shutil.rmtree(root, ignore_errors=True)

    wrong = sum(1 for c in clients for _, b in c.answers if b is not None and b != c.recorded)
    failed = sum(1 for _, b in during if b is None)
    failed_base = sum(1 for b in baseline if b is None)
    figures: dict[str, Any] = {
        "restarts": RESTARTS,
        "wrong_build_served": wrong,
        "failed_requests": failed,
        "requests": len(during),
        "failed_requests_baseline": failed_base,
        "requests_baseline": len(baseline),
        "recover_s": round(percentile(recover, 99), 3),
        "recover_s_p50": round(percentile(recover, 50), 3),
        "recover_s_max": round(max(recover), 3),
        "recover_s_after_stop_p99": round(percentile(by_way["stop"], 99), 3),
        "recover_s_after_kill_9_p99": round(percentile(by_way["kill"], 99), 3),
        "unrecovered": unrecovered,
        "goal_recover_s": 5.0,
        "load_average_min": round(min(loads), 2),
        "load_average_max": round(max(loads), 2),
    }
    report("engine restarts under two services (4 stable ports)",
           list(figures.items()), figures, args.json)


if __name__ == "__main__":
    main()
