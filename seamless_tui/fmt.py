"""How statuses, ages and durations look. Icons carry the meaning, so NO_COLOR still reads.

Every glyph here is single-width in common terminal fonts (DejaVu Sans Mono, Menlo,
Consolas): no emoji-range symbols such as U+23F8, which show as a missing-glyph box."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from rich.text import Text

from seamless_tui.ansi import plain, sanitize
from store.models import DeploymentStatus, RunInfo, RunStatus, StageStatus

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


RUN_ICONS: dict[str, tuple[str, str]] = {
    RunStatus.queued: ("◌", "dim"),
    RunStatus.running: ("●", "bold yellow"),
    RunStatus.awaiting_approval: ("◆", "bold magenta"),
    RunStatus.success: ("✓", "green"),
    RunStatus.failed: ("✗", "bold red"),
    RunStatus.cancelled: ("⊘", "dim"),
    RunStatus.rejected: ("⊘", "red"),
    RunStatus.superseded: ("↷", "dim"),
}

STAGE_ICONS: dict[str, tuple[str, str]] = {
    StageStatus.idle: ("·", "dim"),
    StageStatus.in_progress: ("●", "bold yellow"),
    StageStatus.awaiting_approval: ("◆", "bold magenta"),
    StageStatus.success: ("✓", "green"),
    StageStatus.failed: ("✗", "bold red"),
    StageStatus.skipped: ("-", "dim"),
    StageStatus.cancelled: ("⊘", "dim"),
    StageStatus.timed_out: ("◷", "bold red"),
}
APPROVAL_ICON = "◆"
REUSED_ICON = "↺"  # a rerun copied this stage's result from an earlier run

DEPLOY_ICONS: dict[str, tuple[str, str]] = {
    DeploymentStatus.in_progress: ("●", "yellow"),
    DeploymentStatus.active: ("✓", "green"),
    DeploymentStatus.superseded: ("·", "dim"),
    DeploymentStatus.failed: ("✗", "red"),
    DeploymentStatus.rolled_back: ("↶", "magenta"),
    DeploymentStatus.interrupted: ("✗", "yellow"),
}


def status_text(status: str, icons: dict[str, tuple[str, str]] = RUN_ICONS,
                label: bool = True) -> Text:
    icon, style = icons.get(status, ("?", ""))
    words = str(status).replace("_", " ")
    if words == "awaiting approval":
        words = "approval"
    return Text(f"{icon} {words}" if label else icon, style=style)


def run_status(run: RunInfo) -> Text:
    """A run's status; a run failed by a stage's timeout says `timed out`, not `failed`;
    a run with a stage on the agent's host (the local executor) says so; a queued run
    held back says why."""
    if run.status is RunStatus.failed and any(s.status is StageStatus.timed_out
                                               for s in run.stages):
        return status_text(StageStatus.timed_out, STAGE_ICONS) + host_mark(run)
    if run.status is RunStatus.queued and run.waiting:  # e.g. for the Docker engine
        return status_text(run.status) + Text(f" · {run.waiting}", style="yellow")
    return status_text(run.status) + host_mark(run)


def host_mark(run: RunInfo) -> Text:
    """` [host]` when a stage of the run ran with the local executor: on the agent's host,
    not isolated (an admin's choice, but one to see at a glance)."""
    if any(s.executor == "local" for s in run.stages):
        return Text(" [host]", style="bold yellow")
    return Text("")


def plural(count: int, noun: str) -> str:
    """`1 commit`, `2 commits`, `1,922 lines`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def run_label(number: int | None, service: str | None = None) -> str:
    """Runs are `#N` (the per-service number) everywhere; with the service: `payments #3`."""
    label = f"#{number}" if number is not None else "#?"
    return f"{service} {label}" if service else label


def short_sha(sha: str | None) -> str:
    return sha[:7] if sha else "—"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def age(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "—"
    s = int((now - ts).total_seconds())
    if s < 60:
        return f"{max(s, 0)}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def span(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    """Seconds from start to end, or to now while still running."""
    if start is None:
        return None
    return ((end or now) - start).total_seconds()


def first_line(text: str | None, width: int = 60) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    if not line.isprintable():  # messages come from pushers: no escape reaches the terminal
        line = plain(sanitize(line))
    return line if len(line) <= width else line[: width - 1] + "…"


def size_text(n: int) -> str:
    """A byte count for people: `0 B`, `912 KB`, `12.3 MB`, `2.0 GB` (powers of 1024)."""
    value, unit = float(n), "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            break
        value /= 1024
    return f"{int(value)} {unit}" if unit in ("B", "KB") else f"{value:.1f} {unit}"
