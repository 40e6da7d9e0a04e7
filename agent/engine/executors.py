"""Which executor runs a stage (`executor_for`: per pipeline, per stage in mixed mode),
and the executors themselves (`ExecutorSet`), made once and shared by every run."""

from __future__ import annotations

import logging
import threading
from typing import Any

from agent.config import AgentConfig
from agent.executors.base import (
    BuildsImages,
    Executor,
    MakesContainersAhead,
    RunsComposeTests,
    StageResult,
    StageSpec,
    StateSaver,
)
from agent.logs import StageLog
from store.models import Pipeline

log = logging.getLogger(__name__)


class NoDockerEngine(RuntimeError):
    pass


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
        self._docker: Executor | None = None
        self._local: Executor | None = None
        self._ecs: dict[str, Executor] = {}
        # Extra EcsExecutor keyword arguments (poll/settle intervals); tests shorten them.
        self.ecs_options: dict[str, Any] = {}
        # One slot pool per executor instance that declares `max_parallel` (ECS: the
        # cluster's bound), so mixed-mode pipelines are bounded too, not only `executor: ecs`.
        self._slots: dict[int, threading.BoundedSemaphore] = {}
        self.docker_error: str | None = None
        if docker is not None:
            self._docker = docker
        else:
            self._connect_docker()

    def _connect_docker(self) -> None:
        if self.config.executor == "local":
            self.docker_error = "the local executor was chosen in the agent config"
            return
        try:
            import docker

            client = (docker.DockerClient(base_url=self.config.docker_host)
                      if self.config.docker_host else docker.from_env())
            client.ping()
        except Exception as exc:  # no engine: say so, and fall back only when allowed
            self.docker_error = f"no Docker engine answers ({exc.__class__.__name__}: {exc})"
            if self.config.executor == "docker":
                raise NoDockerEngine(self.docker_error) from exc
            log.warning("%s; stages run with the local executor", self.docker_error)
            return
        from agent.executors.caches import caches_of
        from agent.executors.docker import DockerExecutor

        self._docker = DockerExecutor(client, instance=self.instance,
                                      caches=caches_of(self.config))

    @property
    def local(self) -> Executor:
        with self._lock:
            if self._local is None:
                from agent.executors.local import LocalExecutor

                self._local = LocalExecutor()
            return self._local

    def get(self, name: str, pipeline: Pipeline) -> Executor:
        """The executor called `name` (see `executor_for`); "docker" without an engine
        falls back to the local one, with `docker_error` saying why."""
        if name == "ecs":
            return self.ecs(pipeline)
        if name == "local" or self._docker is None:
            return self.local
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

    def docker_shaped(self, executor: Executor) -> Executor | None:
        """For Build and a compose Integration Test, which need an image builder and
        compose: `executor` when it can do them, else the Docker executor when there is
        an engine (a `local` pipeline still builds on it), else None."""
        if isinstance(executor, BuildsImages | RunsComposeTests):
            return executor
        return self._docker

    def precreate(self, executor: Executor, spec: StageSpec) -> None:
        """Have `spec`'s container made ahead, if `executor` can."""
        if isinstance(executor, MakesContainersAhead):
            executor.precreate(spec)

    def drain(self, timeout: float = 10.0) -> None:
        """Let background container removals finish (agent shutdown)."""
        reaper = getattr(self._docker, "reaper", None)
        if reaper is not None and not reaper.drain(timeout):
            log.warning("stage containers still being removed at shutdown; the next start "
                        "cleans them up")

    def all(self) -> list[Executor]:
        found = [e for e in (self._docker, self._local) if e is not None]
        return found + list(self._ecs.values())
