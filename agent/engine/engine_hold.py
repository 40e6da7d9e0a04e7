"""Runs that need the Docker engine are not started while it is away: they stay `queued`,
saying "waiting for the Docker engine" (the run's `waiting`, a line in the log of the
stage that would run first), start by themselves once it answers, and fail with the
reason once they waited `docker_queue_wait_s` (agent config)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from agent.engine.transitions import Transitions
from agent.logs.writer import LogWriter
from store.models import (
    Pipeline,
    PipelineConfig,
    RunInfo,
    RunStatus,
    Service,
    ServiceConfig,
    StageStatus,
)

log = logging.getLogger(__name__)

CHECK_S = 1.0  # how often held runs are looked at again (engine back, waited too long)


def needs_engine(pipeline: PipelineConfig, service: ServiceConfig) -> bool:
    """Whether a run of `service` uses the Docker engine the agent drives: a stage in a
    container, Build or a compose test on it, or a deploy to a Docker host."""
    executors = {pipeline.executor, *pipeline.stage_executors.values()}
    if "docker" in executors:
        return True
    if "local" in executors and (service.dockerfile or service.compose_file):
        return True  # Build and a compose test of a local pipeline use the engine
    return "docker" in (pipeline.staging.kind, pipeline.production.kind)


class EngineHold:
    def __init__(self, transitions: Transitions, logs: LogWriter, wait_s: float) -> None:
        self.t = transitions
        self.logs = logs
        self.wait_s = wait_s
        # Why the Docker engine is away (None: it answers); set by the Agent from its watch.
        self.away: Callable[[], str | None] = lambda: None
        self._held: set[int] = set()  # runs held by this agent (looked at every CHECK_S)

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def holds(self, run: RunInfo, pipeline: Pipeline, service: Service) -> bool:
        """True: `run` stays queued, waiting for the engine (or it just failed, having
        waited too long). False: it may start — said in its log if it had waited. Since
        when it waits is the run's own (`waiting_since`): an agent restart does not
        start the wait again."""
        why = self.away() if needs_engine(pipeline, service) else None
        if why is None:
            self._held.discard(run.id)
            if run.waiting is not None:
                self._say(run, "the Docker engine answers again: the run starts")
            return False
        self._held.add(run.id)
        if run.waiting_since is None:
            waiting = f"waiting for the Docker engine (up to {self.wait_s:g} s)"
            self._say(run, f"{waiting} before starting: {why}")
            self.t.waiting(run.id, waiting)
            log.info("run %s waits for the Docker engine", run.id)
        elif (datetime.now(UTC) - run.waiting_since).total_seconds() >= self.wait_s:
            self._held.discard(run.id)
            error = (f"the Docker engine did not answer for {self.wait_s:g} s: the run did "
                     f"not start ({why}); rerun it when the engine is back")
            self._say(run, error)
            self.t.skip_rest(run.id, "not run: the Docker engine did not answer")
            self.t.run(run.id, RunStatus.failed, error=error)
        return True

    def forget_except(self, queued: set[int]) -> None:
        """Runs no longer queued (cancelled, superseded) are no longer held."""
        self._held &= queued

    def _say(self, run: RunInfo, line: str) -> None:
        first = next((s.name for s in run.stages if s.status is StageStatus.idle), None)
        if first is None:
            return
        self.logs.stage_log(run.id, first, []).system(line)  # committed by the writer
