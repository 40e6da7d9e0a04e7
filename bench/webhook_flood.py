"""Hostile webhook flood: N bad deliveries (bad/missing signatures, truncated, oversized,
wrong content types, replayed delivery ids, unknown repos) against a served agent.

    .venv/bin/python bench/webhook_flood.py [--requests 1000] [--workers 8] [--json]

Reports requests/s, latency p50/p99, the statuses seen, runs created (must stay at the
one legitimate delivery) and the agent process's RSS before and after the flood.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import psutil
from _common import REPO_ROOT, parser, report

sys.path.insert(0, str(REPO_ROOT))

from tests.reliability.hostile import fire, hostile_requests  # noqa: E402
from tests.reliability.served import ServedAgent, post_push, push_payload  # noqa: E402
from tests.sample_repo import make_sample_service_repo  # noqa: E402

SECRET = "bench-hook-secret"


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--workers", type=int, default=8)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="seamless-bench-hooks-") as tmp:
        repo = make_sample_service_repo(Path(tmp) / "repo", "hooked")
        agent = ServedAgent.start(Path(tmp) / "data")
        try:
            agent.add_pipeline("shop")
            agent.add_service("hooked", "shop", repo.url, webhook_secret=SECRET)
            post_push(agent, SECRET, push_payload(repo.url, repo.head_sha), delivery="legit")
            url = f"{agent.url}/webhooks/github"
            fire(url, list(hostile_requests(40, secret=SECRET, repo_url=repo.url,
                                            sha=repo.head_sha, replay_delivery="legit",
                                            oversized=2)))
            rss_before = psutil.Process(agent.pid).memory_info().rss
            result = fire(url, list(hostile_requests(
                args.requests, secret=SECRET, repo_url=repo.url, sha=repo.head_sha,
                replay_delivery="legit")), workers=args.workers)
            rss_after = psutil.Process(agent.pid).memory_info().rss
            runs = len(agent.runs())
        finally:
            agent.stop()
    statuses = " ".join(f"{s}:{n}" for s, n in sorted(result.statuses.items()))
    figures = {
        "requests": sum(result.statuses.values()),
        "wall_s": round(result.wall_s, 3),
        "requests_per_s": round(sum(result.statuses.values()) / result.wall_s, 1),
        "p50_ms": round(result.percentile(0.50), 2),
        "p99_ms": round(result.percentile(0.99), 2),
        "replays_acknowledged": result.by_kind.get("replayed_delivery", {}).get(200, 0),
        "other_non_4xx": sum(n for kind, c in result.by_kind.items() for s, n in c.items()
                             if kind != "replayed_delivery" and not 400 <= s < 500),
        "runs_created": runs,
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "errors": len(result.errors),
    }
    rows = [(k, v) for k, v in figures.items()] + [("statuses", statuses)]
    report("webhook flood (hostile deliveries)", rows, figures, args.json)


if __name__ == "__main__":
    main()
