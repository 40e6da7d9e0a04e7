"""Pipelines and services: CRUD (admin), manual triggers and unpinning (deployer)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from agent.api.auth import Admin, Deployer, Viewer, audit
from agent.api.deps import agent_of, publish_service
from agent.api.errors import ERROR_RESPONSES, ApiError
from agent.api.repo_check import check_repository
from agent.deploy.teardown import DeployInProgress, live_environments, no_deploy_running
from agent.deploy.teardown import teardown as teardown_service
from agent.engine.workspace import LS_REMOTE_TIMEOUT_S, WorkspaceError
from agent.executors.caches import CacheError, caches_of
from agent.onboarding.hooks import HookOutcome, on_service_created, on_service_deleted
from store.models import (
    ENVIRONMENTS,
    SECRET_MASK,
    ApiToken,
    CacheInfo,
    Pipeline,
    PipelineConfig,
    Role,
    RunInfo,
    Service,
    ServiceConfig,
    Trigger,
    TriggerRequest,
    redact_pipeline,
    redact_service,
)

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
# A trigger waits this long for the remote's branch head (queued behind others included).
REMOTE_WAIT_S = LS_REMOTE_TIMEOUT_S + 5

PIPELINE_EXAMPLE = {"name": "shop", "auto_deploy": False,
                    "staging": {"kind": "docker", "port": 18001},
                    "production": {"kind": "docker", "port": 18002}}
SERVICE_EXAMPLE = {"name": "payments", "pipeline": "shop",
                   "repo_url": "https://github.com/acme/payments.git", "branch": "main",
                   "code_quality_command": "sh lint.sh", "unit_test_command": "sh test.sh",
                   "compose_file": "compose.yaml",
                   "integration_test_command": "sh integration.sh",
                   "image_repository": "127.0.0.1:5000/payments",
                   "secrets": {"STRIPE_KEY": "sk_test_123"}, "webhook_secret": "s3cret"}


# -- pipelines -------------------------------------------------------------------------
@router.get("/pipelines", response_model=list[Pipeline], tags=["pipelines"])
def list_pipelines(request: Request, token: Viewer) -> list[Pipeline]:
    admin = token.role is Role.admin
    return [redact_pipeline(p, admin=admin) for p in agent_of(request).store.list_pipelines()]


@router.post("/pipelines", response_model=Pipeline, status_code=201, tags=["pipelines"])
def create_pipeline(request: Request, token: Admin, config: Annotated[PipelineConfig, Body(
        openapi_examples={"docker": {"summary": "two docker targets",
                                     "value": PIPELINE_EXAMPLE}})]) -> Pipeline:
    pipeline = agent_of(request).store.create_pipeline(config)
    audit(request, token, "pipeline.create", config.name)
    return pipeline


@router.get("/pipelines/{name}", response_model=Pipeline, tags=["pipelines"])
def get_pipeline(request: Request, name: str, token: Viewer) -> Pipeline:
    return redact_pipeline(agent_of(request).store.get_pipeline(name),
                           admin=token.role is Role.admin)


@router.put("/pipelines/{name}", response_model=Pipeline, tags=["pipelines"])
def update_pipeline(request: Request, name: str, token: Admin, config: Annotated[
        PipelineConfig, Body(openapi_examples={"docker": {"value": PIPELINE_EXAMPLE}})]
                    ) -> Pipeline:
    pipeline = agent_of(request).store.update_pipeline(name, config)
    audit(request, token, "pipeline.update", name)
    return pipeline


@router.delete("/pipelines/{name}", status_code=204, tags=["pipelines"])
def delete_pipeline(request: Request, name: str, token: Admin) -> Response:
    agent_of(request).store.delete_pipeline(name)
    audit(request, token, "pipeline.delete", name)
    return Response(status_code=204)


# -- services --------------------------------------------------------------------------
@router.get("/services", response_model=list[Service], tags=["services"])
def list_services(request: Request, token: Viewer, pipeline: str | None = None) -> list[Service]:
    admin = token.role is Role.admin
    return [redact_service(s, admin=admin) for s in agent_of(request).store.list_services(pipeline)]


@router.post("/services", response_model=Service, status_code=201, tags=["services"])
def create_service(request: Request, token: Admin, config: Annotated[ServiceConfig, Body(
        openapi_examples={"full": {"summary": "a service with every stage",
                                   "value": SERVICE_EXAMPLE}})],
                   check: Annotated[bool, Query(description=(
                       "git ls-remote the repository first: 422 naming no such repository, "
                       "no such branch, or unreachable / refused access"))] = True) -> Service:
    agent = agent_of(request)
    if check:
        _check_repository(agent, config)
    service = agent.store.create_service(config)
    audit(request, token, "service.create", config.name)
    _github_hook(request, token, on_service_created(agent, service), config.name)
    service = agent.store.get_service(config.name)  # the hook may have set its secret
    publish_service(request, service, action="created")
    return redact_service(service, admin=True)


@router.get("/services/{name}", response_model=Service, tags=["services"])
def get_service(request: Request, name: str, token: Viewer) -> Service:
    return redact_service(agent_of(request).store.get_service(name),
                          admin=token.role is Role.admin)


def _keep_masked_secrets(config: ServiceConfig, current: Service) -> ServiceConfig:
    """A client that PUTs back what it GOT sends masks: keep the stored values there."""
    secrets = {k: current.secrets.get(k, v) if v == SECRET_MASK else v
               for k, v in config.secrets.items()}
    webhook = current.webhook_secret if config.webhook_secret == SECRET_MASK \
        else config.webhook_secret
    return config.model_copy(update={"secrets": secrets, "webhook_secret": webhook})


def _check_repository(agent: Any, config: ServiceConfig) -> None:
    """422 naming what is wrong: no such repository, no such branch, or unreachable."""
    problem = check_repository(agent.workspaces, config.repo_url, config.branch)
    if problem is not None:
        raise ApiError(422, f"repository_check_{problem.kind}", problem.as_detail())


CHECK_ON_CHANGE = ("git ls-remote the repository first when repo_url or branch changes: 422 "
                   "naming no such repository, no such branch, or unreachable / refused access")


@router.put("/services/{name}", response_model=Service, tags=["services"])
def update_service(request: Request, name: str, token: Admin, config: Annotated[
        ServiceConfig, Body(openapi_examples={"full": {"value": SERVICE_EXAMPLE}})],
                   check: Annotated[bool, Query(description=CHECK_ON_CHANGE)] = True
                   ) -> Service:
    agent = agent_of(request)
    store = agent.store
    current = store.get_service(name)
    config = _keep_masked_secrets(config, current)
    if check and (config.repo_url, config.branch) != (current.repo_url, current.branch):
        _check_repository(agent, config)
    service = store.update_service(name, config)
    audit(request, token, "service.update", name)
    publish_service(request, service, action="updated")
    return redact_service(service, admin=True)


def _github_hook(request: Request, token: ApiToken, outcome: HookOutcome, name: str) -> None:
    """GitHub webhook set-up never undoes the service change; what happened is audited."""
    if outcome.action != "skipped":
        audit(request, token, f"github_hook.{outcome.action}", name, outcome.message)


@router.delete("/services/{name}", status_code=204, tags=["services"])
def delete_service(request: Request, name: str, token: Admin, teardown: bool = False
                   ) -> Response:
    """A service with live deployments is deleted only with `teardown=true`, which stops
    its colours, frees its stable ports and removes its images first."""
    agent = agent_of(request)
    service = agent.store.get_service(name)
    try:
        with no_deploy_running(agent.deployer, service):
            live = live_environments(agent.store, service)
            if live and not teardown:
                raise ApiError(409, "live_deployments", (
                    f"service {name} is live in {', '.join(live)}: delete it with "
                    "teardown=true to stop its colours, free its stable ports and remove "
                    "its images"))
            done = teardown_service(agent.store, agent.deployer, service) if teardown else []
            agent.store.delete_service(name)
    except DeployInProgress as exc:
        raise ApiError(409, "deploy_in_progress", str(exc)) from exc
    audit(request, token, "service.delete", name, "; ".join(done) or None)
    _github_hook(request, token, on_service_deleted(agent, service), name)
    publish_service(request, None, action="deleted", name=name)
    return Response(status_code=204)


@router.post("/services/{name}/trigger", response_model=RunInfo, status_code=201,
             tags=["runs"])
async def trigger_run(request: Request, name: str, token: Deployer, body: Annotated[
        TriggerRequest, Body(openapi_examples={
            "branch head": {"value": {"branch": "main"}},
            "exact commit": {"value": {"sha": "9fceb02d0ae598e95dc970b74767f19372d61af8"}},
            "partial": {"value": {"branch": "feature/x", "kind": "partial"}}})]) -> RunInfo:
    agent = agent_of(request)
    service = await run_in_threadpool(agent.store.get_service, name)
    branch = body.branch or service.branch
    sha = body.sha
    if sha is None:
        sha = await remote_head(agent, service.repo_url, branch)
    run = await run_in_threadpool(lambda: agent.engine.submit(
        service, trigger=Trigger.manual, kind=body.kind, sha=sha, branch=branch,
        actor=token.name))
    await run_in_threadpool(audit, request, token, "run.trigger", f"{name}#{run.number}",
                            f"{branch}@{sha}")
    return run


@router.get("/services/{name}/cache", response_model=CacheInfo, tags=["services"])
def cache_info(request: Request, name: str, _: Viewer) -> CacheInfo:
    """The service's dependency cache (mounted at /cache in its stages)."""
    agent = agent_of(request)
    service = agent.store.get_service(name)
    caches = caches_of(agent.config)
    return CacheInfo(service=service.name, bytes=caches.size(service.name),
                     max_bytes=caches.max_bytes)


