"""A push storm: N services triggered at once, each a five-stage run (Prepare, Code
Quality, Unit Test, Build, Integration Test — a partial run, so no deploy), while a
poller measures `GET /api/v1/runs`. Shared by test_load.py and bench/load_storm.py."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.served import ServedAgent
from tests.sample_repo import SampleRepo, make_sample_service_repo

FIVE_STAGES = ["Prepare", "Code Quality", "Unit Test", "Build", "Integration Test"]


@dataclass
class StormResult:
    runs: list[dict[str, Any]]
    wall_s: float
    list_latencies_ms: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        ordered = sorted(self.list_latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def make_services(agent: ServedAgent, root: Path, count: int, prefix: str) -> list[
        tuple[str, SampleRepo]]:
    agent.add_pipeline("storm", max_parallel_runs=agent.max_parallel)
    services = []
    for i in range(count):
        name = f"{prefix}-{i:02d}"
        repo = make_sample_service_repo(root / name, name)
        agent.add_service(name, "storm", repo.url, prepare_command="echo prepared",
                          code_quality_command="sh lint.sh", unit_test_command="sh test.sh",
                          dockerfile="Dockerfile",
                          integration_test_command="test -f /workspace/app/health && echo ok")
        services.append((name, repo))
    return services


def storm(agent: ServedAgent, services: list[tuple[str, SampleRepo]],
          timeout_s: float = 240) -> StormResult:
    """Trigger every service at once; poll the run list until every run is final."""
    stop = threading.Event()
    latencies: list[float] = []

    def poll() -> None:
        with agent.client() as api:
            while not stop.is_set():
                t0 = time.monotonic()
                api.get("/api/v1/runs", params={"limit": 50}).raise_for_status()
                latencies.append((time.monotonic() - t0) * 1000)
                time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    started = time.monotonic()
    poller.start()
    try:
        def trigger(item: tuple[str, SampleRepo]) -> int:
            with httpx.Client(base_url=agent.url, timeout=30,
                              headers={"Authorization": f"Bearer {agent.token}"}) as c:
                resp = c.post(f"/api/v1/services/{item[0]}/trigger",
                              json={"sha": item[1].head_sha, "kind": "partial"})
            resp.raise_for_status()
            return int(resp.json()["id"])

        with ThreadPoolExecutor(len(services)) as pool:
            ids = list(pool.map(trigger, services))
        finals = [agent.wait_run(run_id, timeout=max(1, timeout_s - (time.monotonic() - started)))
                  for run_id in ids]
    finally:
        stop.set()
        poller.join(timeout=10)
    return StormResult(finals, time.monotonic() - started, latencies)
