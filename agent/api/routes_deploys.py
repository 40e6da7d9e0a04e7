"""Deployments, rollbacks, DORA figures and the dashboard overview."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from agent.api.auth import Deployer, Viewer, audit
from agent.api.deps import agent_of
from agent.api.errors import ERROR_RESPONSES
from store.models import (
    CanaryStatus,
    Deployment,
    DoraFigures,
    RollbackRequest,
    ServiceOverview,
    redact_service,
)

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)

Days = Annotated[int, Query(ge=1, le=3650)]


@router.get("/overview", response_model=list[ServiceOverview], tags=["deploys"])
def overview(request: Request, _: Viewer) -> list[ServiceOverview]:
    store = agent_of(request).store
    last_runs = store.last_run_per_service()
    pending = {a.service: a for a in store.list_approvals()}
    rows = []
    for service in store.list_services():
        rows.append(ServiceOverview(
            pipeline=service.pipeline,
            service=redact_service(service),
            last_run=last_runs.get(service.id),
            staging=store.current_deployment(service.id, "staging"),
            production=store.current_deployment(service.id, "production"),
            pending_approval=pending.get(service.name)))
    return rows


@router.get("/services/{name}/deployments", response_model=list[Deployment], tags=["deploys"])
def deployments(request: Request, name: str, _: Viewer,
                environment: Literal["staging", "production"] | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[Deployment]:
    store = agent_of(request).store
    service = store.get_service(name)
    return store.list_deployments(service_id=service.id, environment=environment, limit=limit)


@router.get("/services/{name}/dora", response_model=DoraFigures, tags=["deploys"])
def service_dora(request: Request, name: str, _: Viewer, days: Days = 30) -> DoraFigures:
    agent = agent_of(request)
    service = agent.store.get_service(name)
    return agent.deployer.dora(service.id, days)


@router.get("/dora", response_model=DoraFigures, tags=["deploys"])
def all_dora(request: Request, _: Viewer, days: Days = 30,
             pipeline: str | None = None) -> DoraFigures:
    agent = agent_of(request)
    if pipeline is not None:
        agent.store.get_pipeline(pipeline)  # 404 for an unknown pipeline
    return agent.deployer.dora(None, days, pipeline)


@router.post("/rollbacks", response_model=Deployment, status_code=202, tags=["deploys"])
def rollback(request: Request, token: Deployer, body: Annotated[RollbackRequest, Body(
        openapi_examples={"production": {"value": {
            "service": "payments", "environment": "production",
            "sha": "9fceb02d0ae598e95dc970b74767f19372d61af8"}}})]) -> JSONResponse:
    agent = agent_of(request)
    deployment = agent.engine.rollback(body.service, body.environment, body.sha,
                                       actor=token.name)
    audit(request, token, "rollback", f"{body.service}/{body.environment}", body.sha)
    return JSONResponse(deployment.model_dump(mode="json"), status_code=202)


Env = Literal["staging", "production"]


@router.get("/services/{name}/canary/{environment}", response_model=CanaryStatus,
            tags=["deploys"])
def canary_status(request: Request, name: str, environment: Env, _: Viewer) -> CanaryStatus:
    """The latest deploy of the environment: front weights and every measured window."""
    agent = agent_of(request)
    return agent.deployer.canary_status(agent.store.get_service(name), environment)


@router.post("/services/{name}/canary/{environment}/{action}", response_model=Deployment,
             status_code=202, tags=["deploys"])
def canary_steer(request: Request, name: str, environment: Env,
                 action: Literal["promote", "abort"], token: Deployer) -> JSONResponse:
    """`promote`: skip the remaining analysis and give the canary all traffic; `abort`:
    weight 0 at once, drain, remove it; the deploy fails. 409 when no canary runs."""
    agent = agent_of(request)
    deployment = agent.deployer.steer_canary(agent.store.get_service(name), environment,
                                             action, token.name)
    audit(request, token, f"canary {action}", f"{name}/{environment}", deployment.sha)
    return JSONResponse(deployment.model_dump(mode="json"), status_code=202)
