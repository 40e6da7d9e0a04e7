"""Monorepos: why each service of a repository ran or not (change decisions), and
`trigger --all` (every service of a repository, dependencies first)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from starlette.concurrency import run_in_threadpool

from agent.api.auth import Deployer, Viewer, audit
from agent.api.deps import agent_of
from agent.api.errors import ERROR_RESPONSES
from agent.api.routes_services import remote_head
from agent.triggers.changes import ChangeRequest
from store.models import ChangeDecision, RunInfo, Trigger, TriggerRequest
from store.models.repos import normalize_repo_url

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)


@router.get("/decisions", response_model=list[ChangeDecision], tags=["runs"])
def list_decisions(request: Request, _: Viewer, service: str | None = None,
                   sha: Annotated[str | None, Query(pattern=r"^[0-9a-f]{4,40}$")] = None,
                   run: int | None = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[ChangeDecision]:
    """Newest first: per push / PR head / poll, whether each service ran and why (the
    changed paths that matched its globs, or none), and what it was compared with."""
    store = agent_of(request).store
    if run is not None:
        found = store.decision_for_run(run)
        return [found] if found else []
    service_id = store.get_service(service).id if service else None
    return store.list_decisions(service_id=service_id, sha=sha, limit=limit)


@router.get("/decisions/{decision_id}", response_model=ChangeDecision, tags=["runs"])
def get_decision(request: Request, decision_id: int, _: Viewer) -> ChangeDecision:
    return agent_of(request).store.get_decision(decision_id)


@router.post("/services/{name}/trigger-all", response_model=list[RunInfo], status_code=201,
             tags=["runs"])
async def trigger_all(request: Request, name: str, token: Deployer, body: Annotated[
        TriggerRequest, Body(openapi_examples={"branch head": {"value": {}}})]
                      ) -> list[RunInfo]:
    """Run every service of `name`'s repository at one commit, whatever changed; the
    runs form one batch, so `depends_on_services` deploy order holds."""
    agent = agent_of(request)
    service = await run_in_threadpool(agent.store.get_service, name)
    branch = body.branch or service.branch
    sha = body.sha or await remote_head(agent, service.repo_url, branch)
    repo = normalize_repo_url(service.repo_url)
    services = [s for s in await run_in_threadpool(agent.store.list_services)
                if normalize_repo_url(s.repo_url) == repo]
    forced = f"manual: trigger --all by {token.name}"
    requests = [ChangeRequest(service=s, trigger=Trigger.manual, kind=body.kind, sha=sha,
                              branch=branch, actor=token.name, forced=forced)
                for s in services]
    batch = f"manual:{uuid.uuid4().hex}"
    decisions = await run_in_threadpool(agent.changes.decide, requests, batch)
    runs = [await run_in_threadpool(agent.store.get_run, d.run_id) for d in decisions
            if d.run_id is not None]
    await run_in_threadpool(audit, request, token, "run.trigger_all", name,
                            f"{branch}@{sha}: {', '.join(s.name for s in services)}")
    return runs

