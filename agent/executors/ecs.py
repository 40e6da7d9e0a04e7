"""The ECS executor: each stage is one ECS task on an existing cluster.

The agent stays the orchestrator and the store: it registers a task definition
(ecs_taskdef), starts the task, polls `describe_tasks`, follows the task's CloudWatch
Logs stream with its forward token (cloudwatch) into the same StageLog as a local
stage, and saves {task ARN, log stream, token} so a restarted agent re-attaches.
Blocking by design, like every executor: the engine calls it from a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from agent.executors.base import StageResult, StageSpec, StateSaver
from agent.executors.cloudwatch import LogFollower
from agent.executors.ecs_taskdef import (
    CONTAINER_NAME,
    TaskDefinitionError,
    log_stream_name,
    run_task_request,
    started_by,
    task_definition,
)
from agent.logs import StageLog
from store.models import EcsExecutorConfig

logger = logging.getLogger(__name__)

STOP_REASON_CANCEL = "Seamless: the run was cancelled"
STOP_REASON_CLEANUP = "Seamless: the run is no longer active"
_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8},
                      connect_timeout=10, read_timeout=30)


def task_result(task: dict[str, Any]) -> StageResult:
    """A STOPPED task's result: the stage container's exit code, else ECS's reason."""
    containers = task.get("containers") or [{}]
    container = next((c for c in containers if c.get("name") == CONTAINER_NAME), containers[0])
    code = container.get("exitCode")
    why = task.get("stoppedReason") or task.get("stopCode") or "no reason given"
    if container.get("reason"):
        why = f"{why}; container: {container['reason']}"
    if code is None:  # e.g. CannotPullContainerError, no capacity, an instance lost
        return StageResult(None, error=f"the ECS task stopped before the stage finished: {why}")
    if code != 0 and container.get("reason"):  # e.g. OutOfMemoryError with exit 137
        return StageResult(code, error=f"exit code {code}: {container['reason']}")
    return StageResult(code)


