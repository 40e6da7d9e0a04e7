"""The run page for browsers: `/runs/{id}` (HTML, works with JavaScript off), its live
log as server-sent events (`/runs/{id}/live`, the same store cursor and bus as the
WebSocket), and the page's own assets (the sign-in form: page_login).

Opened by a signed link (the commit status's Details) or a token; see page_access.
Every answer carries a strict Content-Security-Policy: scripts and styles from the
agent only, no inline code, nothing framed, no referrer (the link is a credential).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from agent.api.errors import NOT_A_ULID, ULID_PATTERN
from agent.api.log_follow import follow_log
from agent.api.page_access import Access, PageRefused, check_access, signed_in
from agent.api.page_view import (
    RunView,
    commit_url,
    default_stage,
    duration,
    log_window,
    render_rows,
)
from store.configs import NotFound
from store.models import DEFAULT_STAGES, Event, LogLine

STATIC_DIR = Path(__file__).parent / "web" / "static"
HEARTBEAT_S = 15.0
CHECK_S = 1.0  # how often a quiet stream re-checks its token or link
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


# What a valid value of each parameter of the pages looks like, for the 400 page.
EXPECTED = {
    "run_id": "a run number",
    "before": NOT_A_ULID.removeprefix("not "),
    "after": NOT_A_ULID.removeprefix("not "),
    "line": NOT_A_ULID.removeprefix("not "),
    "at": "a line number (a whole number from 1)",
    "n": "a line number (a whole number from 1)",
}


def make_templates(mask: Any) -> Environment:
    """Jinja2 over the package's templates; every value printed passes the masker
    (rendered log rows were masked before they became markup)."""

    def finalize(value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, Markup):
            return mask(value)
        return value

    env = Environment(loader=PackageLoader("agent.api", "web/templates"),
                      autoescape=select_autoescape(default=True), finalize=finalize)
    env.globals["duration"] = duration
    return env


def _mask(request: Request) -> Any:
    secrets = getattr(request.app.state.agent, "secrets", None)
    return secrets.mask if secrets is not None else (lambda text: text)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    env: Environment = request.app.state.templates
    context.setdefault("viewer", signed_in(request))
    html = env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def refused(request: Request, exc: PageRefused) -> HTMLResponse:
    login = f"/login?next={request.url.path}" if exc.status in (401, 403) else None
    return page(request, "refused.html", exc.status, title=exc.title, detail=exc.detail,
                login=login)


def bad_parameter(exc: RequestValidationError) -> PageRefused:
    """A page's bad query or path value → the 400 page naming the parameter (an unknown
    run number is a 404), never the API's JSON 422."""
    problems = []
    for err in exc.errors():
        name = str(err.get("loc", ("", "?"))[-1])
        value = str(err.get("input", ""))[:80]
        if name == "run_id":
            return PageRefused(404, "No such run", f"{value!r} is not a run number.")
        if err.get("type") == "missing":
            problems.append(f"{name} is missing")
        else:
            cause = EXPECTED.get(name)
            problems.append(f"{name}={value!r} is not {cause}" if cause
                            else f"{name}={value!r}: {err.get('msg', 'invalid')}")
    return PageRefused(400, "Bad link: " + ", ".join(sorted(
        {str(e.get("loc", ("", "?"))[-1]) for e in exc.errors()})), "; ".join(problems) + ".")


class PageRoute(APIRoute):
    """A page's own errors are pages: bad parameters answer the 400 page, an id beyond
    SQLite's integers the 404 page (the API's handlers answer JSON)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return refused(request, bad_parameter(exc))
            except OverflowError:
                return refused(request, PageRefused(404, "No such run",
                                                    "That run number is out of range."))

        return answer


router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: int,
             stage: Annotated[str | None, Query()] = None,
             before: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None,
             after: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None,
             at: Annotated[int | None, Query(ge=1)] = None,
             line: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None) -> Response:
    """`line` (a log line's ULID, e.g. where a failed test's output starts) redirects to
    that line's permalink (`at=<number>#L<number>`)."""
    try:
        access = check_access(request, run_id)
        if line is not None:
            number = _line_number(request.app.state.agent.store, run_id, stage, line)
            return RedirectResponse(f"/runs/{run_id}{access.query(stage=stage, at=number)}"
                                    f"#L{number}", status_code=303, headers=SECURITY_HEADERS)
        view = _view(request, access, stage, before=before, after=after, at=at)
    except PageRefused as exc:
        return refused(request, exc)
    return page(request, "run.html", view=view, run=view.run, log=view.log, access=access)


def _line_number(store: Any, run_id: int, stage: str | None, line: str) -> int:
    """The number of log line `line` in `stage`, or PageRefused naming the parameter."""
    _check_stage(stage)
    if stage is None:
        raise PageRefused(400, "Bad link: line", f"line={line!r} needs stage= too (the "
                          "stage whose log holds the line).")
    if not store.has_log_line(run_id, stage, line):
        raise PageRefused(404, "No such log line",
                          f"line={line!r}: the {stage} log of run {run_id} has no such line.")
    return int(store.log_number(run_id, stage, line))


