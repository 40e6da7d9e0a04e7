"""Abuse: /healthz and GET /runs keep answering while the agent is attacked, and no
secret leaks.

For `--seconds` (default 20), against a real `seamless-agent serve` on loopback:
- 20 clients each send a 300 MB body to the REST API without a token, again and again;
- 500 slow clients hold connections, trickling request headers a byte a second;
- 20 clients trigger a service whose git remote accepts and never answers;
- a service whose stage prints its secret in pieces and disguises runs meanwhile.
One client times GET /healthz and GET /runs every 50 ms; the agent's RSS is sampled.
Then every API body, event and line of the agent's own log is scanned for the test
secrets in every encoding (tests/security/leakscan.py): `leaks` counts what was found.

    .venv/bin/python bench/abuse.py [--seconds 20] [--json]

Goals: healthz_p99_ms < 250, rss_peak_mb < 300, leaks 0. The idle p99 (same agent,
before the attack) is the baseline.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._agent import ServedAgent, percentile, report  # noqa: E402
from tests.sample_repo import make_sample_service_repo  # noqa: E402
from tests.security.hanging import hanging_remote  # noqa: E402
from tests.security.leakscan import leaks  # noqa: E402
from tests.security.test_secret_leaks import LEAK_SCRIPT, PEM, SECRET  # noqa: E402

BODY_CLIENTS, SLOW_CLIENTS, HANGING_TRIGGERS = 20, 500, 20
BODY_BYTES = 300 * 1024 * 1024
CHUNK = b"\0" * (1024 * 1024)
PROBE_EVERY_S = 0.05


class Attack:
    def __init__(self, agent: ServedAgent, seconds: float) -> None:
        self.agent = agent
        self.until = time.monotonic() + seconds
        self.counts = {"uploads": 0, "upload_answers": 0, "slow_connections": 0,
                       "slow_dropped": 0, "triggers": 0}
        self.lock = threading.Lock()

    def running(self) -> bool:
        return time.monotonic() < self.until

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def upload(self) -> None:
        """A 300 MB body with no token; the agent should answer before reading it."""
        while self.running():
            try:
                with socket.create_connection(("127.0.0.1", self.agent.port), timeout=5) as s:
                    s.sendall((f"POST /api/v1/services HTTP/1.1\r\nHost: x\r\nContent-Type:"
                               f" application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
                               ).encode())
                    self.count("uploads")
                    sent = 0
                    while sent < BODY_BYTES and self.running():
                        s.sendall(CHUNK)
                        sent += len(CHUNK)
            except OSError:  # answered and closed: what the agent should do
                self.count("upload_answers")
                time.sleep(0.05)

    def slow_clients(self) -> None:
        """SLOW_CLIENTS sockets sending one header byte a second; reopened when dropped."""
        sel = selectors.DefaultSelector()
        socks: list[socket.socket] = []

        def open_one() -> None:
            try:
                s = socket.create_connection(("127.0.0.1", self.agent.port), timeout=2)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
                socks.append(s)
                self.count("slow_connections")
            except OSError:
                pass

        for _ in range(SLOW_CLIENTS):
            open_one()
        while self.running():
            for key, _ in sel.select(timeout=0):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    s.close()
                    socks.remove(s)
                    self.count("slow_dropped")
                    open_one()
            for s in list(socks):
                try:
                    s.send(b"a")
                except OSError:
                    pass
            time.sleep(1.0)
        for s in socks:
            s.close()

    def trigger(self) -> None:
        with self.agent.client() as client:
            while self.running():
                try:
                    client.post("/api/v1/services/hangs/trigger", json={"branch": "main"},
                                timeout=40)
                except httpx.HTTPError:
                    pass
                self.count("triggers")


def probe(url: str, token: str, until: float, out: dict[str, list[float]],
          errors: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=5) as client:
        while time.monotonic() < until:
            for path in ("/healthz", "/api/v1/runs"):
                started = time.perf_counter()
                try:
                    status = client.get(path).status_code
                    if status != 200:
                        errors.append(f"{path} {status}")
                except httpx.HTTPError as exc:
                    errors.append(f"{path} {type(exc).__name__}")
                out[path].append((time.perf_counter() - started) * 1000)
            time.sleep(PROBE_EVERY_S)


def rss_sampler(pid: int, until: float, peak: list[float]) -> None:
    proc = psutil.Process(pid)
    while time.monotonic() < until:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss
                                               for c in proc.children(recursive=True))
        except psutil.Error:
            break
        peak[0] = max(peak[0], rss / 1024 / 1024)
        time.sleep(0.1)


def collect_events(ws_url: str, token: str, stop: threading.Event, out: list[str]) -> None:
    with connect(f"{ws_url}/api/v1/ws/events",
                 additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        while not stop.is_set():
            try:
                out.append(str(ws.recv(timeout=0.5)))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return


def run(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="seamless-abuse-") as tmp, hanging_remote() as url:
        repo = make_sample_service_repo(Path(tmp) / "leaky", name="leaky")
        sha = repo.commit("a script that prints its secrets", {"leak.sh": LEAK_SCRIPT})
        agent = ServedAgent(Path(tmp) / "data", log_level="info")
        try:
            return attack(agent, url, repo.url, sha, seconds)
        finally:
            agent.stop()
            subprocess.run(["docker", "rm", "-f", *_containers_of(agent)],
                           capture_output=True, check=False)


def _containers_of(agent: ServedAgent) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.seamless.service=leaky"],
                         capture_output=True, text=True, check=False).stdout
    return out.split()


def attack(agent: ServedAgent, hanging_url: str, repo_url: str, sha: str,
           seconds: float) -> dict[str, Any]:
    secrets = {"API_KEY": SECRET, "PEM_KEY": PEM}
    with agent.client() as client:
        client.post("/api/v1/pipelines", json={
            "name": "bench", "staging": {"kind": "none"},
            "production": {"kind": "none"}}).raise_for_status()
        for name, url, extra in (("hangs", hanging_url, {}),
                                 ("leaky", repo_url, {"unit_test_command": "sh leak.sh"})):
            client.post("/api/v1/services?check=false", json={
                "name": name, "pipeline": "bench", "repo_url": url, "branch": "main",
                "dockerfile": None, "secrets": secrets, "webhook_secret": SECRET + "-hook",
                **extra}).raise_for_status()

    idle: dict[str, list[float]] = {"/healthz": [], "/api/v1/runs": []}
    probe(agent.url, agent.token, time.monotonic() + 3, idle, [])

    events: list[str] = []
    stop_events = threading.Event()
    threading.Thread(target=collect_events, daemon=True,
                     args=(agent.ws_url, agent.token, stop_events, events)).start()
    with agent.client() as client:
        leaky_run = client.post("/api/v1/services/leaky/trigger",
                                json={"sha": sha, "kind": "partial"}).json()["id"]

    attack = Attack(agent, seconds)
    workers = [threading.Thread(target=attack.upload, daemon=True) for _ in range(BODY_CLIENTS)]
    workers += [threading.Thread(target=attack.trigger, daemon=True)
                for _ in range(HANGING_TRIGGERS)]
    workers.append(threading.Thread(target=attack.slow_clients, daemon=True))
    peak = [0.0]
    assert agent.proc is not None
    timings: dict[str, list[float]] = {"/healthz": [], "/api/v1/runs": []}
    errors: list[str] = []
    sampler = threading.Thread(target=rss_sampler, args=(agent.proc.pid, attack.until, peak),
                               daemon=True)
    for worker in [*workers, sampler]:
        worker.start()
    time.sleep(1.0)  # let the attack build up before timing
    probe(agent.url, agent.token, attack.until, timings, errors)
    for worker in workers:
        worker.join(45)
    sampler.join(5)

    with agent.client() as client:
        deadline = time.monotonic() + 120
        while client.get(f"/api/v1/runs/{leaky_run}").json()["status"] not in (
                "success", "failed", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.0)
        stop_events.set()
        bodies = [client.get(path).text for path in (
            "/api/v1/runs?limit=500", f"/api/v1/runs/{leaky_run}", "/api/v1/services",
            "/api/v1/services/leaky", "/api/v1/services/leaky/deployments", "/api/v1/pipelines",
            "/api/v1/audit")]
        bodies.append(client.get(f"/api/v1/runs/{leaky_run}/logs",
                                 params={"limit": 5000}).text)
        leaky = client.get(f"/api/v1/runs/{leaky_run}").json()
    agent_log = agent.process.log_path.read_text(errors="replace")
    found = [*leaks("\n".join(bodies), secrets.values()), *leaks("\n".join(events),
             secrets.values()), *leaks(agent_log, secrets.values())]
    return {
        "seconds": seconds,
        "healthz_p50_ms": percentile(timings["/healthz"], 50),
        "healthz_p99_ms": percentile(timings["/healthz"], 99),
        "healthz_idle_p99_ms": percentile(idle["/healthz"], 99),
        "runs_p99_ms": percentile(timings["/api/v1/runs"], 99),
        "runs_idle_p99_ms": percentile(idle["/api/v1/runs"], 99),
        "probe_errors": len(errors),
        "probes": len(timings["/healthz"]),
        "rss_peak_mb": peak[0],
        "leaks": len(found),
        "leak_kinds": sorted(set(found)),
        "leaky_run": leaky["status"],
        **attack.counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(min(args.seconds, 300.0))
    report("abuse (goals: healthz_p99_ms < 250, rss_peak_mb < 300, leaks 0)",
           {k: v for k, v in figures.items() if k != "leak_kinds"}, False)
    if figures["leak_kinds"]:
        print("  leaked:", ", ".join(figures["leak_kinds"]))
    if args.json:
        keys = ("rss_peak_mb", "healthz_p99_ms", "leaks", "healthz_idle_p99_ms", "runs_p99_ms",
                "probe_errors")
        print(json.dumps({k: round(figures[k], 1) if isinstance(figures[k], float)
                          else figures[k] for k in keys}))


if __name__ == "__main__":
    main()
