"""The run engine: accepts runs, schedules them fairly within the parallel bounds, and
carries out cancel, rerun, approve, reject and rollback.

Every public method is called on the agent's event loop (API handlers, webhook and
poll triggers). Runs are asyncio tasks; their blocking stage work runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent.deploy.deployer import Deployer
from agent.engine.engine_hold import CHECK_S, EngineHold
from agent.engine.executors import executor_for
from agent.engine.recovery import recover
from agent.engine.runner import RunControl, RunDriver
from agent.engine.transitions import Transitions
from store.models import (
    BRANCH,
    DEFAULT_STAGES,
    PARTIAL_STAGES,
    STAGE_DEPLOY_PRODUCTION,
    Approval,
    ApprovalStatus,
    Deployment,
    RunInfo,
    RunKind,
    RunStatus,
    Service,
    StageStatus,
    Trigger,
    config_fingerprint,
)
from store.space import SpaceGuard
from store.store import Store

log = logging.getLogger(__name__)

# Triggers whose newer run of the same branch makes an older queued one pointless.
SUPERSEDING = {Trigger.push, Trigger.poll}


MAX_MESSAGE = 2000  # commit message / PR title kept with a run
MAX_AUTHOR = 200


class EngineError(ValueError):
    """A refused action, with a message for the user (e.g. cancel of a finished run)."""


class Engine:
    def __init__(self, store: Store, transitions: Transitions, driver: RunDriver,
                 deployer: Deployer, max_parallel_runs: int,
                 space: SpaceGuard | None = None, engine_queue_wait_s: float = 600.0
                 ) -> None:
        self.store = store
        # Runs that need the Docker engine stay queued while it is away (bounded).
        self.hold = EngineHold(transitions, driver.logs, engine_queue_wait_s)
        self.space = space  # below its floor no new run is taken (StorageFull → 507)
        self.t = transitions
        self.driver = driver
        self.deployer = deployer
        self.max_parallel_runs = max_parallel_runs
        self._controls: dict[int, RunControl] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        resumed = await recover(self.store, self.t, self.driver)
        for run_id, reattach in resumed.items():
            self._launch(run_id, reattach)
        self._scheduler = asyncio.create_task(self._schedule_loop(), name="seamless-scheduler")
        self._expiry = asyncio.create_task(self._expire_loop(), name="seamless-approval-expiry")
        self._wake.set()

    async def stop(self) -> None:
        """No new work; stages in flight are left to restart recovery (containers keep
        running and are re-attached by the next start)."""
        self._stopping = True
        for task in (self._scheduler, self._expiry, *self._tasks.values()):
            if task is not None:
                task.cancel()
        self._tasks.clear()
        self._controls.clear()

    # -- accepting work ----------------------------------------------------------------
    def submit(self, service: Service, *, trigger: Trigger, kind: RunKind, sha: str,
               branch: str | None = None, pr_number: int | None = None,
               author: str | None = None, message: str | None = None,
               actor: str | None = None) -> RunInfo:
        self._require_space()
        run = self._create(service, trigger=trigger, kind=kind, sha=sha, branch=branch,
                           pr_number=pr_number, author=author, message=message, actor=actor)
        self._announce(run)
        return run

    def submit_delivery(self, delivery: str, event: str,
                        requests: list[tuple[Service, dict[str, Any]]]) -> list[RunInfo] | None:
        """The runs of one webhook delivery, created in the same transaction that records
        the delivery id: a delivery is either remembered with its runs or not at all (an
        error before the commit leaves nothing, so GitHub's redelivery queues them).
        None: this delivery id was recorded before (a real duplicate)."""
        self._require_space()
        with self.store.write():
            if not self.store.record_delivery(delivery, event, "queued", requests[0][0].id):
                return None
            runs = [self._create(service, **fields) for service, fields in requests]
            self.store.update_delivery(delivery, "queued", runs[0].service_id, runs[0].id)
        for run in runs:
            self._announce(run)
        return runs

    def submit_batch(self, requests: list[tuple[Service, dict[str, Any]]],
                     within: Callable[[list[RunInfo]], None] | None = None) -> list[RunInfo]:
        """Runs created in one transaction together with what `within(runs)` writes (a
        batch's change decisions): all of it is stored or none (an error part way leaves
        nothing, so the batch can be decided again). Announced after the commit."""
        self._require_space()
        # Worked out before the transaction: it holds the store's one writer (a webhook's
        # delivery record waits for it), and a push may queue 200 runs.
        pipelines = {name: self.store.get_pipeline(name)
                     for name in {service.pipeline for service, _ in requests}}
        hashes = [config_fingerprint(service, pipelines[service.pipeline])
                  for service, _ in requests]
        with self.store.write():
            runs = [self._create(service, **fields, config_hash=config_hash)
                    for (service, fields), config_hash in zip(requests, hashes, strict=True)]
            if within is not None:
                within(runs)
        for run in runs:
            self._announce(run)
        return runs

    def _require_space(self) -> None:
        if self.space is not None:
            self.space.require()

    def _create(self, service: Service, *, trigger: Trigger, kind: RunKind, sha: str,
                branch: str | None = None, pr_number: int | None = None,
                author: str | None = None, message: str | None = None,
                actor: str | None = None, config_hash: str | None = None) -> RunInfo:
        stages = DEFAULT_STAGES if kind is RunKind.full else PARTIAL_STAGES
        # Every trigger comes through here: the branch reaches stages as SEAMLESS_BRANCH,
        # and nothing stored from outside is unbounded.
        if branch is not None and not BRANCH.match(branch):
            raise EngineError(f"not a valid branch name: {branch[:100]!r}")
        return self.store.create_run(
            service.id, trigger=trigger, kind=kind, sha=sha, branch=branch,
            pr_number=pr_number, author=author and author[:MAX_AUTHOR],
            message=message and message[:MAX_MESSAGE], actor=actor, stage_names=stages,
            config_hash=config_hash or self._fingerprint(service))

    def _fingerprint(self, service: Service) -> str:
        return config_fingerprint(service, self.store.get_pipeline(service.pipeline))

    def _announce(self, run: RunInfo) -> None:
        """After the run's commit: others see it, it may supersede older ones, and the
        scheduler wakes."""
        self.t.created(run)
        if run.trigger in SUPERSEDING and run.kind is RunKind.full:
            self._supersede_older(run)
        self._poke()

    def _supersede_older(self, newer: RunInfo) -> None:
        for run in self.store.runs_with_status(RunStatus.queued, service_id=newer.service_id):
            if (run.service_id == newer.service_id and run.id < newer.id
                    and run.branch == newer.branch and run.kind is RunKind.full
                    and run.trigger in SUPERSEDING):
                self.t.skip_rest(run.id, f"superseded by run #{newer.number}")
                self.t.run(run.id, RunStatus.superseded,
                           error=f"superseded by run #{newer.number} ({newer.sha[:8]})")

    def cancel(self, run_id: int, actor: str) -> RunInfo:
        run = self.store.get_run(run_id)
        if run.status.finished:
            raise EngineError(f"run {run_id} already finished ({run.status.value})")
        control = self._controls.get(run_id)
        if control is not None:
            control.cancelled_by = actor
            control.cancel.set()  # the stage thread kills its container within 2 s
            return self.store.get_run(run_id)
        if run.status is RunStatus.awaiting_approval:
            self.store.decide_approval(run_id, ApprovalStatus.expired, actor=actor,
                                       comment="run cancelled")
        self.t.skip_rest(run_id, f"not run: cancelled by {actor}")
        return self.t.run(run_id, RunStatus.cancelled, error=f"cancelled by {actor}")

    def rerun(self, run_id: int, from_stage: str | None, actor: str) -> RunInfo:
        """A new run of the same commit, linked to the old one. From a stage: the earlier
        stages' results are reused (the same commit's workspace and image)."""
        self._require_space()
        old = self.store.get_run(run_id)
        if not old.status.finished:
            raise EngineError(f"run {run_id} is still {old.status.value}: cancel it first")
        names = [s.name for s in old.stages]
        if from_stage is not None and from_stage not in names:
            raise EngineError(f"run {run_id} has no stage {from_stage!r}")
        start = names.index(from_stage) if from_stage else 0
        for stage in old.stages[:start]:
            if stage.status not in (StageStatus.success, StageStatus.skipped):
                raise EngineError(
                    f"cannot rerun from {from_stage}: the earlier stage {stage.name} "
                    f"did not succeed ({stage.status.value})")
        service = self.store.get_service_by_id(old.service_id)
        run = self.store.create_run(
            service.id, trigger=Trigger.rerun, kind=old.kind, sha=old.sha, branch=old.branch,
            pr_number=old.pr_number, author=old.author, message=old.message,
            rerun_of=old.id, rerun_from_stage=from_stage, actor=actor,
            stage_names=tuple(names), config_hash=self._fingerprint(service))
        for stage in old.stages[:start]:  # their skip reasons go with them
            self.store.set_stage_status(run.id, stage.name, stage.status,
                                        exit_code=stage.exit_code, error=stage.error,
                                        reused_from_run=stage.reused_from_run or old.id)
        self._say_what_rerun_reuses(run.id, old, service, start)
        run = self.store.get_run(run.id)
        self.t.created(run)
        self._poke()
        return run

    def _say_what_rerun_reuses(self, new_id: int, old: RunInfo, service: Service,
                               start: int) -> None:
        """The first stage the rerun runs says which stages it reused (with their skip
        reasons) and whether it runs with a config changed since the original run."""
        reused = [f"{s.name} ({s.status.value}{': ' + s.error if s.error else ''})"
                  for s in old.stages[:start]]
        log = self.driver.logs.stage_log(new_id, old.stages[start].name, [])
        if reused:
            log.system(f"rerun of run #{old.number} from {old.stages[start].name}: reused "
                       + ", ".join(reused))
        before = self.store.run_config_hash(old.id)
        if before is None:  # a run from before fingerprints: only timestamps to go by
            changed = service.updated_at > old.created_at
        else:
            changed = before != self.store.run_config_hash(new_id)
        if changed:
            log.system(f"the service's config changed since run #{old.number} (its "
                       "settings or its pipeline's; secret values are not compared): this "
                       "rerun uses the current config")
        else:
            log.system(f"the service's config is as it was for run #{old.number} (settings"
                       " and pipeline; secret values are not compared)")
        log.flush()

    # -- approvals ------------------------------------------------------------------------
    def approve(self, run_id: int, actor: str, comment: str | None) -> Approval:
        self._awaiting(run_id)
        # Recorded before the production deploy: the deployer lifts a rollback pin for it.
        approval = self.store.decide_approval(run_id, ApprovalStatus.approved, actor=actor,
                                              comment=comment)
        self.t.approval(approval)
        self.t.stage(run_id, STAGE_DEPLOY_PRODUCTION, StageStatus.idle)
        self.t.run(run_id, RunStatus.running)
        self._on_loop(self._launch, run_id)
        return approval

    def reject(self, run_id: int, actor: str, comment: str | None) -> Approval:
        self._awaiting(run_id)
        approval = self.store.decide_approval(run_id, ApprovalStatus.rejected, actor=actor,
                                              comment=comment)
        self.t.approval(approval)
        self.t.stage(run_id, STAGE_DEPLOY_PRODUCTION, StageStatus.skipped,
                     error=f"rejected by {actor}" + (f": {comment}" if comment else ""))
        self.t.run(run_id, RunStatus.rejected, error=f"production deploy rejected by {actor}")
        return approval

    def _awaiting(self, run_id: int) -> RunInfo:
        run = self.store.get_run(run_id)
        if run.status is not RunStatus.awaiting_approval:
            raise EngineError(f"run {run_id} is not awaiting approval ({run.status.value})")
        return run

    def rollback(self, service: str, environment: str, sha: str, actor: str) -> Deployment:
        svc = self.store.get_service(service)
        result: Deployment = self.deployer.rollback(svc, environment, sha, actor)
        return result

    # -- scheduling ----------------------------------------------------------------------
    def queue_depth(self) -> int:
        return len(self.store.runs_with_status(RunStatus.queued))

    def wake(self) -> bool:
        """Look at the queue again (the Docker engine answers again); for EngineWatch."""
        self._poke()
        return True

    def _poke(self) -> None:
        if self._wake is not None:
            self._on_loop(self._wake.set)

    def _on_loop(self, fn: Any, *args: Any) -> None:
        """Call `fn` on the engine's loop: API handlers call the engine from worker
        threads, and asyncio objects (tasks, events) belong to the loop's thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is None or running is self._loop:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    async def _schedule_loop(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            try:  # held runs are looked at again every CHECK_S (engine back, waited enough)
                await asyncio.wait_for(self._wake.wait(),
                                       CHECK_S if self.hold.holding else None)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                self._start_what_fits()
            except Exception:
                log.exception("scheduler pass failed")

    def _start_what_fits(self) -> None:
        """Oldest queued first (fair); one run at a time per service and branch, so deploys
        of a branch stay in commit order. Runs on the agent's host count against the
        global bound and their pipeline's; runs of an ECS pipeline only against the
        cluster's `max_parallel_tasks`, not the build host's cores."""
        running = [self.store.get_run(rid) for rid in self._tasks]
        busy_keys = {self._key(r) for r in running}
        per_pipeline = Counter(r.pipeline for r in running)
        on_host = sum(1 for r in running if not self._on_cluster(r))
        queued = self.store.runs_with_status(RunStatus.queued)
        self.hold.forget_except({run.id for run in queued})
        for run in queued:
            key = self._key(run)
            pipeline = self.store.get_pipeline(run.pipeline)
            cluster = executor_for(pipeline) == "ecs"
            limit = (pipeline.ecs_executor.max_parallel_tasks
                     if cluster and pipeline.ecs_executor else pipeline.max_parallel_runs)
            if key in busy_keys or per_pipeline[run.pipeline] >= limit:
                continue
            if not cluster and on_host >= self.max_parallel_runs:
                continue
            if self.hold.holds(run, pipeline, self.store.get_service_by_id(run.service_id)):
                busy_keys.add(key)  # later runs of its branch wait behind it
                continue
            busy_keys.add(key)
            per_pipeline[run.pipeline] += 1
            on_host += 0 if cluster else 1
            self._launch(run.id)

    def _on_cluster(self, run: RunInfo) -> bool:
        return executor_for(self.store.get_pipeline(run.pipeline)) == "ecs"

    @staticmethod
    def _key(run: RunInfo) -> tuple[int, str]:
        return (run.service_id, f"pr{run.pr_number}" if run.pr_number else run.branch or "")

    def _launch(self, run_id: int, reattach: dict[str, Any] | None = None) -> None:
        control = RunControl(run_id)
        self._controls[run_id] = control
        task = asyncio.create_task(self._drive(control, reattach), name=f"run-{run_id}")
        self._tasks[run_id] = task

    async def _drive(self, control: RunControl, reattach: dict[str, Any] | None) -> None:
        try:
            await self.driver.drive(control, reattach)
        except asyncio.CancelledError:
            raise  # agent shutdown: the run stays where it is for recovery
        except Exception as exc:
            log.exception("run %s failed inside the engine", control.run_id)
            run = self.store.get_run(control.run_id)
            if not run.status.finished:
                self.t.skip_rest(control.run_id, "not run: internal error")
                self.t.run(control.run_id, RunStatus.failed, error=f"internal error: {exc}")
        finally:
            if not self._stopping:
                self._tasks.pop(control.run_id, None)
                self._controls.pop(control.run_id, None)
                self._poke()

    async def _expire_loop(self, interval_s: float = 5.0) -> None:
        while not self._stopping:
            try:
                self._expire_approvals()
            except Exception:
                log.exception("approval expiry pass failed")
            await asyncio.sleep(interval_s)

    def _expire_approvals(self) -> None:
        stamp = datetime.now(UTC)
        for approval in self.store.list_approvals(ApprovalStatus.pending):
            if approval.expires_at is not None and approval.expires_at <= stamp:
                decided = self.store.decide_approval(approval.run_id, ApprovalStatus.expired,
                                                     actor="seamless",
                                                     comment="approval window expired")
                self.t.approval(decided)
                self.t.stage(approval.run_id, STAGE_DEPLOY_PRODUCTION, StageStatus.skipped,
                             error="approval expired")
                self.t.run(approval.run_id, RunStatus.cancelled,
                           error="approval for production expired")
