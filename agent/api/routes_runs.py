"""Runs (list, show, cancel, rerun), their logs, and approvals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from agent.api.auth import Deployer, Viewer, audit
from agent.api.deps import agent_of
from agent.api.errors import ERROR_RESPONSES, ULID_PATTERN, ApiError
from store.models import (
    DEFAULT_STAGES,
    Approval,
    ApprovalStatus,
    DecisionRequest,
    FirstErrorAnswer,
    LogMatch,
    LogPage,
    LogSearchPage,
    RerunRequest,
    RunInfo,
    RunPage,
    RunPageLink,
    RunStatus,
)

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)

@router.get("/runs", response_model=RunPage, tags=["runs"])
def list_runs(request: Request, _: Viewer, service: str | None = None,
              status: RunStatus | None = None,
              branch: Annotated[str | None, Query(max_length=200)] = None,
              cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$",
                                                  description="next_cursor of the previous page")
                                ] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    before = int(cursor) if cursor else None
    runs = agent_of(request).store.list_runs(service=service, status=status, branch=branch,
                                             before_id=before, limit=limit)
    next_cursor = str(runs[-1].id) if len(runs) == limit else None
    # The hot path of every dashboard: serialise once, skip FastAPI's re-validation.
    page = RunPage(items=runs, next_cursor=next_cursor)
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/runs/{run_id}", response_model=RunInfo, tags=["runs"])
def get_run(request: Request, run_id: int, _: Viewer) -> RunInfo:
    return agent_of(request).store.get_run(run_id)


@router.get("/runs/{run_id}/link", response_model=RunPageLink, tags=["runs"])
def run_page_link(request: Request, run_id: int, _: Viewer) -> RunPageLink:
    """A signed link to the run's page for browsers (what commit statuses link to):
    anyone holding it can read that run's page and logs until it expires."""
    agent_of(request).store.get_run(run_id)  # 404 for an unknown run
    url, expires = request.app.state.links.link(run_id)
    return RunPageLink(url=url, expires_at=datetime.fromtimestamp(expires, UTC))


@router.post("/runs/{run_id}/cancel", response_model=RunInfo, tags=["runs"])
def cancel_run(request: Request, run_id: int, token: Deployer) -> RunInfo:
    run = agent_of(request).engine.cancel(run_id, actor=token.name)
    audit(request, token, "run.cancel", f"{run.service}#{run.number}", f"run {run_id}")
    return run


@router.post("/runs/{run_id}/rerun", response_model=RunInfo, status_code=201, tags=["runs"])
def rerun(request: Request, run_id: int, token: Deployer, body: Annotated[
        RerunRequest, Body(openapi_examples={
            "whole run": {"value": {}},
            "from a stage": {"value": {"from_stage": "Unit Test"}}})] = RerunRequest()
          ) -> RunInfo:
    run = agent_of(request).engine.rerun(run_id, body.from_stage, actor=token.name)
    audit(request, token, "run.rerun", f"{run.service}#{run.number}",
          f"of run {run_id} from {body.from_stage or 'the start'}")
    return run


