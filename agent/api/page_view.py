"""What the run page shows, built from the store: the run, its stages, and a window of
the selected stage's log rendered as HTML rows (numbers, permalinks, colours, the
first error marked). Every text passes the agent's secret masker before it becomes
HTML, whatever the store already masked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from markupsafe import Markup

from agent.api.ansi_html import ansi_to_html
from agent.api.page_access import Access
from agent.github_api import parse_github_repo, web_host
from store.models import (
    Deployment,
    LogLine,
    LogStream,
    RunInfo,
    Service,
    StageInfo,
    StageStatus,
)

WINDOW = 500  # lines per page of the log: the tail first, older ones by cursor
PERMALINK_CONTEXT = 100  # lines shown above a permalinked line

Mask = Callable[[str], str]


def render_rows(lines: Sequence[LogLine], first_number: int, access: Access, mask: Mask,
                error_id: str | None = None) -> str:
    """The rows of `lines` (numbered from `first_number`) as one HTML string."""
    out = []
    for number, line in enumerate(lines, first_number):
        classes = "l"
        if line.stream is not LogStream.stdout:
            classes += " s" if line.stream is LogStream.system else " e"
        if line.id == error_id:
            classes += " err"
        link = escape(access.query(stage=line.stage, at=number))
        out.append(f'<div class="{classes}" id="L{number}"><a class="n" href="{link}#L{number}"'
                   f'>{number}</a>{ansi_to_html(mask(line.text))}</div>')
    return "".join(out)


def duration(stage_or_run: StageInfo | RunInfo, now: datetime | None = None) -> str:
    start, end = stage_or_run.started_at, stage_or_run.finished_at
    if start is None:
        return ""
    seconds = int(((end or now or datetime.now(UTC)) - start).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


def default_stage(run: RunInfo) -> str:
    """The stage a reader wants first: the failed one, else the one running, else the
    last that started."""
    for wanted in ({StageStatus.failed, StageStatus.timed_out},
                   {StageStatus.in_progress, StageStatus.awaiting_approval}):
        for stage in run.stages:
            if stage.status in wanted:
                return stage.name
    started = [s for s in run.stages if s.started_at is not None]
    return (started[-1] if started else run.stages[0]).name


def commit_url(service: Service, sha: str, github_api_url: str) -> str | None:
    host = web_host(github_api_url)
    repo = parse_github_repo(service.repo_url, host)
    return f"https://{host}/{repo[0]}/{repo[1]}/commit/{sha}" if repo else None


@dataclass
class LogWindow:
    stage: str
    rows: Markup
    total: int
    first_number: int
    last_number: int
    older: str | None = None  # href of the page before this window
    newer: str | None = None  # href of the page after it (None at the tail)
    first_error: int | None = None  # line number of the first error
    first_error_href: str | None = None
    live: str | None = None  # the live stream's URL while the run goes on, at the tail


@dataclass
class RunView:
    run: RunInfo
    service: Service | None
    commit_url: str | None
    stages: list[StageInfo]
    deployments: list[Deployment]
    log: LogWindow
    access: Access
    tests: Any = None  # RunTestSummary when a stage reported JUnit results


def log_window(store: Any, access: Access, run: RunInfo, stage: str, mask: Mask, *,
               before: str | None = None, after: str | None = None,
               at: int | None = None) -> LogWindow:
    """The window of `stage`'s log a request asks for: the tail, the page before or after
    a ULID cursor, or the lines from a permalinked number on."""
    if at is not None:
        total = store.count_log_lines(run.id, stage)
        first = max(1, min(at, total) - PERMALINK_CONTEXT)
        lines = store.log_from_number(run.id, stage, first, WINDOW).lines
    elif before is not None or after is not None:
        total = store.count_log_lines(run.id, stage)
        lines = store.log_page(run.id, stage=stage, before=before, after=after,
                               limit=WINDOW).lines
        first = store.log_number(run.id, stage, lines[0].id) if lines else total + 1
    else:  # the tail: one count (the lines before it), numbered from its first line
        lines = store.log_page(run.id, stage=stage, tail=True, limit=WINDOW).lines
        first = store.log_number(run.id, stage, lines[0].id) if lines else 1
        total = first + len(lines) - 1
    stage_info = next(s for s in run.stages if s.name == stage)
    error = None
    if stage_info.status in (StageStatus.failed, StageStatus.timed_out):
        error = store.first_error_line(run.id, stage)
    last = first + len(lines) - 1
    window = LogWindow(stage, Markup(render_rows(lines, first, access, mask,
                                                 error.id if error else None)),
                       total, first, last)
    if lines and first > 1:
        window.older = access.query(stage=stage, before=lines[0].id)
    if lines and last < total:
        window.newer = access.query(stage=stage, after=lines[-1].id)
    if error is not None:
        window.first_error = store.log_number(run.id, stage, error.id)
        window.first_error_href = access.query(stage=stage, at=window.first_error)
    at_tail = last >= total
    if at_tail and not run.status.finished:
        window.live = f"/runs/{run.id}/live" + access.query(
            stage=stage, after=lines[-1].id if lines else None, n=last + 1)
    return window
