"""Drives one run through its stages: the run state machine (docs/architecture.md).

What each stage does, when it is skipped, how it re-attaches is the stage table's
(`stage_table.py`); this module walks a run through it. Each stage's work is blocking
(Docker, git, boto3) and runs in a daemon thread; every transition is committed (and
published) before the next side effect.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from agent.deploy.deployer import Deployer
from agent.engine.executors import ExecutorSet, executor_for
from agent.engine.stage_table import STAGES, StageDecl
from agent.engine.stage_work import RunControl, StageWork, StageWorker
from agent.engine.stages import command_spec, secrets_of, stage_command
from agent.engine.threads import in_thread
from agent.engine.transitions import Transitions
from agent.engine.workspace import WorkspaceError, Workspaces
from agent.logs.stage_writer import StageLogWriter
from agent.logs.writer import LogWriter
from agent.stage_result import StageResult
from store.configs import NotFound
from store.models import (
    STAGE_DEPLOY_PRODUCTION,
    ApprovalStatus,
    Pipeline,
    RunInfo,
    RunStatus,
    Service,
    StageStatus,
)
from store.models.repos import rooted
from store.space import is_storage_full
from store.store import Store

log = logging.getLogger(__name__)

__all__ = ["RunControl", "RunDriver"]

FULL_DISK_RETRY_S = 2.0
LOG_GAP = "log storage full: "


def _gap_note(error: str) -> str:
    return f"{error.split(';')[0]} (the agent's disk was full; the stored log has gaps)"


class RunDriver:
    def __init__(self, store: Store, transitions: Transitions, logs: LogWriter,
                 workspaces: Workspaces, deployer: Deployer, executors: ExecutorSet,
                 instance: str = "") -> None:
        self.store = store
        self.t = transitions
        self.logs = logs
        self.workspaces = workspaces
        self.deployer = deployer
        self.executors = executors
        self.instance = instance
        self.worker = StageWorker(store, workspaces, deployer, executors, instance)

    async def drive(self, control: RunControl, reattach: dict[str, Any] | None = None) -> None:
        """Run (or resume) every stage not yet finished. `reattach` maps a stage that was
        in progress when the agent restarted to its executor state."""
        try:
            while True:
                try:
                    return await self._drive(control, reattach)
                except Exception as exc:
                    if not is_storage_full(exc):
                        raise
                # A record could not be written: the run is neither lost nor left
                # `running` — it goes on from its stored state once the disk takes writes.
                log.warning("run %s: the disk is full; its records wait for space",
                            control.run_id)
                await asyncio.sleep(FULL_DISK_RETRY_S)
                reattach = None
        finally:
            self.executors.discard_ready(control.run_id)

    async def _drive(self, control: RunControl, reattach: dict[str, Any] | None) -> None:
        run = self.store.get_run(control.run_id)
        # Stages see the service's paths from the repository's top (its folder applied).
        service = rooted(self.store.get_service_by_id(run.service_id))
        pipeline = self.store.get_pipeline(service.pipeline)
        if run.status is not RunStatus.running:
            run = self.t.run(run.id, RunStatus.running)
        for stage in run.stages:
            if stage.status in (StageStatus.failed, StageStatus.timed_out):
                # Recorded failed, but the run's end was not (a full disk, a kill): end it.
                failed = stage.error or f"{stage.name} failed"
                self.t.skip_rest(run.id, f"not run: {stage.name} failed")
                self.t.run(run.id, RunStatus.failed, error=failed)
                return
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
            held = await self._dependencies_deployed(run, service, stage.name, control)
            if control.cancel.is_set():
                return self._finish_cancelled(control)
            if held is not None:
                await self._hold(run.id, stage.name, held)
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
        decl = STAGES.get(name)
        if decl is None:
            return None
        return decl.skip_reason(service, lambda other: self.store.get_stage(run.id, other).status)

    async def _skip(self, run_id: int, name: str, reason: str) -> None:
        stage_log = self.logs.stage_log(run_id, name, [])
        stage_log.system(f"skipped: {reason}")
        await stage_log.flush_async()
        self.t.stage(run_id, name, StageStatus.skipped, error=reason)

    async def _run_stage(self, run: RunInfo, service: Service, pipeline: Pipeline, name: str,
                         control: RunControl, resume: dict[str, Any] | None) -> StageResult:
        stage_log = self.logs.stage_log(run.id, name, secrets_of(service))
        if resume is None:
            self.t.stage(run.id, name, StageStatus.in_progress)
        work = StageWork(run, service, pipeline, name, stage_log, control,
                         make_next_ahead=lambda: self._make_next_ahead(run, service, pipeline,
                                                                       name))
        result = control.results.get(name)  # settled before a full disk cut its recording
        if result is None:
            result = await self._work(work, resume, stage_log)
            result = control.results[name] = await self._settle(run.id, name, stage_log,
                                                                result)
        elif self.logs.lost(run.id, name) and (result.error or "").startswith(LOG_GAP):
            # Counted in the settled result already; its note in the log was lost too.
            stage_log.system(_gap_note(result.error or ""))
            await stage_log.flush_async()
        self._record(run.id, name, control, result)
        return result

    async def _work(self, work: StageWork, resume: dict[str, Any] | None,
                    stage_log: StageLogWriter) -> StageResult:
        try:
            return await in_thread(lambda: self._execute(work, resume),
                                   name=f"run{work.run.id}-{work.name}")
        except WorkspaceError as exc:  # unreachable repo, unknown sha: a plain failure
            stage_log.system(str(exc))
            return StageResult(exit_code=None, error=str(exc))
        except Exception as exc:  # a bug or an engine fault: the run fails clearly, agent lives
            if is_storage_full(exc):
                error = f"the agent's disk is full: {exc}"
            else:
                log.exception("stage %s of run %s crashed", work.name, work.run.id)
                error = f"internal error: {exc.__class__.__name__}: {exc}"
            stage_log.system(error)
            return StageResult(exit_code=None, error=error)

    async def _settle(self, run_id: int, name: str, stage_log: StageLogWriter,
                      result: StageResult) -> StageResult:
        """The stage's log stored; its final result. Lines the log writer could not store
        fail the stage, whatever its command said."""
        if result.skipped and result.error:
            stage_log.system(f"skipped: {result.error}")
        await stage_log.flush_async()
        lost = self.logs.lost(run_id, name)
        if lost and not (result.skipped or result.cancelled):
            gap = f"{LOG_GAP}{lost} lines lost"
            stage_log.system(_gap_note(gap))
            await stage_log.flush_async()
            result = replace(result, error=gap + (
                f"; {result.error}" if result.error else ""))
        return result

    def _record(self, run_id: int, name: str, control: RunControl,
                result: StageResult) -> None:
        """The stage's final status committed and published."""
        if result.skipped:
            self.t.stage(run_id, name, StageStatus.skipped, error=result.error)
        elif result.cancelled or control.cancel.is_set():
            self.t.stage(run_id, name, StageStatus.cancelled,
                         error=f"cancelled by {control.cancelled_by or 'a user'}")
        elif result.ok:
            self.t.stage(run_id, name, StageStatus.success, exit_code=result.exit_code)
        else:
            error = result.error or f"exit code {result.exit_code}"
            status = StageStatus.timed_out if result.timed_out else StageStatus.failed
            self.t.stage(run_id, name, status, exit_code=result.exit_code, error=error)

    def _execute(self, work: StageWork, resume: dict[str, Any] | None) -> StageResult:
        """Blocking: the stage's work as its table entry declares it."""
        decl = _decl(work.name)
        if resume is None:
            return decl.run(self.worker, work)
        result = decl.reattach(self.worker, work, resume.get("state"))
        if result is not None:
            return result
        # Run it again from the start: the configuration may have changed meanwhile.
        reason = self._skip_reason(work.run, work.service, work.name)
        if reason is not None:
            return StageResult.skip(reason)
        work.log.system(f"the agent restarted during {work.name}: running it again")
        return decl.run(self.worker, work)

    def _make_next_ahead(self, run: RunInfo, service: Service, pipeline: Pipeline, name: str
                         ) -> None:
        """Have the next stage's container created while this one runs, when the next
        stage to run can have its container made ahead (a plain command in a container)."""
        names = [s.name for s in run.stages]
        finished = {s.name for s in run.stages if s.status.finished}
        for following in names[names.index(name) + 1:]:
            decl = STAGES.get(following)
            if decl is None or decl.environment is not None:
                return  # a deploy: nothing to make, and past it the run may wait for approval
            if following in finished or self._skip_reason(run, service, following):
                continue
            command = stage_command(service, following)
            if command is None or not decl.made_ahead(service):
                return
            executor = self.executors.get(executor_for(pipeline, following), pipeline)
            workspace = self.workspaces.path_for(service, run.sha)
            self.executors.precreate(executor, command_spec(
                service, pipeline, run, following, command, workspace, None, self.instance))
            return

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

    # -- deploy order across services (monorepos) -----------------------------------------
    async def _dependencies_deployed(self, run: RunInfo, service: Service, name: str,
                                     control: RunControl) -> str | None:
        """Before a deploy stage: wait until the services this one depends on, run by the
        same push (one batch of change decisions), have deployed to the same environment.
        None to go on; else why the deploy is held back (a dependency did not deploy)."""
        decl = STAGES.get(name)
        if decl is None or decl.environment is None or not service.depends_on_services:
            return None
        waits = dependency_runs(self.store, run, service)
        if not waits:
            return None
        stage_log = self.logs.stage_log(run.id, name, [])
        stage_log.system("waiting for " + ", ".join(
            f"{dep} (run #{self.store.get_run(run_id).number})" for dep, run_id in waits)
            + f" to deploy to {decl.environment} first (depends_on_services)")
        await stage_log.flush_async()
        while waits:
            if control.cancel.is_set():
                return None
            pending = []
            for dep, run_id in waits:
                run_id = self.store.newest_rerun(run_id)  # rerun meanwhile: that one counts
                verdict = dependency_verdict(self.store, dep, run_id, name, decl.environment)
                if verdict is _WAIT:
                    pending.append((dep, run_id))
                elif verdict is not None:
                    return verdict
                else:
                    stage_log.system(f"{dep} deployed to {decl.environment}")
            waits = pending
            if waits:
                await asyncio.sleep(DEPENDENCY_POLL_S)
        await stage_log.flush_async()
        return None

    async def _hold(self, run_id: int, name: str, reason: str) -> None:
        stage_log = self.logs.stage_log(run_id, name, [])
        stage_log.system(reason)
        await stage_log.flush_async()
        self.t.stage(run_id, name, StageStatus.failed, error=reason)
        self.t.skip_rest(run_id, f"not run: {name} was held back")
        self.t.run(run_id, RunStatus.failed, error=reason)

    def _finish_cancelled(self, control: RunControl) -> None:
        actor = control.cancelled_by or "a user"
        self.t.skip_rest(control.run_id, f"not run: cancelled by {actor}")
        self.t.run(control.run_id, RunStatus.cancelled, error=f"cancelled by {actor}")




