"""Health, metrics, identity, tokens and the audit log."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from agent.api.auth import Admin, Viewer, audit
from agent.api.deps import agent_of
from agent.api.errors import ERROR_RESPONSES
from store.models import (
    AgentInfo,
    ApiToken,
    AuditEvent,
    DockerState,
    RunStatus,
    TokenCreated,
    TokenCreateRequest,
    WhoAmI,
)

router = APIRouter(responses=ERROR_RESPONSES)


@functools.cache
def agent_version() -> str:
    try:
        return version("seamless")
    except PackageNotFoundError:
        return "0+unknown"


@router.get("/healthz", tags=["admin"])
async def healthz(request: Request) -> dict[str, Any]:
    """200 while the agent serves: `ok`, or `degraded` with the reasons (e.g. the Docker
    engine it needs does not answer, or the data dir is below its free-space floor, when
    new runs get 507). Never 5xx for a missing engine: a liveness probe restarting the
    agent would not bring dockerd back, and the fronts serve without it. `storage`: the
    data dir's free space against `min_free_mb`.
    On the loop, from state the watchers keep: answers even when every thread is busy."""
    body: dict[str, Any] = {"status": "ok", "version": agent_version()}
    reasons = [reason for check in getattr(request.app.state, "health_checks", ())
               if (reason := check())]
    watch = getattr(agent_of(request), "engine_watch", None)
    if watch is not None:  # the Docker engine as last seen (probed every half second)
        engine = watch.current
        body["docker"] = {"state": engine.state, "detail": engine.detail}
    space = getattr(agent_of(request), "space", None)
    if space is not None:  # statvfs: microseconds, read each time so it recovers by itself
        storage = space.check()
        body["storage"] = storage.as_json()
        if storage.low:
            reasons.append(f"storage: {storage.detail}")
    if reasons:
        body.update(status="degraded", reasons=reasons)
    return body


@router.get("/metrics", tags=["admin"], response_class=Response)
def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/api/v1/me", response_model=WhoAmI, tags=["admin"])
def me(token: Viewer) -> WhoAmI:
    return WhoAmI(name=token.name, role=token.role)


@router.get("/api/v1/info", response_model=AgentInfo, tags=["admin"])
def info(request: Request, _: Viewer) -> AgentInfo:
    """Version, run counts and the Docker engine's state: a client's header line."""
    agent = agent_of(request)
    counts = agent.store.count_runs()
    return AgentInfo(version=agent_version(), instance=getattr(agent, "instance", ""),
                     running=counts.get(RunStatus.running, 0),
                     queued=counts.get(RunStatus.queued, 0),
                     awaiting_approval=counts.get(RunStatus.awaiting_approval, 0),
                     docker=docker_state(agent.executors))


def docker_state(executors: object) -> DockerState:
    client = getattr(executors, "docker_engine", None)
    if client is None:  # never connected: down if it was asked for and did not answer
        error = getattr(executors, "docker_error", None)
        return DockerState(state="down" if error else "not used", detail=error)
    try:
        version_info = client.version()
    except Exception as exc:  # noqa: BLE001 - any engine failure is "down", with its reason
        return DockerState(state="down", detail=f"{type(exc).__name__}: {exc}"[:200])
    return DockerState(state="up", detail=f"Docker {version_info.get('Version', '?')}")


@router.get("/api/v1/tokens", response_model=list[ApiToken], tags=["admin"])
def list_tokens(request: Request, _: Admin) -> list[ApiToken]:
    return agent_of(request).store.list_tokens()


@router.post("/api/v1/tokens", response_model=TokenCreated, status_code=201, tags=["admin"])
def create_token(request: Request, token: Admin, body: Annotated[TokenCreateRequest, Body(
        openapi_examples={"ci": {"value": {"name": "ci-bot", "role": "deployer"}}})]
                 ) -> TokenCreated:
    plain, info = agent_of(request).store.create_token(body.name, body.role)
    audit(request, token, "token.create", body.name, body.role.value)
    return TokenCreated(token=plain, info=info)


@router.delete("/api/v1/tokens/{token_id}", status_code=204, tags=["admin"])
def revoke_token(request: Request, token_id: int, token: Admin) -> Response:
    agent_of(request).store.revoke_token(token_id)
    audit(request, token, "token.revoke", str(token_id))
    return Response(status_code=204)


@router.get("/api/v1/audit", response_model=list[AuditEvent], tags=["admin"])
def list_audit(request: Request, _: Admin,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[AuditEvent]:
    return agent_of(request).store.list_audit(limit)
