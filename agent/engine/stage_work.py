"""The blocking work of each kind of stage: check a commit out, run a command in a
container, build the image, run the integration test, deploy. The stage table
(`stage_table.py`) says which of these each default stage does; `RunDriver` calls
them in a worker thread.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.deploy.deployer import Deployer
from agent.engine.ecs_stages_runner import EcsStages
from agent.engine.env_files import make_env_files
from agent.engine.executors import ExecutorSet, executor_for
from agent.engine.stages import command_spec, stage_command
from agent.engine.test_stage import TestResults, TestStageRun
from agent.engine.workspace import WorkspaceError, Workspaces
from agent.executors.base import (
    BuildsImages,
    ChecksComposeAhead,
    Executor,
    RunsComposeTests,
    StateSaver,
)
from agent.executors.build import BuildSpec
from agent.executors.compose import IntegrationSpec
from agent.executors.repo_paths import PathEscape, check_build_context, inside, missing
from agent.logs import StageLog
from agent.stage_result import StageResult
from store.models import (
    STAGE_INTEGRATION_TEST,
    STAGE_PREPARE,
    Pipeline,
    RunInfo,
    Service,
    image_for,
    pushes_to_registry,
)
from store.store import Store


@dataclass
class RunControl:
    """What the engine holds for a run in flight."""

    run_id: int
    cancel: threading.Event = field(default_factory=threading.Event)
    cancelled_by: str | None = None
    # Stage results not yet recorded (a full disk refused the write): kept, not re-run.
    results: dict[str, StageResult] = field(default_factory=dict)


@dataclass
class StageWork:
    """One stage of one run, as its work sees it."""

    run: RunInfo
    service: Service
    pipeline: Pipeline
    name: str
    log: StageLog
    control: RunControl
    # Called as the stage's own work starts: have the next stage's container made ahead.
    make_next_ahead: Callable[[], None] = lambda: None
    command_override: str | None = None  # a retry of only the failed tests
    attempt: int = 1  # a test stage's retry is attempt 2: a container of its own


    @property
    def cancel(self) -> threading.Event:
        return self.control.cancel

    @property
    def executor_name(self) -> str:
        return executor_for(self.pipeline, self.name)

    @property
    def command(self) -> str | None:
        return self.command_override or stage_command(self.service, self.name)


class StageWorker:
    """Does the work the stage table names, through the executor `executor_for` picks."""

    def __init__(self, store: Store, workspaces: Workspaces, deployer: Deployer,
                 executors: ExecutorSet, instance: str = "") -> None:
        self.store = store
        self.workspaces = workspaces
        self.deployer = deployer
        self.executors = executors
        self.instance = instance
        self.ecs_stages = EcsStages(executors, workspaces, self.saver)
        self.test_results = TestResults(store)

    def executor(self, work: StageWork) -> Executor:
        return self.executors.get(work.executor_name, work.pipeline)

    def saver(self, run_id: int, name: str, executor: Executor) -> StateSaver:
        def save(state: dict[str, Any] | None) -> None:
            recorded = None if state is None else {"executor": executor.name, "state": state}
            self.store.set_stage_executor_state(run_id, name, recorded)

        return save

    # -- what the stages run ---------------------------------------------------------
    def prepare(self, work: StageWork) -> StageResult:
        """Check the commit out (on this host, or as a task on the cluster), then run the
        service's prepare command if it has one."""
        if work.executor_name == "ecs":  # cloned on the cluster, not on this host
            prepared = self.ecs_stages.prepare(work.run, work.service, work.pipeline,
                                               work.log, work.cancel)
            if isinstance(prepared, StageResult):
                return prepared
            workspace = prepared
        else:
            work.make_next_ahead()
            workspace = self.workspaces.prepare(work.service, work.run.sha, work.log,
                                                work.cancel)
            check_root(work.service, Path(workspace))
            make_env_files(work.service, Path(workspace), work.log)
        if work.command is None:
            return StageResult(exit_code=0)
        return self._run_command(work, workspace)

    def command(self, work: StageWork) -> StageResult:
        """The stage's command in a stage container (or process, or task)."""
        return self._run_command(work, self.workspace(work))

    def tested(self, work: StageWork, run: Callable[[StageWork], StageResult]) -> StageResult:
        """A test stage's work (`run`), with its JUnit reports collected after each attempt
        and deciding the stage with the exit code (agent/engine/test_stage.py)."""
        where = self._test_stage(work)
        if not isinstance(where, TestStageRun):
            return where if where is not None else run(work)
        cd = "" if work.service.root in (".", "") else \
            f"cd -- {shlex.quote(work.service.root)} && "
        attempts = iter(range(1, 100))

        def run_once(command: str | None) -> StageResult:
            return run(replace(work, command_override=command and cd + command,
                               attempt=next(attempts)))

        return self.test_results.run(where, work.log, run_once, work.cancel.is_set)

    def follow_tested(self, work: StageWork, state: dict[str, Any] | None) -> StageResult:
        """After a restart: the test stage's container followed to its end, then the
        reports it wrote since the stage started."""
        result = self.follow(work, state)
        where = self._test_stage(work)
        started = self.store.get_stage(work.run.id, work.name).started_at
        if not isinstance(where, TestStageRun) or started is None:
            return result
        return self.test_results.after_restart(where, work.log, result, started.timestamp())

    def _test_stage(self, work: StageWork) -> TestStageRun | StageResult | None:
        """Where a test stage's reports are; None where they cannot be read (ECS)."""
        service = work.service
        if work.executor_name == "ecs":  # the checkout is on the cluster, not on this host
            return None
        workspace = Path(self.workspaces.path_for(service, work.run.sha))
        try:
            folder = inside(workspace, service.root, "root")
        except PathEscape as exc:
            return StageResult(exit_code=None, error=str(exc))
        return TestStageRun(run_id=work.run.id, service_id=service.id, stage=work.name,
                            sha=work.run.sha, workspace=workspace, reports_dir=folder,
                            paths=[*service.paths, *service.depends_on_paths],
                            config=service.tests)

    def unit_test(self, work: StageWork) -> StageResult:
        return self.tested(work, self.command)

    def integration_test(self, work: StageWork) -> StageResult:
        return self.tested(work, self.integration)

    def build(self, work: StageWork) -> StageResult:
        workspace = self.workspace(work)
        run, service = work.run, work.service
        if work.executor_name == "ecs":
            return self.ecs_stages.build(run, service, work.pipeline, workspace, work.log,
                                         work.cancel)
        assert service.dockerfile  # else the table skipped the stage
        try:  # symlinks must not hand host files to the build
            context = inside(workspace, service.build_context, "build_context")
            inside(workspace, service.dockerfile, "dockerfile", base=context)
            why = (missing(workspace, service.build_context, directory=True)
                   or missing(workspace, _joined(service.build_context, service.dockerfile)))
            if why:  # configured but not there: a failure (only an unset dockerfile skips)
                work.log.system(why)
                return StageResult(exit_code=None, error=why)
            check_build_context(workspace, service.build_context, service.dockerfile)
        except PathEscape as exc:
            return StageResult(exit_code=None, error=str(exc))
        builder = self.executors.docker_shaped(self.executor(work), work.log, work.cancel)
        if not isinstance(builder, BuildsImages):
            return StageResult(exit_code=None, error=(
                f"Build needs a Docker engine: {self.executors.docker_error}"))
        self.store.set_stage_executor(run.id, work.name, builder.name)
        push = run.kind.value == "full" and pushes_to_registry(service)
        spec = BuildSpec(context_dir=context, dockerfile=service.dockerfile,
                         image=image_for(service, run.sha), push=push,
                         # Whose image: cleanup never takes another agent's. Each label
                         # is a build step of its own (a container and a commit): the sha
                         # is in the tag already.
                         labels={"io.seamless.service": service.name,
                                 "io.seamless.agent": self.instance})
        if not push and run.kind.value != "full":
            work.log.system("pull request run: the image is built but not pushed")
        self._compose_ahead(work, workspace)
        # A build cut off by an engine restart is safe to run again: same context, same tag.
        return once_more_after_engine_restart(
            work, lambda: builder.build(spec, work.log, work.cancel))

    def _compose_ahead(self, work: StageWork, workspace: Path) -> None:
        """Integration Test's compose check started while the image builds (the stages
        before Build, which may write into the workspace, are done)."""
        if not work.service.compose_file:
            return
        executor = self.executors.get(executor_for(work.pipeline, STAGE_INTEGRATION_TEST),
                                      work.pipeline)
        if isinstance(executor, ChecksComposeAhead):
            executor.compose_ahead(self._integration_spec(
                replace(work, name=STAGE_INTEGRATION_TEST), workspace))

    def integration(self, work: StageWork) -> StageResult:
        """With a compose file: the project up, the test command on its networks (or the
        test service), down."""
        if not work.service.compose_file:
            return self.command(work)
        workspace = self.workspace(work)
        executor = self.executors.docker_shaped(self.executor(work), work.log, work.cancel)
        if not isinstance(executor, RunsComposeTests):
            return StageResult(exit_code=None, error=(
                f"Integration Test with a compose file needs a Docker engine: "
                f"{self.executors.docker_error}"))
        self.store.set_stage_executor(work.run.id, work.name, executor.name)
        spec = self._integration_spec(work, workspace)
        # The cut-off attempt's project is removed before it reports: the next starts afresh.
        return once_more_after_engine_restart(
            work, lambda: executor.integration(spec, work.log, work.cancel))

    def _integration_spec(self, work: StageWork, workspace: Path) -> IntegrationSpec:
        run, service = work.run, work.service
        test = command_spec(service, work.pipeline, run, STAGE_INTEGRATION_TEST,
                            work.command or "", workspace, instance=self.instance)
        if work.attempt > 1:
            test = replace(test, container_name=f"{test.container_name}-{work.attempt}")
        dockerfile = (workspace / service.build_context / service.dockerfile).resolve() \
            if service.dockerfile else None
        return IntegrationSpec(run_id=run.id, workspace=workspace,
                               compose_file=str(service.compose_file),
                               image=image_for(service, run.sha), test=test,
                               instance=self.instance, build_dockerfile=dockerfile,
                               test_service=service.integration_test_service,
                               opt_ins={k: [*v] for k, v in service.compose_opt_ins.items()})

    def deploy(self, work: StageWork, environment: str) -> StageResult:
        return self.deployer.deploy_stage(work.run, work.service, work.pipeline, environment,
                                          image_for(work.service, work.run.sha), work.log)

    # -- after a restart ----------------------------------------------------------------
    def follow(self, work: StageWork, state: dict[str, Any] | None) -> StageResult:
        """Follow the stage container (process, task) the last agent left running."""
        command = work.command
        assert command is not None
        workspace = self.workspaces.path_for(work.service, work.run.sha)
        spec = command_spec(work.service, work.pipeline, work.run, work.name, command,
                            workspace, instance=self.instance)
        executor = self.executor(work)
        since = self.store.last_log_ts(work.run.id, work.name)
        result = executor.reattach(spec, work.log, work.cancel, state,
                                   datetime.fromisoformat(since) if since else None,
                                   self.saver(work.run.id, work.name, executor))
        if result is not None:
            return result
        return StageResult(exit_code=None, error=(
            f"the agent restarted and the {work.name} container was gone "
            f"({executor.name} executor): rerun from this stage"))

    def follow_ecs_build(self, work: StageWork, state: dict[str, Any] | None
                         ) -> StageResult | None:
        """The Build task a restarted agent left running, rather than a second build of
        the same tag; None when there is none (then Build runs again)."""
        return self.ecs_stages.reattach_build(work.run, work.service, work.pipeline,
                                              work.log, work.cancel, state)

    # -- helpers ---------------------------------------------------------------------------
    def workspace(self, work: StageWork) -> Path:
        path = Path(self.workspaces.path_for(work.service, work.run.sha))
        if executor_for(work.pipeline, STAGE_PREPARE) == "ecs" and work.executor_name == "ecs":
            return path  # on EFS, where the task looks; this host may not mount it
        if not path.is_dir():  # cleaned up since Prepare (a rerun of an old run): fetch again
            work.log.system("the workspace was cleaned up since Prepare: checking out again")
            path = Path(self.workspaces.prepare(work.service, work.run.sha, work.log,
                                                work.cancel))
        make_env_files(work.service, path, work.log)
        return path

    def _run_command(self, work: StageWork, workspace: Path) -> StageResult:
        command = work.command
        assert command is not None  # else the table skipped the stage
        spec = command_spec(work.service, work.pipeline, work.run, work.name, command,
                            workspace, None, self.instance)
        if work.attempt > 1:  # the first attempt's container may still be being removed
            spec = replace(spec, container_name=f"{spec.container_name}-{work.attempt}")
        executor = self.executor(work)
        self.store.set_stage_executor(work.run.id, work.name, executor.name)
        if executor.name == "local":
            work.log.system(f"local executor, set by an admin in pipeline "
                            f"{work.pipeline.name!r}: the stage runs on this host as the "
                            "agent's user, not isolated")
        if spec.secret_files and executor.name != "docker":
            # Only a stage container gets a tmpfs mount of its own: elsewhere, env.
            spec.env.update(spec.secret_files)
            spec.env.pop("SEAMLESS_SECRETS_DIR", None)
            spec.secret_files = {}
            work.log.system(f"secrets_as {work.service.secrets_as!r}: the {executor.name} "
                            "executor takes no secret files; the secrets are env variables")
        work.log.system(f"{work.name}: `{command}` in {spec.image} ({executor.name} executor)")
        work.make_next_ahead()
        return once_more_after_engine_restart(work, lambda: self.executors.run_bounded(
            executor, spec, work.log, work.cancel, self.saver(work.run.id, work.name, executor)))


def once_more_after_engine_restart(work: StageWork, attempt: Callable[[], StageResult]
                                   ) -> StageResult:
    """`attempt()`, and once more when the Docker engine's restart cut it off and the
    pipeline says so (`retry_on_engine_restart`)."""
    result = attempt()
    if result.engine_restarted and work.pipeline.retry_on_engine_restart and (
            not work.cancel.is_set()):
        work.log.system("running the stage again, once (retry_on_engine_restart)")
        result = attempt()
    return result


def _joined(context: str, path: str) -> str:
    return path if context in ("", ".") else f"{context.rstrip('/')}/{path}"


def check_root(service: Service, workspace: Path) -> None:
    """The service's folder (`root`) is there at this commit, inside the checkout: a
    misspelt or moved folder fails Prepare naming it, before any command runs in it."""
    if service.root in (".", ""):
        return
    try:
        inside(workspace, service.root, "root")
    except PathEscape as exc:
        raise WorkspaceError(str(exc)) from None
    why = missing(workspace, service.root, directory=True)
    if why is not None:
        raise WorkspaceError(f"root: {why}")
