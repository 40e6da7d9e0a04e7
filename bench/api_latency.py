"""REST latency with a big history: GET /api/v1/runs?service=… with 100,000 runs stored.

Seeds the runs (and their seven stages each) straight into SQLite in large batches,
then times requests against `seamless-agent serve`. Goal: p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._agent import ServedAgent, percentile, report  # noqa: E402
from store.db import iso  # noqa: E402
from store.models import DEFAULT_STAGES, PipelineConfig, ServiceConfig  # noqa: E402
from store.store import Store  # noqa: E402


def seed(store: Store, runs: int, services: int) -> None:
    store.create_pipeline(PipelineConfig(name="bench"))
    ids = [store.create_service(ServiceConfig(
        name=f"svc-{i}", pipeline="bench", repo_url=f"https://github.com/acme/svc-{i}.git")).id
        for i in range(services)]
    stamp = iso()
    numbers = dict.fromkeys(ids, 0)
    batch = 5000
    with store.write() as conn:
        first = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0]) + 1
        for start in range(0, runs, batch):
            rows, stages = [], []
            for run_id in range(first + start, first + min(start + batch, runs)):
                service = random.choice(ids)
                numbers[service] += 1
                rows.append((run_id, service, numbers[service], "push", "full",
                             f"{random.getrandbits(160):040x}", "main", "success", stamp))
                stages += [(run_id, name, pos, "success") for pos, name in
                           enumerate(DEFAULT_STAGES)]
            conn.executemany("INSERT INTO runs (id, service_id, number, trigger, kind, sha,"
                             " branch, status, created_at) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            conn.executemany("INSERT INTO stages (run_id, name, position, status)"
                             " VALUES (?,?,?,?)", stages)
        for service, number in numbers.items():
            conn.execute("UPDATE services SET next_run_number=? WHERE id=?",
                         (number + 1, service))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        store = Store(data_dir / "seamless.db")
        started = time.monotonic()
        seed(store, args.runs, args.services)
        seeded_s = time.monotonic() - started
        store.close()
        agent = ServedAgent(data_dir)
        try:
            timings = []
            with agent.client() as client:
                for i in range(args.requests + 20):
                    service = f"svc-{i % args.services}"
                    t0 = time.perf_counter()
                    response = client.get("/api/v1/runs", params={"service": service})
                    elapsed = (time.perf_counter() - t0) * 1000
                    response.raise_for_status()
                    assert len(response.json()["items"]) == 50
                    if i >= 20:  # warm-up: connection, caches
                        timings.append(elapsed)
        finally:
            agent.stop()
    report(f"GET /api/v1/runs?service=… with {args.runs} runs ({args.requests} requests)", {
        "runs": args.runs, "requests": args.requests, "seed_s": round(seeded_s, 2),
        "p50_ms": round(percentile(timings, 50), 2), "p99_ms": round(percentile(timings, 99), 2),
    }, args.json)


if __name__ == "__main__":
    main()
