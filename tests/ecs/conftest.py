"""moto in server mode over real HTTP: an ECS cluster with one EC2 container instance,
CloudWatch Logs, and the real LogWriter into a temp SQLite store.

What moto cannot emulate: it runs no container. A task's lifecycle is a state machine
that advances one state per `describe_tasks` (RUNNING → … → STOPPED) unless the test
sets a transition, its exit code is always 0, and its logs exist only if the test puts
them into the task's stream. Tests play the container's part with `put_log_events`.
"""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from agent.executors.base import StageSpec
from agent.executors.ecs import EcsExecutor
from store.models import EcsExecutorConfig

REGION = "us-east-1"


def session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name=REGION)


@dataclass
class Moto:
    url: str

    def client(self, name: str) -> Any:
        return session().client(name, endpoint_url=self.url)

    def set_task_transition(self, progression: str, times: int = 1) -> None:
        """How tasks advance: "manual" (one state per `times` describes) or "immediate"."""
        transition: dict[str, Any] = {"progression": progression}
        if progression == "manual":
            transition["times"] = times
        self._post("/moto-api/state-manager/set-transition",
                   {"model_name": "ecs::task", "transition": transition})

    def _post(self, path: str, body: dict[str, Any]) -> None:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     method="POST")
        urllib.request.urlopen(req, timeout=10).close()


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield Moto(f"http://{host}:{port}")
    server.stop()


@pytest.fixture
def cluster(moto: Moto) -> Iterator[str]:
    """A fresh cluster with one EC2 container instance (4096 CPU units, 7482 MiB)."""
    name = f"seamless-{uuid.uuid4().hex[:8]}"
    ecs, ec2 = moto.client("ecs"), moto.client("ec2")
    ecs.create_cluster(clusterName=name)
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    ecs.register_container_instance(cluster=name, instanceIdentityDocument=json.dumps({
        "instanceId": instance["InstanceId"], "region": REGION,
        "availabilityZone": f"{REGION}a", "instanceType": "t3.large"}))
    # Tasks stay RUNNING until a test lets them stop (set_task_transition("immediate")).
    moto.set_task_transition("manual", times=1_000_000)
    yield name
    moto.set_task_transition("manual", times=1)


@pytest.fixture
def ecs_config(moto: Moto, cluster: str) -> EcsExecutorConfig:
    return EcsExecutorConfig(cluster=cluster, region=REGION, endpoint_url=moto.url,
                             efs_file_system_id="fs-0123abcd", efs_access_point_id="fsap-0123abcd",
                             log_group=f"/seamless/{cluster}", max_parallel_tasks=7,
                             memory_mib=512, cpu=256)


@pytest.fixture
def make_executor(ecs_config: EcsExecutorConfig) -> Callable[..., EcsExecutor]:
    def make(**kw: Any) -> EcsExecutor:
        opts: dict[str, Any] = dict(workspaces_root=Path("/data/workspaces"),
                                    poll_interval_s=0.05, max_poll_interval_s=0.1,
                                    settle_s=0.0, capacity_retry_s=0.1)
        opts.update(kw)
        return EcsExecutor(ecs_config, session, **opts)
    return make


def spec(run_id: int = 1, stage: str = "Unit Test", **kw: Any) -> StageSpec:
    fields: dict[str, Any] = dict(
        run_id=run_id, stage=stage, service="payments", image="seamless/busybox:latest",
        command="sh test.sh", workspace=Path("/data/workspaces/payments/abc1234"),
        env={"FOO": "bar"}, timeout_s=60.0)
    fields.update(kw)
    return StageSpec(**fields)


class StateBox:
    """The StateSaver the engine would give: remembers every saved state."""

    def __init__(self) -> None:
        self.states: list[Any] = []  # dict, or None for "no state"

    def __call__(self, state: dict[str, Any] | None) -> None:
        self.states.append(state)

    @property
    def last(self) -> Any:
        return self.states[-1] if self.states else None


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


_last_ts: dict[str, int] = {}


def put_lines(logs: Any, group: str, stream: str, lines: list[str]) -> None:
    """Play the awslogs driver: the task's lines into its stream (created on first use)."""
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    # Like the awslogs driver: timestamps never go back within a stream (moto orders by them).
    base = max(now_ms(), _last_ts.get(stream, 0) + 1)
    _last_ts[stream] = base + len(lines) - 1
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": base + i, "message": text} for i, text in enumerate(lines)])


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # surfaced by the test
            out["error"] = exc
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out
