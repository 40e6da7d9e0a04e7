"""Log fan-out: one stage printing 10,000 lines/s, watched by 50 WebSocket clients.

Every client must receive every line; latency is from the line's print (its text carries
the time) to its arrival at the client. Agent CPU is the `seamless-agent serve`
process's own (the stage's process is not counted). Goal: p99 < 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._agent import ServedAgent, percentile, report  # noqa: E402

PRINTER = """import sys, time
time.sleep({delay})
rate, total = {rate}, {total}
start = time.time()
for i in range(total):
    due = start + i / rate
    now = time.time()
    if due > now:
        time.sleep(due - now)
    sys.stdout.write(f"{{time.time():.6f}} line {{i}}\\n")
    if i % 100 == 99:
        sys.stdout.flush()
sys.stdout.flush()
"""


# The oldest line of each message: its latency is the worst of that message.
FIRST_LINE = re.compile(r'"text":"(\d+\.\d+) line ')


async def watch(url: str, total: int, latencies: list[float], counts: list[int]) -> None:
    """Count lines and time the oldest line of every message from the raw text: parsing
    500,000 lines/s of JSON in this one process would measure the bench, not the agent."""
    received = 0
    async with connect(url, max_size=None) as ws:
        while received < total:
            try:
                raw = await asyncio.wait_for(ws.recv(), 30)
            except TimeoutError:
                break
            now = time.time()
            found = raw.count(" line ")
            if not found:  # only the agent's own lines ($ command, exit code)
                continue
            received += found
            first = FIRST_LINE.search(raw)
            if first is not None:
                latencies.append((now - float(first.group(1))) * 1000)
    counts.append(received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    total = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        (repo / "printer.py").write_text(PRINTER.format(delay=3, rate=args.rate, total=total))
        for cmd in (["init", "-q", "-b", "main"], ["add", "."],
                    ["-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "x"]):
            subprocess.run(["git", *cmd], cwd=repo, check=True)
        agent = ServedAgent(Path(tmp) / "data", pipeline_executor="local")
        try:
            agent.add_service(str(repo), dockerfile=None,
                              unit_test_command=f"{sys.executable} printer.py")
            with agent.client() as client:
                run = client.post("/api/v1/services/svc/trigger", json={}).json()
            url = (f"{agent.ws_url}/api/v1/ws/runs/{run['id']}/logs?token={agent.token}"
                   "&stage=Unit%20Test")
            latencies: list[float] = []
            counts: list[int] = []
            proc = psutil.Process(agent.proc.pid)
            proc.cpu_percent()
            started = time.monotonic()

            async def all_clients() -> None:
                await asyncio.gather(*(watch(url, total, latencies, counts)
                                       for _ in range(args.clients)))

            asyncio.run(all_clients())
            cpu = proc.cpu_percent()
            elapsed = time.monotonic() - started
        finally:
            agent.stop()
    lost = sum(total - c for c in counts)
    report(f"{args.clients} clients watching {args.rate} lines/s for {args.seconds} s", {
        "clients": args.clients, "lines_per_s": args.rate, "lines": total,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2), "lost": lost,
        "agent_cpu_percent": round(cpu, 1), "wall_s": round(elapsed, 1)}, args.json)


if __name__ == "__main__":
    main()
