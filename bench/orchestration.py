"""The engine's own cost: signed push webhooks of services whose seven stages take no
time (the fake executor, workspaces and deploy target of tests/harness), through the
real API, engine, log writer, store and bus of an agent served in this process.

    .venv/bin/python bench/orchestration.py [--runs 200] [--json]

One webhook at a time, each to its own service: `per_stage_ms` is the engine's cost per
stage (webhook sent → run finished, divided by the seven stages; `cpu_per_stage_ms` the
process's CPU time for the same, which a busy machine inflates less); `trigger_p99_ms` is
webhook sent → first stage (Prepare) in progress, p99. Baselines from the same run: an
HTTP round trip to /healthz on the same server, and one hop to a worker thread and back
(what every stage costs at the least). Goal: per stage < 5 ms, trigger p99 < 20 ms.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from _common import REPO_ROOT, parser, report

sys.path.insert(0, str(REPO_ROOT))

from agent.api.app import create_app  # noqa: E402
from agent.engine.threads import in_thread  # noqa: E402
from agent.runtime import Agent  # noqa: E402
from store.models import (  # noqa: E402
    DEFAULT_STAGES,
    STAGE_PREPARE,
    DockerTargetConfig,
    Event,
    PipelineConfig,
    RunStatus,
    ServiceConfig,
    StageStatus,
)
from tests.harness import Fakes, agent_config  # noqa: E402
from tests.reliability.served import push_payload, webhook_headers  # noqa: E402

SECRET = "bench-orchestration-secret"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Clock:
    """When each run's Prepare started and when each run finished, as the bus says."""

    def __init__(self) -> None:
        self.prepare_started: dict[int, float] = {}
        self.finished: dict[int, tuple[float, RunStatus]] = {}
        self.changed = asyncio.Event()

    def see(self, event: Event) -> None:
        now = time.perf_counter()
        if (event.type == "stage" and event.stage is not None
                and event.stage.name == STAGE_PREPARE
                and event.stage.status is StageStatus.in_progress):
            self.prepare_started.setdefault(event.stage.run_id, now)
        elif event.type == "run" and event.run is not None and event.run.status.finished:
            self.finished.setdefault(event.run.id, (now, event.run.status))
        self.changed.set()

    async def wait(self, run_id: int, timeout: float = 30.0) -> tuple[float, float, RunStatus]:
        deadline = time.monotonic() + timeout
        while run_id not in self.finished or run_id not in self.prepare_started:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"run {run_id} did not finish within {timeout} s")
            await asyncio.wait_for(self.changed.wait(), left)
        done, status = self.finished[run_id]
        return self.prepare_started[run_id], done, status


async def measure(data_dir: Path, runs: int) -> dict[str, float | int]:
    config = agent_config(data_dir, max_parallel_runs=4, log_level="warning")
    agent = Agent(config, Fakes().parts(config))
    agent.store.create_pipeline(PipelineConfig(
        name="bench", auto_deploy=True, staging=DockerTargetConfig(),
        production=DockerTargetConfig()))
    urls = [f"https://example.com/bench/svc{i}.git" for i in range(runs)]
    for i, url in enumerate(urls):
        agent.store.create_service(ServiceConfig(
            name=f"svc{i}", pipeline="bench", repo_url=url, webhook_secret=SECRET,
            code_quality_command="exit=0", unit_test_command="exit=0",
            compose_file="compose.yaml", integration_test_command="exit=0"))
    server = uvicorn.Server(uvicorn.Config(create_app(agent), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    clock = Clock()
    loop = asyncio.get_running_loop()
    agent.bus.add_listener(lambda e: loop.call_soon_threadsafe(clock.see, e))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            health = []
            for _ in range(runs):
                began = time.perf_counter()
                (await http.get("/healthz")).raise_for_status()
                health.append(time.perf_counter() - began)
            hops = []
            for _ in range(runs):
                began = time.perf_counter()
                await in_thread(lambda: None)
                hops.append(time.perf_counter() - began)
            triggers, per_stage, failed = [], [], 0
            cpu_began = time.process_time()
            for i, url in enumerate(urls):
                body = json.dumps(push_payload(url, f"{i + 1:040x}")).encode()
                sent = time.perf_counter()
                answer = await http.post("/webhooks/github", content=body,
                                         headers=webhook_headers(body, SECRET))
                queued = answer.json()
                if not queued.get("runs"):
                    raise RuntimeError(f"webhook not queued ({answer.status_code}): {queued}")
                run_id = queued["runs"][0]["id"]
                started, done, status = await clock.wait(run_id)
                failed += status is not RunStatus.success
                triggers.append(started - sent)
                per_stage.append((done - sent) / len(DEFAULT_STAGES))
            cpu = time.process_time() - cpu_began
    finally:
        server.should_exit = True
        await serving
    ms = 1000.0
    figures: dict[str, float | int] = {
        "runs": len(per_stage),
        "failed_runs": failed,
        "per_stage_ms": round(statistics.mean(per_stage) * ms, 3),
        "per_stage_p99_ms": round(percentile(per_stage, 99) * ms, 3),
        # CPU of this whole process (agent and webhook client) per stage: what the engine
        # costs whatever else the machine is doing.
        "cpu_per_stage_ms": round(cpu / (len(per_stage) * len(DEFAULT_STAGES)) * ms, 3),
        "trigger_p50_ms": round(percentile(triggers, 50) * ms, 3),
        "trigger_p99_ms": round(percentile(triggers, 99) * ms, 3),
        "baseline_healthz_p99_ms": round(percentile(health, 99) * ms, 3),
        "baseline_thread_hop_ms": round(statistics.mean(hops) * ms, 3),
    }
    figures["trigger_p99_vs_healthz_p99"] = round(
        figures["trigger_p99_ms"] / max(figures["baseline_healthz_p99_ms"], 1e-9), 2)
    figures["per_stage_vs_thread_hop"] = round(
        figures["per_stage_ms"] / max(figures["baseline_thread_hop_ms"], 1e-9), 2)
    return figures


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200, help="webhooks, one service each")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="seamless-bench-orch-") as tmp:
        figures = asyncio.run(measure(Path(tmp) / "data", args.runs))
    report(f"engine orchestration: {figures['runs']} push webhooks, seven no-time stages each "
           "(goal: per stage < 5 ms, trigger p99 < 20 ms)",
           list(figures.items()), figures, args.json)


if __name__ == "__main__":
    main()
