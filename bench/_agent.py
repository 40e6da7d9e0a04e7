"""Bench helpers: run `seamless-agent serve` as its own process, percentiles, output."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx

from agent.demo.agentproc import AgentProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedAgent:
    """`seamless-agent serve` in its own process, started the way the demo starts it
    (agent/demo/agentproc.py), quiet, polling off; `settings` go into its config file.
    `pipeline_executor`: the executor of the pipeline `add_service` makes ("local": stages
    as processes on this host, an admin's per-pipeline choice)."""

    def __init__(self, data_dir: Path, pipeline_executor: str = "docker",
                 **settings: str | int | bool) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.pipeline_executor = pipeline_executor
        self.process = AgentProcess(data_dir.parent, data_dir, self.port,
                                    {"log_level": "warning", "poll_enabled": False,
                                     "max_parallel_runs": 4, **settings})
        self.process.start()
        self.proc = self.process.proc
        self.url = self.process.url
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.token = self.process.admin_token()
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def add_service(self, repo_url: str, **fields: object) -> None:
        """A pipeline `bench` without deploy targets and its one service `svc`."""
        with self.client() as client:
            client.post("/api/v1/pipelines", json={
                "name": "bench", "executor": self.pipeline_executor,
                "staging": {"kind": "none"},
                "production": {"kind": "none"}}).raise_for_status()
            client.post("/api/v1/services", json={
                "name": "svc", "pipeline": "bench", "repo_url": repo_url, "branch": "main",
                **fields}).raise_for_status()

    def stop(self) -> None:
        self.process.stop()


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