def _check_stage(stage: str | None) -> None:
    if stage is not None and stage not in DEFAULT_STAGES:
        raise PageRefused(404, "No such stage", f"stage={stage[:80]!r} is not a stage: "
                          f"stages are {', '.join(DEFAULT_STAGES)}.")


def _view(request: Request, access: Access, stage: str | None, **where: Any) -> RunView:
    agent = request.app.state.agent
    store = agent.store
    try:
        run = store.get_run(access.run_id)
    except NotFound:
        raise PageRefused(404, "No such run", f"There is no run {access.run_id}.") from None
    _check_stage(stage)
    if stage is not None and all(s.name != stage for s in run.stages):
        stage = None
    chosen = stage or default_stage(run)
    try:
        service = store.get_service_by_id(run.service_id)
    except NotFound:
        service = None
    link = commit_url(service, run.sha, agent.config.github_api_url) if service else None
    tests = store.run_test_summary(run.id, limit=50)
    return RunView(run=run, service=service, commit_url=link, stages=run.stages,
                   deployments=store.list_deployments(run_id=run.id),
                   log=log_window(store, access, run, chosen, _mask(request), **where),
                   access=access, tests=tests if tests.stages else None)


@router.get("/runs/{run_id}/live")
async def run_live(request: Request, run_id: int,
                   stage: Annotated[str, Query()],
                   after: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None,
                   n: Annotated[int, Query(ge=1)] = 1) -> Response:
    """Server-sent events: `lines` (HTML rows, id `<ULID> <next number>` so a reconnect
    resumes by cursor), `stages` (the stage list), `end` when the run has finished."""
    try:
        access = check_access(request, run_id)
        _check_stage(stage)
    except PageRefused as exc:
        return refused(request, exc)
    resume = request.headers.get("last-event-id", "").split()
    if len(resume) == 2 and resume[1].isdigit() and len(resume[0]) == 26:
        after, n = resume[0], int(resume[1])
    agent = request.app.state.agent
    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(request, agent, access, stage, after, n),
                             media_type="text/event-stream", headers=headers)


def _sse(event: str, data: str, event_id: str | None = None) -> str:
    lines = "".join(f"data: {part}\n" for part in data.split("\n"))
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\n{lines}\n"


async def _events(request: Request, agent: Any, access: Access, stage: str,
                  after: str | None, number: int) -> AsyncIterator[str]:
    mask = _mask(request)
    logs = agent.bus.subscribe_logs(access.run_id, maxsize=request.app.state.ws_queue_logs)
    events = agent.bus.subscribe_events(maxsize=200)
    lines = follow_log(agent.store, logs, access.run_id, stage, after)
    next_lines: asyncio.Future[Any] = asyncio.ensure_future(anext(lines))
    next_event: asyncio.Future[Any] = asyncio.ensure_future(events.get())
    try:
        yield "retry: 2000\n\n"
        checked = pinged = time.monotonic()
        while True:
            done, _ = await asyncio.wait({next_lines, next_event}, timeout=CHECK_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            if time.monotonic() - checked >= CHECK_S:  # also while lines keep coming
                checked = time.monotonic()
                if not await run_in_threadpool(_still_allowed, agent.store, access):
                    yield _sse("refused", "the link expired or the token was revoked")
                    return
            if not done:
                if time.monotonic() - pinged >= HEARTBEAT_S:
                    pinged = time.monotonic()
                    yield ": ping\n\n"
                continue
            if next_lines in done:
                try:
                    batch, _shared = next_lines.result()
                except StopAsyncIteration:
                    return  # lagged: the browser reconnects with its last id
                mine: list[LogLine] = [ln for ln in batch if ln.stage == stage]
                if mine:
                    rows = render_rows(mine, number, access, mask)
                    number += len(mine)
                    yield _sse("lines", rows, f"{mine[-1].id} {number}")
                next_lines = asyncio.ensure_future(anext(lines))
            if next_event in done:
                if events.lagged:
                    return  # fell behind: the browser reconnects from its last id
                event: Event = next_event.result()
                next_event = asyncio.ensure_future(events.get())
                if _about(event, access.run_id):
                    run = await run_in_threadpool(agent.store.get_run, access.run_id)
                    env: Environment = request.app.state.templates
                    stages = env.get_template("stages.html").render(
                        run=run, access=access, log={"stage": stage})
                    yield _sse("stages", stages)
                    yield _sse("status", run.status.value)
                    if run.status.finished:
                        yield _sse("end", run.status.value)
                        return
    finally:
        for future in (next_lines, next_event):
            future.cancel()
        with contextlib.suppress(Exception):
            await lines.aclose()
        logs.close()
        events.close()


def _still_allowed(store: Any, access: Access) -> bool:
    """A stream ends (within CHECK_S) when its link expires or its token is revoked."""
    if access.token is not None:
        current = store.get_token(access.token.id)
        return current is not None and not current.revoked
    return access.exp is None or int(access.exp) > time.time()


def _about(event: Event, run_id: int) -> bool:
    return ((event.run is not None and event.run.id == run_id)
            or (event.stage is not None and event.stage.run_id == run_id))
