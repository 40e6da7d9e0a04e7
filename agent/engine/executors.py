"""Which executor runs a stage (`executor_for`: per pipeline, per stage in mixed mode),
and the executors themselves (`ExecutorSet`), made once and shared by every run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agent.config import AgentConfig
from agent.docker_client import engine_client
from agent.executors.base import (
    BuildsImages,
    Executor,
    MakesContainersAhead,
    RunsComposeTests,
    StageResult,
    StageSpec,
    StateSaver,
)
from agent.executors.caches import Caches, caches_of
from agent.logs import StageLog
from store.models import Pipeline

log = logging.getLogger(__name__)

ENGINE_RETRY_S = 2.0  # how often a waiting stage asks the engine again


def executor_for(pipeline: Pipeline, stage: str | None = None) -> str:
    """The executor that runs `stage` of `pipeline`: the stage's own override, else the
    pipeline's. Without a stage, the pipeline's: whether its runs occupy this host
    ("docker", "local") or the cluster ("ecs") when the scheduler counts them."""
    if stage is None:
        return pipeline.executor
    return pipeline.stage_executors.get(stage, pipeline.executor)


class ExecutorSet:
    def __init__(self, config: AgentConfig, instance: str = "", *,
                 docker: Executor | None = None) -> None:
        """`docker`: the executor to use for "docker" stages instead of connecting to
        an engine (the test harness's fake executor)."""
        self.config = config
        self.instance = instance
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()  # one engine probe at a time
        self._docker: Executor | None = None
        self._local: Executor | None = None
        self._ecs: dict[str, Executor] = {}
        # Extra EcsExecutor keyword arguments (poll/settle intervals); tests shorten them.
        self.ecs_options: dict[str, Any] = {}
        # One slot pool per executor instance that declares `max_parallel` (ECS: the
        # cluster's bound), so mixed-mode pipelines are bounded too, not only `executor: ecs`.
        self._slots: dict[int, threading.BoundedSemaphore] = {}
        self.docker_error: str | None = None
        # True while the engine watch sees the engine down (set by the Agent): stages
        # starting then wait for it instead of failing at once
        self.engine_down: Callable[[], bool] = lambda: False
        # Outages of the engine the watch has seen begin or end (a count; set by the Agent):
        # a Build or compose test that failed while it changed was cut off by a restart
        self.engine_outages: Callable[[], int] = lambda: 0
        if docker is not None:
            self._docker = docker
        else:
            self._connect_docker()

    def _connect_docker(self) -> None:
        if not self._try_docker():  # stages wait for the engine, never run on the host
            log.warning("%s; the agent starts without it and Docker stages wait for it"
                        " (up to docker_wait_s = %g s each)", self.docker_error,
                        self.config.docker_wait_s)

    def _try_docker(self) -> bool:
        """Connect to the engine if it answers now; `docker_error` says why not."""
        with self._connect_lock:
            if self._docker is not None:
                return True
            try:
                def connect(timeout: int) -> Any:
                    return engine_client(self.config.docker_host, timeout)

                probe = connect(5)  # a quick "are you there", then a client for real work
                try:
                    probe.ping()
                finally:
                    probe.close()
                client = connect(60)
            except Exception as exc:  # any failure means "unreachable", with its reason
                self.docker_error = (f"Docker engine unreachable ({exc.__class__.__name__}: "
                                     f"{exc})")[:500]
                return False
            from agent.executors.docker import DockerExecutor

            self._docker = DockerExecutor(client, instance=self.instance,
                                          caches=caches_of(self.config),
                                          docker_host=self.config.docker_host,
                                          engine_wait_s=self.config.docker_wait_s,
                                          outages=lambda: self.engine_outages())
            self.docker_error = None
            return True

    def wait_for_docker(self, log: StageLog, cancel: threading.Event) -> Executor | None:
        """The Docker executor, waiting up to `docker_wait_s` for the engine to answer
        (cancellable); None when it never did — the stage then fails, never falls back
        to the host."""
        if self._docker is not None and not self.engine_down():
            return self._docker
        deadline = time.monotonic() + self.config.docker_wait_s
        if not self._answers():
            log.system(f"waiting for the Docker engine (up to {self.config.docker_wait_s:g} "
                       f"s): {self.docker_error}")
            log.flush()
            while not self._answers():
                if time.monotonic() >= deadline or cancel.wait(ENGINE_RETRY_S):
                    return None
            log.system("the Docker engine answers again")
        return self._docker

    def _answers(self) -> bool:
        """Connected and not seen down by the engine watch (`engine_down`)."""
        if not self._try_docker():
            return False
        if self.engine_down():
            self.docker_error = "the Docker engine stopped answering"
            return False
        return True

    def after_engine_return(self) -> bool:
        """The engine answers again: stage containers it could not remove while away go."""
        remove = getattr(self._docker, "remove_unremoved", None)
        return bool(remove()) if remove is not None else True

    @property
    def docker_engine(self) -> Any | None:
        """The Docker client the docker executor drives (None: no engine in use); for the
        agent's info line."""
        return getattr(self._docker, "client", None)

    @property
    def caches(self) -> Caches:
        """The dependency caches; with the engine up, they can remove files of root and
        the installed dependencies kept as images."""
        self._try_docker()
        caches = getattr(self._docker, "caches", None)
        return caches if isinstance(caches, Caches) else caches_of(self.config)

    @property
    def local(self) -> Executor:
        with self._lock:
            if self._local is None:
                from agent.executors.local import LocalExecutor

                self._local = LocalExecutor()
            return self._local

    def get(self, name: str, pipeline: Pipeline) -> Executor:
        """The executor called `name` (see `executor_for`). "local" only when an admin
        named it on the pipeline; "docker" without an engine is one that waits for it."""
        if name == "ecs":
            return self.ecs(pipeline)
        if name == "local":
            return self.local
        if self._docker is None or self.engine_down():
            return EngineWait(self)
        return self._docker

    def ecs(self, pipeline: Pipeline) -> Executor:
        assert pipeline.ecs_executor is not None  # PipelineConfig validates this
        key = pipeline.ecs_executor.model_dump_json()
        with self._lock:
            if key not in self._ecs:
                from agent.executors.ecs import EcsExecutor

                self._ecs[key] = EcsExecutor(pipeline.ecs_executor,
                                             workspaces_root=self.config.workspaces_dir,
                                             **self.ecs_options)
            return self._ecs[key]

    def run_bounded(self, executor: Executor, spec: StageSpec, log: StageLog,
                    cancel: threading.Event, save_state: StateSaver) -> StageResult:
        """`executor.run` within the executor's own parallel bound, if it has one. Blocking;
        waiting for a slot stays cancellable."""
        slots = self._slots_for(executor)
        if slots is None:
            return executor.run(spec, log, cancel, save_state)
        if not slots.acquire(blocking=False):
            bound = getattr(executor, "max_parallel", None)
            log.system(f"waiting for a free {executor.name} slot "
                       f"(at most {bound} stages at once)")
            log.flush()
            while not slots.acquire(timeout=0.2):
                if cancel.is_set():
                    return StageResult(None, cancelled=True, error=(
                        f"cancelled while waiting for a {executor.name} slot"))
        try:
            return executor.run(spec, log, cancel, save_state)
        finally:
            slots.release()

    def _slots_for(self, executor: Executor) -> threading.BoundedSemaphore | None:
        bound = getattr(executor, "max_parallel", None)
        if not bound:
            return None
        with self._lock:
            if id(executor) not in self._slots:  # executors live as long as this set
                self._slots[id(executor)] = threading.BoundedSemaphore(bound)
            return self._slots[id(executor)]

    def discard_ready(self, run_id: int) -> None:
        """Containers created ahead for a run that has stopped needing them."""
        if isinstance(self._docker, MakesContainersAhead):
            self._docker.discard_ready(run_id)

    def docker_shaped(self, executor: Executor, log: StageLog,
                      cancel: threading.Event) -> Executor | None:
        """For Build and a compose Integration Test, which need an image builder and
        compose: `executor` when it can do them, else the Docker executor once the
        engine answers (a `local` pipeline still builds on it), else None."""
        if isinstance(executor, BuildsImages | RunsComposeTests):
            return executor
        return self.wait_for_docker(log, cancel)

    def precreate(self, executor: Executor, spec: StageSpec) -> None:
        """Have `spec`'s container made ahead, if `executor` can."""
        if isinstance(executor, MakesContainersAhead):
            executor.precreate(spec)

    def drain(self, timeout: float = 10.0) -> None:
        """Agent shutdown: local stages end (their process groups killed, their output read
        to the end), installed dependencies being kept and background container removals
        finish."""
        stop_local = getattr(self._local, "stop_all", None)
        if stop_local is not None and not stop_local(timeout):
            log.warning("a local stage still ran %g s after it was killed", timeout)
        installed = getattr(self._docker, "installed", None)  # saves hand containers over
        if installed is not None and not installed.wait_saved(timeout):
            log.warning("installed dependencies still being kept at shutdown")
        reaper = getattr(self._docker, "reaper", None)
        if reaper is not None and not reaper.drain(timeout):
            log.warning("stage containers still being removed at shutdown; the next start "
                        "cleans them up")

    def all(self) -> list[Executor]:
        found = [e for e in (self._docker, self._local) if e is not None]
        return found + list(self._ecs.values())


class EngineWait:
    """Stands for the Docker executor while the engine does not answer: a stage waits for
    it (bounded), then runs in a container — or fails saying the engine is unreachable."""

    name = "docker"

    def __init__(self, executors: ExecutorSet) -> None:
        self.executors = executors

    def _unreachable(self) -> StageResult:
        return StageResult(exit_code=None, error=(
            f"{self.executors.docker_error or 'Docker engine unreachable'} after waiting "
            f"{self.executors.config.docker_wait_s:g} s; the stage did not run (stages "
            "never fall back to the host): rerun it when the engine is back"))

    def run(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
            save_state: StateSaver) -> StageResult:
        docker = self.executors.wait_for_docker(log, cancel)
        if docker is None:
            if cancel.is_set():
                return StageResult(None, cancelled=True, error="cancelled")
            return self._unreachable()
        return docker.run(spec, log, cancel, save_state)

    def reattach(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
                 state: dict[str, Any] | None, since: datetime | None,
                 save_state: StateSaver | None = None) -> StageResult | None:
        docker = self.executors.wait_for_docker(log, cancel)
        if docker is None:
            return self._unreachable()
        return docker.reattach(spec, log, cancel, state, since, save_state)

    def cleanup(self, keep_run_ids: set[int]) -> list[str]:
        return []
