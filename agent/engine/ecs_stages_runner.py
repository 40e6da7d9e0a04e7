"""Prepare and Build as ECS tasks, for pipelines that run those stages on `ecs`.

The agent host then neither clones nor builds: Prepare's task checks the commit out
into the run's workspace on EFS (the directory every later stage task mounts), Build's
task builds that workspace and pushes `<image_repository>:<sha>` (ECR in production).
Both go through the executor's parallel bound, like every other ECS stage.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.engine.executors import ExecutorSet
from agent.engine.stages import stage_timeout
from agent.engine.workspace import Workspaces
from agent.executors.base import Executor, StageResult, StageSpec, StateSaver
from agent.executors.ecs_stages import build_spec, prepare_spec
from agent.logs import StageLog
from store.models import (
    STAGE_BUILD,
    STAGE_PREPARE,
    Pipeline,
    RunInfo,
    Service,
    image_for,
    pushes_to_registry,
)

SaverFor = Callable[[int, str, Executor], StateSaver]


def git_auth_env(token: str | None, repo_url: str) -> dict[str, str]:
    """git's own config-by-environment for a private https repo: an Authorization header
    scoped to the repo's host. It travels in the task's environment override, never in
    the task definition, the command or a log line (as on the host, agent/engine/
    workspace.py)."""
    parts = urlsplit(repo_url)
    if not token or parts.scheme != "https" or not parts.hostname:
        return {}
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.https://{host}/.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}


class EcsStages:
    def __init__(self, executors: ExecutorSet, workspaces: Workspaces, saver_for: SaverFor) -> None:
        self.executors = executors
        self.workspaces = workspaces
        self.saver_for = saver_for

    def prepare_spec(self, run: RunInfo, service: Service) -> StageSpec:
        workspace = Path(self.workspaces.path_for(service, run.sha))
        spec = prepare_spec(run.id, service.name, service.repo_url, run.sha, workspace)
        token = getattr(self.workspaces, "github_token", None)
        return dataclasses.replace(spec, env=git_auth_env(token, service.repo_url))

    def prepare(self, run: RunInfo, service: Service, pipeline: Pipeline, log: StageLog,
                cancel: threading.Event) -> Path | StageResult:
        """The workspace once the clone task succeeded, else the task's result."""
        spec = self.prepare_spec(run, service)
        log.system(f"{STAGE_PREPARE}: checking out {run.sha[:12]} into {spec.workspace} "
                   f"on the cluster, in {spec.image} (ecs executor)")
        result = self._run(pipeline, spec, log, cancel)
        return spec.workspace if result.ok else result

    def build_spec(self, run: RunInfo, service: Service, pipeline: Pipeline,
                   workspace: Path) -> StageSpec | StageResult:
        """The Build task, or why there is none (skipped, or refused clearly)."""
        if not service.dockerfile:
            return StageResult.skip(f"no Dockerfile configured for {service.name}")
        push = run.kind.value == "full"
        if push and not pushes_to_registry(service):
            # The image would stay on one build instance, where no deploy can find it.
            return StageResult(exit_code=None, error=(
                f"Build on ECS pushes the image, but {service.name} has no image_repository "
                "on a registry (e.g. <account>.dkr.ecr.<region>.amazonaws.com/<name>)"))
        assert pipeline.ecs_executor is not None  # PipelineConfig validates this
        repository = image_for(service, run.sha).rsplit(":", 1)[0]
        return build_spec(run.id, service.name, workspace, image_repository=repository,
                          sha=run.sha, dockerfile=service.dockerfile,
                          context=service.build_context, mode=pipeline.ecs_executor.build_mode,
                          timeout_s=stage_timeout(service, pipeline), push=push)

    def build(self, run: RunInfo, service: Service, pipeline: Pipeline, workspace: Path,
              log: StageLog, cancel: threading.Event) -> StageResult:
        spec = self.build_spec(run, service, pipeline, workspace)
        if isinstance(spec, StageResult):
            return spec
        mode = pipeline.ecs_executor.build_mode if pipeline.ecs_executor else "docker"
        log.system(f"{STAGE_BUILD}: {image_for(service, run.sha)} with {mode} in {spec.image} "
                   "(ecs executor)")
        if run.kind.value != "full":
            log.system("pull request run: the image is built but not pushed")
        return self._run(pipeline, spec, log, cancel)

    def reattach_build(self, run: RunInfo, service: Service, pipeline: Pipeline,
                       log: StageLog, cancel: threading.Event,
                       state: dict[str, Any] | None) -> StageResult | None:
        """Follow the Build task a restarted agent left running, rather than start a
        second build of the same tag; None when there is none (then Build runs again)."""
        workspace = Path(self.workspaces.path_for(service, run.sha))
        spec = self.build_spec(run, service, pipeline, workspace)
        if isinstance(spec, StageResult):
            return spec
        executor = self.executors.get("ecs", pipeline)
        return executor.reattach(spec, log, cancel, state, None,
                                 self.saver_for(run.id, STAGE_BUILD, executor))

    def _run(self, pipeline: Pipeline, spec: StageSpec, log: StageLog,
             cancel: threading.Event) -> StageResult:
        executor = self.executors.get("ecs", pipeline)
        return self.executors.run_bounded(executor, spec, log, cancel,
                                          self.saver_for(spec.run_id, spec.stage, executor))