class EcsExecutor:
    name = "ecs"

    def __init__(self, config: EcsExecutorConfig,
                 session_factory: Callable[[], boto3.session.Session] | None = None, *,
                 workspaces_root: Path | None = None, poll_interval_s: float = 2.0,
                 max_poll_interval_s: float = 5.0, settle_s: float = 2.0,
                 capacity_retry_s: float = 10.0) -> None:
        self.config = config
        session = (session_factory or (lambda: boto3.session.Session(
            region_name=config.region)))()
        kw = {"region_name": config.region, "endpoint_url": config.endpoint_url,
              "config": _BOTO_CONFIG}
        self.ecs = session.client("ecs", **kw)
        self.logs = session.client("logs", **kw)
        self.workspaces_root = workspaces_root
        self.poll_interval_s = poll_interval_s
        self.max_poll_interval_s = max(max_poll_interval_s, poll_interval_s)
        self.settle_s = settle_s  # CloudWatch can show a task's last lines after STOPPED
        self.capacity_retry_s = capacity_retry_s
        # The engine's parallel bound for stages on this executor: the cluster's, not ours.
        self.max_parallel = config.max_parallel_tasks
        self._registered: dict[str, str] = {}  # family -> task definition ARN
        self._log_group_ready = False
        self._lock = threading.Lock()

    # ---- the Executor protocol -------------------------------------------------------

    def run(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
            save_state: StateSaver) -> StageResult:
        deadline = time.monotonic() + spec.timeout_s
        try:
            definition_arn = self._task_definition(spec)
            started = self._start(spec, definition_arn, log, cancel, deadline)
        except TaskDefinitionError as exc:
            return StageResult(None, error=str(exc))
        except (ClientError, BotoCoreError) as exc:
            return StageResult(None, error=f"ECS refused the stage task: {exc}")
        if isinstance(started, StageResult):
            return started
        state = {"task_arn": started, "task_definition_arn": definition_arn,
                 "log_stream": log_stream_name(spec.run_id, started), "next_token": None}
        save_state(state)
        log.system(f"ECS task {started.rsplit('/', 1)[-1]} started on cluster "
                   f"{self.config.cluster}")
        return self._follow(spec, log, cancel, save_state, state, deadline)

    def reattach(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
                 state: dict[str, Any] | None, since: Any,
                 save_state: StateSaver | None = None) -> StageResult | None:
        """`since` is not needed: the token is saved only after its lines are stored, and a
        task found without saved state had no lines read yet. Pass `save_state` so that a
        second restart resumes from the newest token rather than the first one."""
        state = dict(state or {})
        if not state.get("task_arn"):
            found = self._find_task(spec)
            if found is None:
                return None
            state = {"task_arn": found, "log_stream": log_stream_name(spec.run_id, found),
                     "next_token": None}
        task = self._describe(state["task_arn"])
        follower = LogFollower(self.logs, self.config.log_group, state["log_stream"],
                               state.get("next_token"))
        if task is None:  # ECS forgets stopped tasks after about an hour: keep the logs
            follower.poll(log)
            log.system("the ECS task is no longer known to ECS; its result is lost")
            log.flush()
            return None
        log.system(f"re-attached to ECS task {state['task_arn'].rsplit('/', 1)[-1]}")
        created = task.get("createdAt")
        elapsed = time.time() - created.timestamp() if isinstance(created, datetime) else 0.0
        deadline = time.monotonic() + max(spec.timeout_s - elapsed, 0.0)
        saver: StateSaver = save_state or _ignore  # type: ignore[assignment]
        return self._follow(spec, log, cancel, saver, state, deadline)

    def cleanup(self, keep_run_ids: set[int]) -> list[str]:
        """Stop running tasks this agent started for runs that are no longer active."""
        removed: list[str] = []
        arns: list[str] = []
        for page in self.ecs.get_paginator("list_tasks").paginate(
                cluster=self.config.cluster, desiredStatus="RUNNING"):
            arns.extend(page.get("taskArns", []))
        for i in range(0, len(arns), 100):
            tasks = self.ecs.describe_tasks(cluster=self.config.cluster,
                                            tasks=arns[i:i + 100])["tasks"]
            for task in tasks:
                run_id = _run_id(task.get("startedBy", ""))
                if run_id is None or run_id in keep_run_ids or task["lastStatus"] == "STOPPED":
                    continue
                self.ecs.stop_task(cluster=self.config.cluster, task=task["taskArn"],
                                   reason=STOP_REASON_CLEANUP)
                removed.append(task["taskArn"].rsplit("/", 1)[-1])
        return removed

    # ---- steps -------------------------------------------------------------------------

    def _task_definition(self, spec: StageSpec) -> str:
        body = task_definition(self.config, spec, self.workspaces_root)
        family = body["family"]
        with self._lock:
            if family in self._registered:
                return self._registered[family]
        try:  # registered before (a retry, or an agent restarted mid-stage): reuse it
            arn = self.ecs.describe_task_definition(taskDefinition=family)[
                "taskDefinition"]["taskDefinitionArn"]
        except ClientError:
            self._ensure_log_group()
            arn = self.ecs.register_task_definition(**body)["taskDefinition"][
                "taskDefinitionArn"]
        with self._lock:
            self._registered[family] = arn
        return arn

    def _ensure_log_group(self) -> None:
        if self._log_group_ready:
            return
        try:
            self.logs.create_log_group(logGroupName=self.config.log_group)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                logger.warning("could not create log group %s: %s", self.config.log_group, exc)
        self._log_group_ready = True

    def _start(self, spec: StageSpec, definition_arn: str, log: StageLog,
               cancel: threading.Event, deadline: float) -> str | StageResult:
        """run_task, waiting (bounded) while the cluster has no room for the task."""
        request = run_task_request(self.config, spec, definition_arn, self.workspaces_root)
        told = False
        while True:
            if cancel.is_set():
                return StageResult(None, cancelled=True, error="cancelled before the task started")
            response = self.ecs.run_task(**request)
            if response.get("tasks"):
                return response["tasks"][0]["taskArn"]
            reasons = [f.get("reason", "?") for f in response.get("failures", [])]
            if any(not r.startswith(("RESOURCE", "AGENT")) for r in reasons):
                why = ", ".join(reasons)
                return StageResult(None, error=f"ECS could not start the task: {why}")
            if not told:
                log.system("waiting for room on cluster "
                           f"{self.config.cluster} ({', '.join(reasons) or 'no task placed'})")
                told = True
            if time.monotonic() > deadline:
                return StageResult(None, timed_out=True,
                                   error="timed out waiting for room on the ECS cluster")
            cancel.wait(self.capacity_retry_s)

    def _follow(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
                save_state: StateSaver, state: dict[str, Any], deadline: float) -> StageResult:
        arn = state["task_arn"]
        follower = LogFollower(self.logs, self.config.log_group, state["log_stream"],
                               state.get("next_token"))
        interval = self.poll_interval_s
        while True:
            task = self._describe(arn)
            moved = self._pump(follower, log, save_state, state)
            if task is None:
                return StageResult(None, error="the ECS task is no longer known to ECS")
            if task.get("lastStatus") == "STOPPED":
                if self.settle_s:
                    cancel.wait(self.settle_s)
                while self._pump(follower, log, save_state, state):
                    pass
                result = task_result(task)
                if result.error:
                    log.system(result.error)
                return result
            if cancel.is_set():
                return self._stop(arn, follower, log, save_state, state, STOP_REASON_CANCEL,
                                  StageResult(None, cancelled=True, error="cancelled"))
            if time.monotonic() > deadline:
                why = f"the stage timed out after {spec.timeout_s:g} s"
                return self._stop(arn, follower, log, save_state, state, f"Seamless: {why}",
                                  StageResult(None, timed_out=True, error=why))
            # Quiet stages poll less often (CloudWatch GetLogEvents has a per-account quota).
            interval = (self.poll_interval_s if moved
                        else min(interval * 1.5, self.max_poll_interval_s))
            cancel.wait(interval)

    def _pump(self, follower: LogFollower, log: StageLog, save_state: StateSaver,
              state: dict[str, Any]) -> bool:
        if not follower.poll(log):
            return False
        log.flush()  # stored first, then the token: a crash between repeats nothing
        state["next_token"] = follower.token
        save_state(dict(state))
        return True

    def _stop(self, arn: str, follower: LogFollower, log: StageLog, save_state: StateSaver,
              state: dict[str, Any], reason: str, result: StageResult) -> StageResult:
        try:
            self.ecs.stop_task(cluster=self.config.cluster, task=arn, reason=reason)
        except ClientError as exc:
            logger.warning("stop_task %s failed: %s", arn, exc)
        self._pump(follower, log, save_state, state)
        log.system(f"stopped the ECS task: {reason}")
        return result

    def _describe(self, arn: str) -> dict[str, Any] | None:
        tasks = self.ecs.describe_tasks(cluster=self.config.cluster, tasks=[arn])["tasks"]
        return tasks[0] if tasks else None

    def _find_task(self, spec: StageSpec) -> str | None:
        """The newest task of this run and stage, by startedBy and the seamless:stage tag."""
        arns: list[str] = []
        for status in ("RUNNING", "STOPPED"):
            arns += self.ecs.list_tasks(cluster=self.config.cluster, desiredStatus=status,
                                        startedBy=started_by(spec.run_id))["taskArns"]
        if not arns:
            return None
        tasks = self.ecs.describe_tasks(cluster=self.config.cluster, tasks=arns[:100],
                                        include=["TAGS"])["tasks"]
        mine = [t for t in tasks
                if {"key": "seamless:stage", "value": spec.stage} in t.get("tags", [])]
        mine.sort(key=lambda t: str(t.get("createdAt", "")))
        return mine[-1]["taskArn"] if mine else None


def _ignore(_state: dict[str, Any] | None) -> None:
    pass


def _run_id(started: str) -> int | None:
    prefix = started_by(0)[:-1]
    rest = started[len(prefix):] if started.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None
