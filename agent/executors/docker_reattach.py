"""Picking a stage container up again: after the agent restarted (`existing`), and after
the Docker engine stopped answering under a running stage (`after_engine_loss`: wait for
the engine, then re-attach to a container that survived, take the result of one that
finished meanwhile, or fail saying the engine's restart stopped it).

The log is read again from its start each time; the lines stored before are skipped by
count (StageLogWriter.rewind).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import docker

from agent.executors.base import StageResult, StageSpec
from agent.executors.docker_follow import ContainerOutput
from agent.executors.docker_logs import open_log_stream
from agent.executors.engine_errors import EngineErrors, engine_error
from agent.logs import StageLog

ENGINE_PROBE_S = 1.0  # how often a stage asks an engine that went away under it
# A container killed by the engine's stop may exit some seconds before its stream breaks
# (dockerd stops containers first, then its API): that long before counts as "with it".
_SLACK = timedelta(seconds=15)
ENGINE_STOP_CHECK_S = 30.0  # dockerd stops every container before its API
UNREACHABLE = "Docker engine unreachable"  # how a stage that waited for it in vain fails


def waited_in_vain(result: StageResult) -> bool:
    """The stage already waited `engine_wait_s` for the engine, which never answered."""
    return (result.error or "").startswith(UNREACHABLE)


class Reattacher:
    def __init__(self, api: docker.APIClient, output: ContainerOutput,
                 engine_wait_s: float) -> None:
        """`engine_wait_s`: how long a stage waits for an engine that stopped answering."""
        self.api = api
        self.output = output
        self.engine_wait_s = engine_wait_s

    # -- after the agent restarted ----------------------------------------------------------
    def existing(self, container_id: str, spec: StageSpec, log: StageLog,
                 cancel: threading.Event) -> StageResult | None:
        """The stage container a previous agent started, followed to its end (None: gone)."""
        try:
            info = self.api.inspect_container(container_id)
            if info["State"].get("Running"):
                log.system(f"re-attached to running container {spec.container_name}")
                started = parse_docker_time(info["State"].get("StartedAt"))
                deadline = time.monotonic() + spec.timeout_s - (
                    (datetime.now(UTC) - started).total_seconds() if started else 0)
                log.rewind()
                stream = open_log_stream(self.api, container_id, follow=True)
                return self.output.follow(container_id, spec, log, cancel, stream,
                                          deadline=deadline)
            log.system(f"container {spec.container_name} finished while the agent was away")
            self.output.read_all(container_id, log)
            return self.output.exit_result(container_id, log)
        except docker.errors.NotFound:
            return None
        except EngineErrors as exc:
            log.system(engine_error(exc))
            return StageResult(exit_code=None, error=engine_error(exc))

    # -- the engine went away under a running stage ------------------------------------------
    def after_engine_loss(self, container_id: str, spec: StageSpec, log: StageLog,
                          cancel: threading.Event, exc: BaseException, deadline: float,
                          ) -> StageResult:
        """The engine stopped answering mid-stage (dockerd restarted, or its socket went
        away). Wait for it (`engine_wait_s`, cancellable); then a container that survived
        is re-attached (its log read again, stored lines skipped), one that finished by
        itself gives its result, one the engine's restart stopped fails saying so
        (`engine_restarted`: the pipeline may retry the stage once)."""
        lost_at = datetime.now(UTC) - _SLACK
        give_up = time.monotonic() + self.engine_wait_s
        log.system(f"{engine_error(exc)}; waiting for the Docker engine (up to "
                   f"{self.engine_wait_s:g} s)")
        log.flush()
        for _ in range(3):  # the engine may go away again while we re-attach
            info = self.when_back(container_id, cancel, give_up)
            if isinstance(info, StageResult):
                return info
            if info is None:
                return restarted(log, "its container is gone")
            state = info["State"]
            if state.get("Status") == "created":
                return restarted(log, "its container never started")
            if state.get("Running"):
                log.system("the Docker engine answers again: re-attached to the stage's"
                           " container")
                try:
                    log.rewind()
                    stream = open_log_stream(self.api, container_id, follow=True)
                    return self.output.follow(container_id, spec, log, cancel, stream,
                                              deadline=deadline)
                except EngineErrors as again:
                    log.system(f"{engine_error(again)}; waiting for the Docker engine again")
                    continue
            finished = parse_docker_time(state.get("FinishedAt"))
            code = int(state.get("ExitCode") or 0)
            if code >= 128 and finished is not None and finished >= lost_at:
                # killed by a signal while the engine was away: the engine's stop
                return restarted(log, f"its container was stopped with it (exit code {code})")
            log.system("the Docker engine answers again: the stage's container finished"
                       " meanwhile")
            try:
                self.output.read_all(container_id, log)
                return self.output.exit_result(container_id, log)
            except EngineErrors as again:
                log.system(f"{engine_error(again)}; waiting for the Docker engine again")
        return StageResult(exit_code=None, error="the Docker engine kept going away during"
                                                 " the stage", engine_restarted=True)

    def when_back(self, container_id: str, cancel: threading.Event, give_up: float,
                  log: StageLog | None = None, lost: BaseException | None = None,
                  ) -> dict[str, Any] | StageResult | None:
        """The container's state once the engine answers (None: it is gone; {} without a
        container), or the stage's result when waiting ended first (cancelled, or no
        engine in time). With `log`, says that it waits (and why: `lost`)."""
        if log is not None:
            log.system(f"{engine_error(lost) if lost else 'no Docker engine'}; waiting for"
                       f" the Docker engine (up to {self.engine_wait_s:g} s)")
            log.flush()
        while True:
            try:
                if not container_id:
                    self.api.ping()
                    if log is not None:
                        log.system("the Docker engine answers again")
                    return {}
                return dict(self.api.inspect_container(container_id))
            except docker.errors.NotFound:
                return None
            except EngineErrors as exc:
                if time.monotonic() > give_up:
                    error = (f"{UNREACHABLE} for {self.engine_wait_s:g} s during the stage "
                             f"({engine_error(exc)}): rerun it when the engine is back")
                    return StageResult(exit_code=None, error=error)
            if cancel.wait(ENGINE_PROBE_S):
                return StageResult(exit_code=None, cancelled=True, error="cancelled")

    def killed_by_engine_stop(self, container_id: str, result: StageResult) -> bool:
        """A stage killed by a signal (exit code >= 128) that we did not send — the engine
        logged a `kill` of it — may have been stopped by dockerd shutting down: it was if
        the engine stops answering soon after. (An OOM kill or a crash logs no `kill`.)"""
        if result.exit_code is None or result.exit_code < 128 or result.cancelled or (
                result.timed_out):
            return False
        try:
            kills = self.api.events(since=int(time.time()) - 7 * 86400,
                                    until=int(time.time()) + 1, decode=True,
                                    filters={"container": container_id, "event": "kill"})
            if not any(True for _ in kills):
                return False
        except EngineErrors:
            return True  # already gone
        return self.stops_answering(ENGINE_STOP_CHECK_S)

    def gone(self) -> bool:
        """The engine does not answer now (a Build or compose test that just failed may
        have failed because of that)."""
        try:
            self.api.ping()
            return False
        except EngineErrors:
            return True

    def wait_back(self, log: StageLog, cancel: threading.Event, what: str
                  ) -> StageResult | None:
        """After `what` failed with the engine gone: None once it answers again, else the
        stage's result (cancelled, or no engine within `engine_wait_s`)."""
        log.system(f"the Docker engine stopped answering during {what}; waiting for it (up"
                   f" to {self.engine_wait_s:g} s)")
        log.flush()
        back = self.when_back("", cancel, time.monotonic() + self.engine_wait_s)
        return back if isinstance(back, StageResult) else None

    def stops_answering(self, within_s: float) -> bool:
        """Whether the engine stops answering within `within_s` (it is shutting down)."""
        give_up = time.monotonic() + within_s
        while time.monotonic() < give_up:
            try:
                self.api.ping()
            except EngineErrors:
                return True
            time.sleep(0.25)
        return False


def restarted(log: StageLog, detail: str) -> StageResult:
    error = f"the Docker engine restarted during the stage: {detail}"
    log.system(error)
    return StageResult(exit_code=None, error=error, engine_restarted=True)


def parse_docker_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
