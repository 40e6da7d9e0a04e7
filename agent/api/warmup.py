"""What the first requests would otherwise pay, paid at start instead.

FastAPI builds each included router's table of routes the first time a request walks
past it: the first webhook (its router comes late) paid for every router's table, tens
of milliseconds on a quiet machine, and GitHub's first delivery after a restart was the
slowest answer. The repository index a webhook reads (every service, validated) is
built here too, not by the first delivery.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message

from agent.triggers.github import RepoIndex

log = logging.getLogger(__name__)

# No route has this path: the request walks every router (building each one's table)
# and ends in a 404 that leaves the app.
WARM_UP_PATH = "/api/v1/_warm-up"


async def warm_up(app: ASGIApp, repo_index: RepoIndex) -> None:
    started = time.perf_counter()
    await app(_scope(), _receive, _discard)
    await run_in_threadpool(repo_index.refresh)
    log.debug("routes and the repository index built in %.1f ms",
              (time.perf_counter() - started) * 1000)


def _scope() -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": WARM_UP_PATH,
            "raw_path": WARM_UP_PATH.encode(), "root_path": "", "query_string": b"",
            "headers": [], "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0),
            "state": {}}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    pass
