"""Push storm: N services triggered at once on a served agent, each a five-stage partial run
(Prepare, Code Quality, Unit Test, Build, Integration Test) in sibling containers.

    .venv/bin/python bench/load_storm.py [--services 20] [--parallel 4] [--json]

Reports runs finished, wall time from the first trigger to the last final run, and the
latency of `GET /api/v1/runs?limit=50` polled every 50 ms during the storm.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

import docker
from _common import REPO_ROOT, parser, report

sys.path.insert(0, str(REPO_ROOT))

from tests.reliability.served import ServedAgent, remove_leftovers, service_names  # noqa: E402
from tests.reliability.storm import make_services, storm  # noqa: E402


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--parallel", type=int, default=4)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="seamless-bench-storm-") as tmp:
        agent = ServedAgent.start(Path(tmp) / "data", max_parallel=args.parallel)
        try:
            services = make_services(agent, Path(tmp) / "repos", args.services,
                                     f"bench-storm-{uuid.uuid4().hex[:6]}")
            result = storm(agent, services, timeout_s=600)
        finally:
            agent.stop()
            remove_leftovers(docker.from_env(), service_names(agent))
    ok = sum(r["status"] == "success" for r in result.runs)
    figures = {
        "services": args.services,
        "max_parallel_runs": args.parallel,
        "runs_finished": len(result.runs),
        "runs_succeeded": ok,
        "wall_s": round(result.wall_s, 2),
        "runs_per_min": round(len(result.runs) / result.wall_s * 60, 1),
        "list_requests": len(result.list_latencies_ms),
        "p50_ms": round(result.p(0.50), 1),
        "p99_ms": round(result.p(0.99), 1),
        "max_ms": round(max(result.list_latencies_ms, default=0.0), 1),
    }
    report("push storm (GET /api/v1/runs during the storm)", list(figures.items()), figures,
           args.json)


if __name__ == "__main__":
    main()
