"""A real uvicorn server on 127.0.0.1 in a thread, and a stand-in engine for API tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from agent.bus import Bus
from store.db import now
from store.models import (
    DEFAULT_STAGES,
    PARTIAL_STAGES,
    ApprovalStatus,
    Event,
    RunInfo,
    RunKind,
    RunStatus,
    Service,
    Trigger,
)
from store.store import Store
from tests.helpers import free_port


class ServerThread:
    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, ws="websockets-sansio",
                                log_level="warning", lifespan="on", ws_ping_interval=5.0)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class EngineRefusal(ValueError):
    """What the real engine raises (EngineError is a ValueError) for refused actions."""


class RecordingEngine:
    """Queues runs in the store and publishes them, like the engine's submit; the API
    tests check what the API asks of the engine, the engine has its own tests."""

    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self.submitted: list[RunInfo] = []
        self.calls: list[tuple[str, Any]] = []

    def submit(self, service: Service, *, trigger: Trigger, kind: RunKind, sha: str,
               branch: str | None = None, pr_number: int | None = None,
               author: str | None = None, message: str | None = None,
               actor: str | None = None) -> RunInfo:
        stages = DEFAULT_STAGES if kind is RunKind.full else PARTIAL_STAGES
        run = self.store.create_run(service.id, trigger=trigger, kind=kind, sha=sha,
                                    branch=branch, pr_number=pr_number, author=author,
                                    message=message, actor=actor, stage_names=stages)
        self.submitted.append(run)
        self.bus.publish_event(Event(type="run", ts=now(), run=run))
        return run

    def cancel(self, run_id: int, actor: str) -> RunInfo:
        run = self.store.get_run(run_id)
        if run.status.finished:
            raise EngineRefusal(f"run {run_id} already finished ({run.status.value})")
        self.calls.append(("cancel", run_id))
        return self.store.set_run_status(run_id, RunStatus.cancelled)

    def rerun(self, run_id: int, from_stage: str | None, actor: str) -> RunInfo:
        old = self.store.get_run(run_id)
        self.calls.append(("rerun", (run_id, from_stage)))
        service = self.store.get_service_by_id(old.service_id)
        return self.submit(service, trigger=Trigger.rerun, kind=old.kind, sha=old.sha,
                           branch=old.branch, actor=actor)

    def approve(self, run_id: int, actor: str, comment: str | None) -> Any:
        return self.store.decide_approval(run_id, ApprovalStatus.approved, actor=actor,
                                          comment=comment)

    def reject(self, run_id: int, actor: str, comment: str | None) -> Any:
        return self.store.decide_approval(run_id, ApprovalStatus.rejected, actor=actor,
                                          comment=comment)

    def rollback(self, service: str, environment: str, sha: str, actor: str) -> Any:
        raise EngineRefusal(f"no deployment of {sha} in {environment} to roll back to")

    def queue_depth(self) -> int:
        return sum(1 for r in self.submitted if r.status is RunStatus.queued)


class GitWorkspaces:
    def resolve_branch(self, repo_url: str, branch: str) -> str | None:
        from agent.triggers.polling import ls_remote

        return ls_remote(repo_url, f"refs/heads/{branch}").get(f"refs/heads/{branch}")


class StoreDora:
    """The deployer's DORA figures, computed from the store like the real one."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def dora(self, service_id: int | None, days: int) -> Any:
        from agent.deploy.dora import compute_dora

        deployments = self.store.list_deployments(service_id=service_id,
                                                  environment="production", limit=100_000)
        name = self.store.get_service_by_id(service_id).name if service_id else None
        return compute_dora(deployments, days=days, now=now(), service=name)


@dataclass
class StandInAgent:
    """Real store and bus; the stand-in engine above; no deployer."""

    store: Store
    bus: Bus = field(default_factory=Bus)
    config: Any = None
    engine: Any = None
    workspaces: Any = field(default_factory=GitWorkspaces)
    deployer: Any = None
    poller: Any = None
    started: bool = False

    def __post_init__(self) -> None:
        self.engine = RecordingEngine(self.store, self.bus)
        self.deployer = StoreDora(self.store)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False
