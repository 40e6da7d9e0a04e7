"""Bench helpers: run `seamless-agent serve` as its own process, percentiles, output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent / "seamless-agent"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedAgent:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = open(data_dir.parent / f"agent-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(self.port), "--data-dir", str(data_dir)],
            env={**os.environ, "SEAMLESS_LOG_LEVEL": "warning", **env},
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"agent did not start; see {self.log.name}")
            time.sleep(0.1)
        self.token = (data_dir / "admin-token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def add_service(self, repo_url: str, **fields: object) -> None:
        """A pipeline `bench` without deploy targets and its one service `svc`."""
        with self.client() as client:
            client.post("/api/v1/pipelines", json={
                "name": "bench", "staging": {"kind": "none"},
                "production": {"kind": "none"}}).raise_for_status()
            client.post("/api/v1/services", json={
                "name": "svc", "pipeline": "bench", "repo_url": repo_url, "branch": "main",
                **fields}).raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(title: str, figures: dict[str, Any], as_json: bool) -> None:
    width = max(len(k) for k in figures)
    print(title)
    for key, value in figures.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"  {key.ljust(width)}  {shown}")
    if as_json:
        print(json.dumps(figures))
