"""Every run and stage transition: committed to SQLite first, then published."""

from __future__ import annotations

from typing import Any

from agent.bus import Bus
from store.db import now
from store.models import Approval, Event, RunInfo, RunStatus, StageInfo, StageStatus
from store.store import Store


class Transitions:
    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus

    def run(self, run_id: int, status: RunStatus, *, error: str | None = None) -> RunInfo:
        info = self.store.set_run_status(run_id, status, error=error)
        self.bus.publish_event(Event(type="run", ts=now(), run=info))
        return info

    def waiting(self, run_id: int, why: str | None) -> RunInfo:
        """Why a queued run has not started (None: no longer held), published."""
        info = self.store.set_run_waiting(run_id, why)
        self.bus.publish_event(Event(type="run", ts=now(), run=info))
        return info

    def stage(self, run_id: int, name: str, status: StageStatus, **fields: Any) -> StageInfo:
        info = self.store.set_stage_status(run_id, name, status, **fields)
        run = self.store.get_run(run_id)
        self.bus.publish_event(Event(type="stage", ts=now(), stage=info, run=run))
        return info

    def approval(self, approval: Approval) -> None:
        """A decision on a production deploy (approved, rejected, expired), recorded by
        the caller; published here like every other change."""
        self.bus.publish_event(Event(type="approval", ts=now(), approval=approval))

    def created(self, run: RunInfo) -> None:
        self.bus.publish_event(Event(type="run", ts=now(), run=run))

    def skip_rest(self, run_id: int, reason: str | None = None) -> None:
        """After a failure or cancel, stages that never started are marked skipped."""
        for stage in self.store.list_stages(run_id):
            if stage.status in (StageStatus.idle, StageStatus.awaiting_approval):
                self.stage(run_id, stage.name, StageStatus.skipped, error=reason)
