"""`create_app(agent)`: the FastAPI app serving REST, WebSockets, webhooks and metrics.

The app's lifespan starts and stops the agent (and the pieces of this area that
live beside it: metrics, the git poller, GitHub commit statuses), so whoever
serves the app — the CLI or a test — gets one clean start and shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from agent.api import (
    logfilters,
    page_login,
    routes_admin,
    routes_changes,
    routes_deploys,
    routes_runs,
    routes_services,
    routes_tests,
    run_page,
    webhooks,
    ws,
)
from agent.api.auth import Authenticator
from agent.api.errors import install_error_handlers
from agent.api.limits import BodyGuard
from agent.api.metrics import Metrics
from agent.api.redaction import MaskJsonBodies
from agent.api.warmup import warm_up
from agent.run_links import RunLinks
from agent.runtime import Agent
from agent.triggers.github import RepoIndex

log = logging.getLogger(__name__)

DESCRIPTION = """REST and WebSocket API of the Seamless agent.

Authenticate with `Authorization: Bearer <token>` (create one with
`seamless-agent token create`). Roles: viewer < deployer < admin.
Errors are JSON `{"error": "<code>", "detail": ...}`."""


def create_app(agent: Agent, *, manage_agent: bool = True, ws_queue_events: int = 1000,
               ws_queue_logs: int = 2000) -> FastAPI:
    """`manage_agent=False` when the caller starts and stops the agent itself.
    The ws_queue_* sizes bound each WebSocket client's backlog (events / log batches)."""
    logfilters.install()  # no token in the server's log, no flood of one line
    metrics = Metrics(agent)
    side_tasks: list[Any] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_agent:
            await agent.start()
        await metrics.start()
        side_tasks.extend(_side_tasks(agent))
        for task in side_tasks:
            await task.start()
        await warm_up(app, app.state.repo_index)
        try:
            yield
        finally:
            for task in reversed(side_tasks):
                with contextlib.suppress(Exception):
                    await task.stop()
            await metrics.stop()
            if manage_agent:
                await agent.stop()

    # The docs page and its Swagger UI assets come from the fastapi-offline package: a build
    # host often has no internet, and a CDN would see who browses the API.
    app = FastAPIOffline(title="Seamless agent", version=routes_admin.agent_version(),
                         description=DESCRIPTION, openapi_url="/api/v1/openapi.json",
                         docs_url="/api/v1/docs", redoc_url=None, static_url=DOCS_ASSETS_URL,
                         lifespan=lifespan)
    app.state.agent = agent
    app.state.health_checks = agent.health_checks
    app.state.auth = Authenticator(agent.store)
    app.state.metrics = metrics
    app.state.repo_index = RepoIndex(agent.store)
    app.state.ws_queue_events = ws_queue_events
    app.state.ws_queue_logs = ws_queue_logs
    install_error_handlers(app)
    secrets = getattr(agent, "secrets", None)
    app.state.links = getattr(agent, "links", None) or RunLinks.for_config(agent.config)
    app.state.templates = run_page.make_templates(
        secrets.mask if secrets is not None else (lambda text: text))
    if secrets is not None:
        app.add_middleware(MaskJsonBodies, mask=secrets.mask)
    app.add_middleware(BodyGuard, authenticate=agent.store.authenticate)  # outermost
    for module in (routes_admin, routes_services, routes_runs, routes_deploys, routes_changes,
                   routes_tests, ws, webhooks, run_page, page_login):
        app.include_router(module.router)
    # The run page's CSS and JavaScript: from the agent itself, never a CDN.
    app.mount("/assets", StaticFiles(directory=run_page.STATIC_DIR), name="assets")
    return app


DOCS_ASSETS_URL = "/api/v1/docs-assets"


def _side_tasks(agent: Agent) -> list[Any]:
    """The poller and the commit-status reporter, when the configuration asks for them."""
    from agent.triggers.polling import Poller
    from agent.triggers.status import StatusReporter

    config = getattr(agent, "config", None)
    tasks: list[Any] = []
    if config is not None and config.poll_enabled and not getattr(agent, "poller", None):
        tasks.append(Poller(agent))
    if config is not None and config.github_token:
        tasks.append(StatusReporter(agent))
    return tasks