@router.delete("/services/{name}/cache", response_model=CacheInfo, tags=["services"])
def clear_cache(request: Request, name: str, token: Deployer) -> CacheInfo:
    """Empty the service's dependency cache; the next runs fill it again."""
    agent = agent_of(request)
    service = agent.store.get_service(name)
    caches = agent.executors.caches
    image = service.stage_image or agent.store.get_pipeline(service.pipeline).stage_image
    try:
        freed = caches.clear(service.name, image)
    except CacheError as exc:
        raise ApiError(409, "cache_not_cleared", str(exc)) from exc
    audit(request, token, "service.cache_clear", name, f"{freed} bytes")
    return CacheInfo(service=service.name, bytes=caches.size(service.name),
                     max_bytes=caches.max_bytes, freed_bytes=freed)


async def remote_head(agent: Any, repo_url: str, branch: str) -> str:
    """`git ls-remote` in the workspaces' own pool (never the API's threads), bounded."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(agent.workspaces.remote_pool,
                                  agent.workspaces.resolve_branch, repo_url, branch)
    try:
        sha = await asyncio.wait_for(future, REMOTE_WAIT_S)
    except TimeoutError:
        raise ApiError(504, "remote_timeout", f"{repo_url} did not answer within"
                       f" {REMOTE_WAIT_S:g} s; trigger with an explicit sha, or retry") from None
    except WorkspaceError as exc:
        raise ApiError(502, "remote_failed", f"{repo_url}: {exc}") from None
    if sha is None:
        raise ApiError(409, "unknown_branch", f"branch {branch!r} was not found at {repo_url}")
    return str(sha)


@router.post("/services/{name}/unpin/{environment}", response_model=Service, tags=["deploys"])
def unpin(request: Request, name: str, environment: str, token: Deployer) -> Service:
    if environment not in ENVIRONMENTS:
        raise ApiError(422, "validation_error",
                       [{"field": "environment", "message": f"one of {list(ENVIRONMENTS)}"}])
    store = agent_of(request).store
    service = store.get_service(name)
    store.set_pin(service.id, environment, None)
    audit(request, token, "service.unpin", f"{name}/{environment}")
    service = store.get_service(name)
    publish_service(request, service, action="unpinned", environment=environment)
    return redact_service(service)

