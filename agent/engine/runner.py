"""Drives one run through its stages: the run state machine (docs/architecture.md).

Each stage's work is blocking (Docker, git, boto3) and runs in a daemon thread;
every transition is committed (and published) before the next side effect.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.engine.ecs_stages_runner import EcsStages, runs_on_ecs
from agent.engine.executors import ExecutorSet
from agent.engine.stages import command_spec, secrets_of, stage_command
from agent.engine.threads import in_thread
from agent.engine.transitions import Transitions
from agent.engine.workspace import WorkspaceError
from agent.executors.base import StageResult
from agent.logs import StageLog
from store.configs import NotFound
from store.models import (
    STAGE_BUILD,
    STAGE_CODE_QUALITY,
    STAGE_DEPLOY_PRODUCTION,
    STAGE_DEPLOY_STAGING,
    STAGE_INTEGRATION_TEST,
    STAGE_PREPARE,
    STAGE_UNIT_TEST,
    ApprovalStatus,
    Pipeline,
    RunInfo,
    RunStatus,
    Service,
    StageStatus,
    image_for,
    pushes_to_registry,
)
from store.store import Store

log = logging.getLogger(__name__)

DEPLOY_ENVIRONMENTS = {STAGE_DEPLOY_STAGING: "staging", STAGE_DEPLOY_PRODUCTION: "production"}
COMMAND_CONTAINER_STAGES = (STAGE_CODE_QUALITY, STAGE_UNIT_TEST, STAGE_INTEGRATION_TEST)


@dataclass
class RunControl:
    """What the engine holds for a run in flight."""

    run_id: int
    cancel: threading.Event = field(default_factory=threading.Event)
    cancelled_by: str | None = None


class RunDriver:
    def __init__(self, store: Store, transitions: Transitions, logs: Any, workspaces: Any,
                 deployer: Any, executors: ExecutorSet, instance: str = "") -> None:
        self.store = store
        self.t = transitions
        self.logs = logs
        self.workspaces = workspaces
        self.deployer = deployer
        self.executors = executors
        self.instance = instance
        self.ecs_stages = EcsStages(executors, workspaces, self._saver)

    async def drive(self, control: RunControl, reattach: dict[str, Any] | None = None) -> None:
        """Run (or resume) every stage not yet finished. `reattach` maps a stage that was
        in progress when the agent restarted to its executor state."""
        try:
            await self._drive(control, reattach)
        finally:
            self.executors.discard_ready(control.run_id)

    async def _drive(self, control: RunControl, reattach: dict[str, Any] | None) -> None:
        run = self.store.get_run(control.run_id)
        service = self.store.get_service_by_id(run.service_id)
        pipeline = self.store.get_pipeline(service.pipeline)
        if run.status is not RunStatus.running:
            run = self.t.run(run.id, RunStatus.running)
        for stage in run.stages:
            if stage.status.finished:
                continue
            if control.cancel.is_set():
                return self._finish_cancelled(control)
            resume = (reattach or {}).get(stage.name)
            reason = None if resume else self._skip_reason(run, service, stage.name)
            if reason is not None:  # settled here: no thread, no in-progress blip
                await self._skip(run.id, stage.name, reason)
                continue
            if stage.name == STAGE_DEPLOY_PRODUCTION and not await self._gate_open(run, service):
                return
            result = await self._run_stage(run, service, pipeline, stage.name, control, resume)
            if control.cancel.is_set() or result.cancelled:
                return self._finish_cancelled(control)
            if not (result.ok or result.skipped):
                reason = result.error or f"{stage.name} failed (exit code {result.exit_code})"
                self.t.skip_rest(run.id, f"not run: {stage.name} failed")
                self.t.run(run.id, RunStatus.failed, error=reason)
                return
        self.t.run(run.id, RunStatus.success)

    # -- one stage -----------------------------------------------------------------
    def _skip_reason(self, run: RunInfo, service: Service, name: str) -> str | None:
        """Why the stage has nothing to do, known from the configuration alone."""
        if name in COMMAND_CONTAINER_STAGES:
            if stage_command(service, name) is None:
                return f"no {name} command configured for {service.name}"
        elif name == STAGE_BUILD:
            if not service.dockerfile:
                return f"no Dockerfile configured for {service.name}"
        elif name in DEPLOY_ENVIRONMENTS:
            if self.store.get_stage(run.id, STAGE_BUILD).status is StageStatus.skipped:
                return "nothing to deploy: the Build stage was skipped"
        return None

    async def _skip(self, run_id: int, name: str, reason: str) -> None:
        stage_log = self.logs.stage_log(run_id, name, [])
        stage_log.system(f"skipped: {reason}")
        await stage_log.flush_async()
        self.t.stage(run_id, name, StageStatus.skipped, error=reason)

    async def _run_stage(self, run: RunInfo, service: Service, pipeline: Pipeline, name: str,
                         control: RunControl, resume: Any) -> StageResult:
        stage_log = self.logs.stage_log(run.id, name, secrets_of(service))
        if resume is None:
            self.t.stage(run.id, name, StageStatus.in_progress)
        try:
            result = await in_thread(
                lambda: self._execute(run, service, pipeline, name, stage_log, control, resume),
                name=f"run{run.id}-{name}")
        except WorkspaceError as exc:  # unreachable repo, unknown sha: a plain failure
            stage_log.system(str(exc))
            result = StageResult(exit_code=None, error=str(exc))
        except Exception as exc:  # a bug or an engine fault: the run fails clearly, agent lives
            log.exception("stage %s of run %s crashed", name, run.id)
            stage_log.system(f"internal error: {exc.__class__.__name__}: {exc}")
            result = StageResult(exit_code=None, error=f"internal error: {exc}")
        if result.skipped and result.error:
            stage_log.system(f"skipped: {result.error}")
        await stage_log.flush_async()
        if result.skipped:
            self.t.stage(run.id, name, StageStatus.skipped, error=result.error)
        elif result.cancelled or control.cancel.is_set():
            self.t.stage(run.id, name, StageStatus.cancelled,
                         error=f"cancelled by {control.cancelled_by or 'a user'}")
        elif result.ok:
            self.t.stage(run.id, name, StageStatus.success, exit_code=result.exit_code)
        else:
            error = result.error or f"exit code {result.exit_code}"
            self.t.stage(run.id, name, StageStatus.failed, exit_code=result.exit_code,
                         error=error)
        return result

    def _execute(self, run: RunInfo, service: Service, pipeline: Pipeline, name: str,
                 stage_log: StageLog, control: RunControl, resume: Any) -> StageResult:
        """Blocking: what the stage does, by name."""
        cancel = control.cancel
        if resume is not None:
            return self._reattach(run, service, pipeline, name, stage_log, control, resume)
        if name == STAGE_PREPARE:
            if runs_on_ecs(pipeline, name):  # cloned on the cluster, not on this host
                prepared = self.ecs_stages.prepare(run, service, pipeline, stage_log, cancel)
                if isinstance(prepared, StageResult):
                    return prepared
                workspace = prepared
            else:
                self._prepare_next(run, service, pipeline, name)
                workspace = self.workspaces.prepare(service, run.sha, stage_log, cancel)
            command = stage_command(service, name)
            if command is None:
                return StageResult(exit_code=0)
            return self._command(run, service, pipeline, name, command, workspace, stage_log,
                                 control)
        if name in DEPLOY_ENVIRONMENTS:
            return self.deployer.deploy_stage(run, service, pipeline, DEPLOY_ENVIRONMENTS[name],
                                              image_for(service, run.sha), stage_log)
        workspace = self._workspace(service, pipeline, run, name, stage_log, cancel)
        if name == STAGE_BUILD:
            if runs_on_ecs(pipeline, name):
                return self.ecs_stages.build(run, service, pipeline, workspace, stage_log, cancel)
            return self._build(run, service, workspace, stage_log, cancel)
        command = stage_command(service, name)
        assert command is not None  # else `drive` skipped the stage
        if name == STAGE_INTEGRATION_TEST and service.compose_file:
            return self._integration(run, service, pipeline, command, workspace, stage_log,
                                     control)
        assert name in COMMAND_CONTAINER_STAGES, name
        return self._command(run, service, pipeline, name, command, workspace, stage_log,
                             control)

    def _command(self, run: RunInfo, service: Service, pipeline: Pipeline, name: str,
                 command: str, workspace: Path, stage_log: StageLog, control: RunControl,
                 network: str | None = None) -> StageResult:
        spec = command_spec(service, pipeline, run, name, command, workspace, network,
                            self.instance)
        executor = self.executors.for_stage(pipeline, name)
        if executor.name == "local" and self.executors.docker_error:
            stage_log.system(f"local executor: {self.executors.docker_error}")
        stage_log.system(f"{name}: `{command}` in {spec.image} ({executor.name} executor)")
        if network is None:
            self._prepare_next(run, service, pipeline, name)

        return self.executors.run_bounded(executor, spec, stage_log, control.cancel,
                                          self._saver(run.id, name, executor))

    def _prepare_next(self, run: RunInfo, service: Service, pipeline: Pipeline, name: str
                      ) -> None:
        """Have the next stage's container created while this one runs, when the next
        stage to run is a plain command in a container (not compose, not ECS)."""
        names = [s.name for s in run.stages]
        finished = {s.name for s in run.stages if s.status.finished}
        for following in names[names.index(name) + 1:]:
            if following in DEPLOY_ENVIRONMENTS:
                return
            if following in finished or self._skip_reason(run, service, following):
                continue
            command = stage_command(service, following)
            if following not in COMMAND_CONTAINER_STAGES or command is None or (
                    following == STAGE_INTEGRATION_TEST and service.compose_file):
                return
            precreate = getattr(self.executors.for_stage(pipeline, following), "precreate",
                                None)
            if precreate is not None:
                workspace = self.workspaces.path_for(service.name, run.sha)
                precreate(command_spec(service, pipeline, run, following, command, workspace,
                                       None, self.instance))
            return

    def _saver(self, run_id: int, name: str, executor: Any) -> Any:
        def save(state: dict[str, Any] | None) -> None:
            self.store.set_stage_executor_state(run_id, name, _with_executor(state, executor))

        return save

    def _reattach(self, run: RunInfo, service: Service, pipeline: Pipeline, name: str,
                  stage_log: StageLog, control: RunControl, resume: dict[str, Any]
                  ) -> StageResult:
        """A stage the agent was running when it stopped: follow it again, or rerun it."""
        command = stage_command(service, name)
        if name in (STAGE_CODE_QUALITY, STAGE_UNIT_TEST) or (
                name == STAGE_INTEGRATION_TEST and not service.compose_file):
            assert command is not None
            workspace = self.workspaces.path_for(service.name, run.sha)
            spec = command_spec(service, pipeline, run, name, command, workspace,
                                instance=self.instance)
            executor = self.executors.for_stage(pipeline, name)
            since = self.store.last_log_ts(run.id, name)
            result = executor.reattach(spec, stage_log, control.cancel, resume.get("state"),
                                       _parse_ts(since), self._saver(run.id, name, executor))
            if result is not None:
                return result
            return StageResult(exit_code=None, error=(
                f"the agent restarted and the {name} container was gone "
                f"({executor.name} executor): rerun from this stage"))
        if name in DEPLOY_ENVIRONMENTS:
            return StageResult(exit_code=None, error=(
                f"the agent restarted during {name}; the previous version kept serving. "
                "Rerun from this stage to deploy again"))
        if name == STAGE_BUILD and runs_on_ecs(pipeline, name):
            result = self.ecs_stages.reattach_build(run, service, pipeline, stage_log,
                                                    control.cancel, resume.get("state"))
            if result is not None:
                return result
        # Prepare, Build and compose-based Integration Test are idempotent: run them again.
        reason = self._skip_reason(run, service, name)  # the config changed meanwhile
        if reason is not None:
            return StageResult.skip(reason)
        stage_log.system(f"the agent restarted during {name}: running it again")
        return self._execute(run, service, pipeline, name, stage_log, control, None)

    def _workspace(self, service: Service, pipeline: Pipeline, run: RunInfo, name: str,
                   stage_log: StageLog, cancel: threading.Event) -> Path:
        path = Path(self.workspaces.path_for(service.name, run.sha))
        if runs_on_ecs(pipeline, STAGE_PREPARE) and runs_on_ecs(pipeline, name):
            return path  # on EFS, where the task looks; this host may not mount it
        if not path.is_dir():  # cleaned up since Prepare (a rerun of an old run): fetch again
            stage_log.system("the workspace was cleaned up since Prepare: checking out again")
            path = Path(self.workspaces.prepare(service, run.sha, stage_log, cancel))
        return path

    def _build(self, run: RunInfo, service: Service, workspace: Path, stage_log: StageLog,
               cancel: threading.Event) -> StageResult:
        assert service.dockerfile  # else `drive` skipped the stage
        context = workspace / service.build_context
        if not (context / service.dockerfile).is_file():
            return StageResult.skip(
                f"no {service.dockerfile} in {service.build_context!r} of the repository")
        client = self.executors.docker_client
        if client is None:
            return StageResult(exit_code=None, error=(
                f"Build needs a Docker engine: {self.executors.docker_error}"))
        from agent.executors.build import BuildSpec, build_image

        push = run.kind.value == "full" and pushes_to_registry(service)
        spec = BuildSpec(context_dir=context, dockerfile=service.dockerfile,
                         image=image_for(service, run.sha), push=push,
                         labels={"io.seamless.service": service.name,
                                 "io.seamless.sha": run.sha})
        if not push and run.kind.value != "full":
            stage_log.system("pull request run: the image is built but not pushed")
        return build_image(client, spec, stage_log, cancel)

    def _integration(self, run: RunInfo, service: Service, pipeline: Pipeline, command: str,
                     workspace: Path, stage_log: StageLog, control: RunControl) -> StageResult:
        client = self.executors.docker_client
        if client is None:
            return StageResult(exit_code=None, error=(
                f"Integration Test with a compose file needs a Docker engine: "
                f"{self.executors.docker_error}"))
        from agent.executors.compose import IntegrationSpec, run_integration

        test = command_spec(service, pipeline, run, STAGE_INTEGRATION_TEST, command, workspace,
                            instance=self.instance)
        spec = IntegrationSpec(run_id=run.id, workspace=workspace,
                               compose_file=str(service.compose_file),
                               image=image_for(service, run.sha), test=test,
                               instance=self.instance)
        executor = self.executors.for_stage(pipeline, STAGE_INTEGRATION_TEST)
        return run_integration(client, executor, spec, stage_log, control.cancel)

    # -- approval gate ----------------------------------------------------------------
    async def _gate_open(self, run: RunInfo, service: Service) -> bool:
        pipeline = self.store.get_pipeline(service.pipeline)
        auto = service.auto_deploy if service.auto_deploy is not None else pipeline.auto_deploy
        if auto:
            return True
        try:
            approval = self.store.get_approval(run.id)
        except NotFound:
            # The deployer records the approval (commits, staging health) and publishes it.
            approval = await in_thread(lambda: self.deployer.build_approval(run, service))
        if approval.status is ApprovalStatus.approved:
            return True
        self.t.stage(run.id, STAGE_DEPLOY_PRODUCTION, StageStatus.awaiting_approval)
        self.t.run(run.id, RunStatus.awaiting_approval)
        return False

    def _finish_cancelled(self, control: RunControl) -> None:
        actor = control.cancelled_by or "a user"
        self.t.skip_rest(control.run_id, f"not run: cancelled by {actor}")
        self.t.run(control.run_id, RunStatus.cancelled, error=f"cancelled by {actor}")


def _with_executor(state: dict[str, Any] | None, executor: Any) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"executor": executor.name, "state": state}


def _parse_ts(value: str | None) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value) if value else None
