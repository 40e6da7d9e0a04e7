"""Seven compact stage cells: one glyph per stage, readable without colour."""

from __future__ import annotations

from rich.text import Text

from seamless_tui.fmt import STAGE_ICONS
from store.models import DEFAULT_STAGES, RunInfo, StageStatus


def stage_cells(run: RunInfo | None) -> Text:
    if run is None:
        return Text("·" * len(DEFAULT_STAGES), style="dim")
    by_name = {s.name: s.status for s in run.stages}
    out = Text()
    for name in DEFAULT_STAGES:
        status = by_name.get(name)
        if status is None:
            out.append(" ")  # a partial (PR) run has no deploy stages
            continue
        icon, style = STAGE_ICONS.get(status, ("?", ""))
        out.append(icon, style=style)
    return out


def current_stage(run: RunInfo) -> str | None:
    for stage in run.stages:
        if stage.status in (StageStatus.in_progress, StageStatus.awaiting_approval):
            return stage.name
    failed = [s.name for s in run.stages
              if s.status in (StageStatus.failed, StageStatus.timed_out)]
    return failed[0] if failed else None