DEPENDENCY_POLL_S = 0.25
_WAIT = "wait"


def dependency_runs(store: Store, run: RunInfo, service: Service) -> list[tuple[str, int]]:
    """(service, run id) of the dependencies the same batch ran (none: nothing to wait).
    A rerun belongs to the batch of the run it reruns, and a dependency's newest rerun
    stands for its run of the batch: a rerun of a dependent waits for a rerun of its
    dependency, and goes on when that one deployed."""
    decision = store.batch_decision_for_run(run.id)
    if decision is None:
        return []
    return sorted((d.service, store.newest_rerun(d.run_id)) for d in store.list_decisions(
        batch=decision.batch, limit=1000)
        if d.service in service.depends_on_services and d.ran and d.run_id)


def dependency_verdict(store: Store, dependency: str, run_id: int, stage: str,
                       environment: str) -> str | None:
    """None: the dependency is deployed there (or had nothing to deploy); `_WAIT`: not
    yet; else why it did not deploy (the dependent is held back)."""
    run = store.get_run(run_id)
    status = store.get_stage(run_id, stage).status
    if status is StageStatus.success:
        return None
    if not status.finished and not run.status.finished:
        return _WAIT
    if status is StageStatus.skipped and run.status is RunStatus.success:
        return None  # it had nothing to deploy there (pinned, no image): not a failure
    why = run.error or f"{stage} {status.value}"
    return (f"held back: {dependency} did not deploy to {environment} in this push "
            f"(run #{run.number} {run.status.value}: {why}); this service deploys after it "
            "(depends_on_services)")


def _decl(name: str) -> StageDecl:
    decl = STAGES.get(name)
    if decl is None:
        raise ValueError(f"no stage called {name!r} in the stage table")
    return decl