@router.get("/runs/{run_id}/logs", response_model=LogPage, tags=["logs"])
def run_logs(request: Request, run_id: int, _: Viewer,
             stage: Annotated[str | None, Query(description="one of the stage names")] = None,
             after: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None,
             before: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None,
             tail: bool = False,
             limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> LogPage:
    _check_stage(stage)
    store = agent_of(request).store
    store.get_run(run_id)  # 404 for an unknown run rather than an empty page
    return store.log_page(run_id, stage=stage, after=after, before=before, limit=limit,
                          tail=tail)


# A viewer shows the line found with the lines around it: sent in the same answer.
ContextLines = Annotated[int, Query(ge=0, le=1000, description="also send this many lines on"
                                    " each side of the line found (`context` in the answer)")]


@router.get("/runs/{run_id}/logs/search", response_model=LogSearchPage, tags=["logs"])
def search_logs(request: Request, run_id: int, _: Viewer,
                stage: Annotated[str, Query(description="one of the stage names")],
                q: Annotated[str, Query(min_length=1, max_length=500,
                                        description="text to find (case-insensitive)")],
                after: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None,
                before: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                context: ContextLines = 0) -> LogSearchPage:
    """Matches over the whole stored log of a stage, paged by ULID: `after` the last match
    for the next ones, `before` the first for the previous ones. The first page (no cursor)
    carries the total."""
    _check_stage(stage)
    store = agent_of(request).store
    store.get_run(run_id)
    page = store.search_log(run_id, stage, q, after=after, before=before, limit=limit,
                            with_total=after is None and before is None)
    if context and page.matches:
        # Paging backwards, the match a reader goes to is the one just before the cursor.
        shown = page.matches[-1] if before is not None and after is None else page.matches[0]
        page.context = store.log_context(run_id, stage, shown.id, context)
    return page


@router.get("/runs/{run_id}/logs/first-error", response_model=FirstErrorAnswer,
            tags=["logs"])
def first_error(request: Request, run_id: int, _: Viewer,
                stage: Annotated[str, Query(description="one of the stage names")],
                context: ContextLines = 0) -> FirstErrorAnswer:
    """The stage's first line that reads like an error, over its whole stored log (its
    first 200,000 lines): the same line the run page marks."""
    _check_stage(stage)
    store = agent_of(request).store
    store.get_run(run_id)
    line = store.first_error_line(run_id, stage)
    if line is None:
        return FirstErrorAnswer()
    return FirstErrorAnswer(
        line=LogMatch(id=line.id, index=1, text=line.text,
                      number=store.log_number(run_id, stage, line.id)),
        context=store.log_context(run_id, stage, line.id, context) if context else None)


def _check_stage(stage: str | None) -> None:
    if stage is not None and stage not in DEFAULT_STAGES:
        raise ApiError(422, "validation_error",
                       [{"field": "stage", "message": f"one of {list(DEFAULT_STAGES)}"}])


# -- approvals ---------------------------------------------------------------------------
@router.get("/runs/{run_id}/approval", response_model=Approval, tags=["approvals"])
def get_approval(request: Request, run_id: int, _: Viewer) -> Approval:
    return agent_of(request).store.get_approval(run_id)


_DECISION_EXAMPLES = {"with comment": {"value": {"comment": "staging looks good"}},
                      "bare": {"value": {}}}


@router.post("/runs/{run_id}/approve", response_model=Approval, tags=["approvals"])
def approve(request: Request, run_id: int, token: Deployer, body: Annotated[
        DecisionRequest, Body(openapi_examples=_DECISION_EXAMPLES)] = DecisionRequest()
            ) -> Approval:
    approval = agent_of(request).engine.approve(run_id, actor=token.name, comment=body.comment)
    audit(request, token, "run.approve", f"{approval.service} run {run_id}", body.comment)
    return approval


@router.post("/runs/{run_id}/reject", response_model=Approval, tags=["approvals"])
def reject(request: Request, run_id: int, token: Deployer, body: Annotated[
        DecisionRequest, Body(openapi_examples=_DECISION_EXAMPLES)] = DecisionRequest()
           ) -> Approval:
    approval = agent_of(request).engine.reject(run_id, actor=token.name, comment=body.comment)
    audit(request, token, "run.reject", f"{approval.service} run {run_id}", body.comment)
    return approval


@router.get("/approvals", response_model=list[Approval], tags=["approvals"])
def list_approvals(request: Request, _: Viewer,
                   status: Annotated[ApprovalStatus | None, Query(
                       description="default pending; 'all' is not a status: omit for pending")
                   ] = ApprovalStatus.pending) -> list[Approval]:
    return agent_of(request).store.list_approvals(status)
