"""Trigger latency: signed `push` webhook POST → Prepare `in_progress` on /ws/events.

A real `seamless-agent serve` (a pipeline on the local executor) and a git repository on
disk; each of the pushes is a new commit; the run is cancelled once measured so the next starts on
an idle agent. Goal: p50 < 100 ms, p99 < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.triggers.github import signature  # noqa: E402
from bench._agent import ServedAgent, percentile, report  # noqa: E402

SECRET = "bench-secret"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@x", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, commits: int) -> list[str]:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    shas = []
    for i in range(commits):
        (path / "n.txt").write_text(f"{i}\n")
        git(path, "add", "n.txt")
        git(path, "commit", "-q", "-m", f"commit {i}")
        shas.append(git(path, "rev-parse", "HEAD"))
    return shas


async def measure(agent: ServedAgent, repo: Path, shas: list[str]) -> list[float]:
    latencies = []
    url = f"{agent.ws_url}/api/v1/ws/events?token={agent.token}"
    async with connect(url, max_size=None) as ws, \
            httpx.AsyncClient(base_url=agent.url, headers=agent.headers) as client:
        for sha in shas:
            body = json.dumps({"ref": "refs/heads/main", "after": sha, "deleted": False,
                               "head_commit": {"message": "bench", "author": {"name": "b"}},
                               "repository": {"clone_url": str(repo)}}).encode()
            headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
                       "X-GitHub-Delivery": str(uuid.uuid4()),
                       "X-Hub-Signature-256": signature(SECRET, body)}
            started = time.perf_counter()
            answer = await client.post("/webhooks/github", content=body, headers=headers)
            run_id = answer.json()["runs"][0]["id"]
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                stage = event.get("stage") or {}
                if (event["type"] == "stage" and stage.get("run_id") == run_id
                        and stage["name"] == "Prepare" and stage["status"] == "in_progress"):
                    latencies.append((time.perf_counter() - started) * 1000)
                    break
            await client.post(f"/api/v1/runs/{run_id}/cancel")
            while True:  # the next push starts on an idle agent
                run = (await client.get(f"/api/v1/runs/{run_id}")).json()
                if run["status"] not in ("queued", "running"):
                    break
                await asyncio.sleep(0.05)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        shas = make_repo(repo, args.pushes)
        agent = ServedAgent(Path(tmp) / "data", pipeline_executor="local")
        try:
            agent.add_service(str(repo), webhook_secret=SECRET, unit_test_command="sleep 30")
            latencies = asyncio.run(measure(agent, repo, shas))
        finally:
            agent.stop()
    report(f"webhook → Prepare in_progress over {len(latencies)} pushes", {
        "n": len(latencies), "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2)}, args.json)


if __name__ == "__main__":
    main()
