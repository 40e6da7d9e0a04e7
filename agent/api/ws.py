"""WebSocket streams: /api/v1/ws/events and /api/v1/ws/runs/{id}/logs.

One code path for history and live (`log_follow.follow_log`, shared with the run
page's server-sent events): subscribe to the bus first, then send the store's
backlog after the client's cursor, then the live batches, skipping ids at or
below the last one sent — so a client that reconnects with its last ULID sees no
gap and no duplicate.

Each client has a bounded queue (its bus subscription) drained by its own
sender; a publisher never waits for a client. A client that falls so far
behind that its queue overflows is sent `{"type":"lagged"}` and closed; it
resumes by cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketState

from agent.api.auth import websocket_token
from agent.api.errors import ApiError
from agent.api.log_follow import follow_log
from agent.bus import Subscription
from store.configs import NotFound
from store.models import DEFAULT_STAGES, ApiToken, Event, LogLine, Role

router = APIRouter(prefix="/api/v1")

LAGGED = '{"type":"lagged"}'
CLOSE_LAGGED = 4008  # "policy": too slow; reconnect with your cursor
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
LAGGED_NOTICE_TIMEOUT_S = 10.0
FIRST_MESSAGE_TIMEOUT_S = 3.0
TOKEN_CHECK_S = 0.4  # a revoked token's streams close within a second


class _JsonCache:
    """Every subscriber gets the same objects from the bus: serialise each once.
    Entries hold the object itself so its id() cannot be reused while cached."""

    def __init__(self, size: int = 512) -> None:
        self._items: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self._size = size

    def get(self, obj: Any, render: Callable[[Any], Any]) -> Any:
        key = id(obj)
        hit = self._items.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = render(obj)
        self._items[key] = (obj, value)
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return value


_events_json = _JsonCache()
_lines_json = _JsonCache()


def _lines_message(lines: list[LogLine]) -> str:
    return '{"lines":[' + ",".join(ln.model_dump_json() for ln in lines) + "]}"


def _render(batch: list[LogLine], stage: str | None) -> str | None:
    lines = batch if stage is None else [ln for ln in batch if ln.stage == stage]
    return _lines_message(lines) if lines else None


def _batch_message(batch: list[LogLine], stage: str | None) -> str | None:
    """The message for one live batch, rendered once and shared by every client that
    watches the same stage: fan-out then costs each client only its `send`."""
    by_stage = _lines_json.get(batch, lambda b: {})
    if stage not in by_stage:
        by_stage[stage] = _render(batch, stage)
    return by_stage[stage]


async def _accept(ws: WebSocket) -> None:
    if ws.application_state == WebSocketState.CONNECTING:
        await ws.accept()


async def _first_message_token(ws: WebSocket) -> str | None:
    """A client that sent no header and no query token sends it as its first message:
    `{"token": "..."}` (or the bare token), within FIRST_MESSAGE_TIMEOUT_S."""
    await ws.accept()
    try:
        text = await asyncio.wait_for(ws.receive_text(), FIRST_MESSAGE_TIMEOUT_S)
    except (TimeoutError, WebSocketDisconnect, RuntimeError, KeyError):
        return None
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text).get("token")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None
    return text or None


async def _authorize(ws: WebSocket) -> ApiToken | None:
    token = websocket_token(ws)
    if token is None:
        token = await _first_message_token(ws)
    try:
        return ws.app.state.auth.check(token, Role.viewer)  # type: ignore[no-any-return]
    except ApiError as exc:
        with contextlib.suppress(Exception):
            await _accept(ws)
            await ws.close(code=CLOSE_UNAUTHORIZED if exc.status == 401 else 4403,
                           reason=str(exc.detail)[:120])
        return None


async def _token_watch(ws: WebSocket, token: ApiToken) -> str:
    """Return once the stream's token is revoked or its role changed (the reason)."""
    store = ws.app.state.agent.store
    while True:
        await asyncio.sleep(TOKEN_CHECK_S)
        current = store.get_token(token.id)  # a primary-key read: microseconds
        if current is None or current.revoked:
            return "token revoked"
        if current.role != token.role:
            return "token role changed: reconnect"


async def _pump(ws: WebSocket, sub: Subscription, sender: Callable[[], Awaitable[None]],
                token: ApiToken) -> None:
    """Run the sender until the client leaves or lags, or its token is revoked; tell a
    lagging or revoked client why."""

    async def receiver() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass

    async def lag_watch() -> None:
        # The sender may be stuck in send() to a stalled client: watch from outside it.
        while not sub.lagged:
            await asyncio.sleep(0.1)

    tasks: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(t()) for t in (sender, receiver, lag_watch)]
    tasks.append(asyncio.ensure_future(_token_watch(ws, token)))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        sub.close()
    if tasks[3] in done:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=CLOSE_UNAUTHORIZED, reason=tasks[3].result()),
                                   timeout=2.0)
    elif tasks[2] in done or sub.lagged:
        # A slow but reading client gets told; one that stopped reading is just dropped.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.send_text(LAGGED), timeout=LAGGED_NOTICE_TIMEOUT_S)
            await asyncio.wait_for(ws.close(code=CLOSE_LAGGED, reason="lagged"), timeout=2.0)
    elif tasks[0] in done and tasks[0].exception() is not None:
        raise tasks[0].exception()  # type: ignore[misc]


@router.websocket("/ws/events")
async def events(ws: WebSocket) -> None:
    token = await _authorize(ws)
    if token is None:
        return
    agent = ws.app.state.agent
    sub = agent.bus.subscribe_events(maxsize=ws.app.state.ws_queue_events)
    await _accept(ws)

    async def sender() -> None:
        while not sub.lagged:
            event: Event = await sub.get()
            await ws.send_text(_events_json.get(event, lambda e: e.model_dump_json()))

    await _pump(ws, sub, sender, token)


@router.websocket("/ws/runs/{run_id}/logs")
async def run_logs(ws: WebSocket, run_id: int) -> None:
    token = await _authorize(ws)
    if token is None:
        return
    agent = ws.app.state.agent
    after = ws.query_params.get("after") or None
    stage = ws.query_params.get("stage") or None
    # Subscribe before reading the backlog: a line committed in between is in both, and
    # the cursor drops the copy; subscribing after would lose it.
    sub = agent.bus.subscribe_logs(run_id, maxsize=ws.app.state.ws_queue_logs)
    await _accept(ws)
    problem = None
    if after is not None and not _ULID.match(after):
        problem = (CLOSE_BAD_REQUEST, "after must be a ULID")
    elif stage is not None and stage not in DEFAULT_STAGES:
        problem = (CLOSE_BAD_REQUEST, f"unknown stage {stage!r}")
    else:
        try:
            await run_in_threadpool(agent.store.get_run, run_id)
        except NotFound:
            problem = (CLOSE_NOT_FOUND, f"no run with id {run_id}")
    if problem:
        sub.close()
        await ws.close(code=problem[0], reason=problem[1])
        return

    async def sender() -> None:
        async for lines, shared in follow_log(agent.store, sub, run_id, stage, after):
            message = _batch_message(lines, stage) if shared else _render(lines, stage)
            if message is not None:
                await ws.send_text(message)

    await _pump(ws, sub, sender, token)
