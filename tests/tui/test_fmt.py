"""How statuses, counts and run numbers read."""

from __future__ import annotations

from datetime import UTC, datetime

from seamless_tui.fmt import plural, run_label, run_status
from seamless_tui.widgets.stage_cells import current_stage
from store.models import RunInfo, RunKind, RunStatus, StageInfo, StageStatus, Trigger


def _run(status: RunStatus, unit: StageStatus) -> RunInfo:
    stages = [StageInfo(id=i, run_id=1, name=name, position=i, status=st) for i, (name, st)
              in enumerate([("Prepare", StageStatus.success), ("Unit Test", unit)])]
    return RunInfo(id=1, service_id=1, service="payments", pipeline="shop", number=3,
                   trigger=Trigger.push, kind=RunKind.full, sha="a" * 40, status=status,
                   created_at=datetime(2026, 1, 1, tzinfo=UTC), stages=stages)


def test_a_run_failed_by_a_timeout_reads_timed_out_not_failed() -> None:
    timed_out = _run(RunStatus.failed, StageStatus.timed_out)
    assert run_status(timed_out).plain == "◷ timed out"
    assert run_status(_run(RunStatus.failed, StageStatus.failed)).plain == "✗ failed"
    assert current_stage(timed_out) == "Unit Test"  # the view opens on it


def test_counts_and_run_numbers() -> None:
    assert plural(1, "commit") == "1 commit" and plural(2, "commit") == "2 commits"
    assert run_label(12) == "#12" and run_label(12, "payments") == "payments #12"
