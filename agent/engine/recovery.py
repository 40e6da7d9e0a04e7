"""Restart recovery: find each run where the last agent left it.

Running runs resume; a stage that was in progress is re-attached by its executor
state (its container is named and labelled from run and stage). Queued runs are
simply picked up by the scheduler; approvals stay pending. Leftover containers and
compose projects of runs that are not resumed are removed.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from agent.engine.runner import RunDriver
from agent.engine.threads import in_thread
from agent.engine.transitions import Transitions
from store.models import RunStatus, StageStatus
from store.store import Store

log = logging.getLogger(__name__)


async def recover(store: Store, transitions: Transitions, driver: RunDriver
                  ) -> dict[int, dict[str, Any]]:
    """Runs to resume → {stage in progress: its saved executor state}."""
    resumed: dict[int, dict[str, Any]] = {}
    for run in store.runs_with_status(RunStatus.running):
        in_progress = {s.name: store.get_stage_executor_state(run.id, s.name) or {}
                       for s in run.stages if s.status is StageStatus.in_progress}
        resumed[run.id] = in_progress
        if in_progress:
            log.info("resuming run %s at %s", run.id, ", ".join(in_progress))
    for executor in driver.executors.all():
        try:
            removed = await in_thread(partial(executor.cleanup, set(resumed)))
        except Exception:
            log.exception("cleanup of %s executor leftovers failed", executor.name)
            continue
        if removed:
            log.info("removed leftovers of finished runs: %s", ", ".join(removed))
    return resumed
