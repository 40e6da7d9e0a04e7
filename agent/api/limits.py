"""No request can make the agent read much for nothing.

`BodyGuard` runs before routing: a request to the REST API that carries a body
(POST, PUT, PATCH, DELETE) must show a known bearer token first — without one
it is answered 401 before a byte of its body is read — and every body is
capped (`API_MAX_BODY`; webhooks cap theirs at GitHub's 25 MB and verify the
signature). A declared length over the cap is answered 413 at once; a chunked
body is cut off at the cap. Webhook bodies (which only their signature can
authenticate) are read at most `WEBHOOK_SLOTS` at a time, each within
`WEBHOOK_READ_S`: a flood of unsigned uploads costs at most a few buffers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from agent.api.errors import error_response

API_MAX_BODY = 1024 * 1024  # a service config is a few KB
WEBHOOK_MAX_BODY = 25 * 1024 * 1024
WEBHOOK_SLOTS = 4
WEBHOOK_READ_S = 30.0
_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Scope = dict[str, Any]


class _TooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return ""


class BodyGuard:
    def __init__(self, app: Any, authenticate: Callable[[str], Any]) -> None:
        self.app = app
        self.authenticate = authenticate
        self._webhook_slots: asyncio.Semaphore | None = None  # made on the serving loop

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/webhooks/"):
            cap = WEBHOOK_MAX_BODY
        else:
            cap = API_MAX_BODY
            if path.startswith("/api/") and not self._known_token(scope):
                await error_response(401, "unauthorized", "send 'Authorization: Bearer <token>'"
                                     " (a known, unrevoked token)")(scope, receive, send)
                return
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > cap:
            await self._too_large(cap, scope, receive, send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _TooLarge
            return message

        async def tracked_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if cap == WEBHOOK_MAX_BODY:
                if self._webhook_slots is None:
                    self._webhook_slots = asyncio.Semaphore(WEBHOOK_SLOTS)
                async with asyncio.timeout(WEBHOOK_READ_S), self._webhook_slots:
                    await self.app(scope, counted_receive, tracked_send)
            else:
                await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._too_large(cap, scope, receive, send)
        except TimeoutError:
            if not started:
                await error_response(408, "request_timeout", "the webhook body did not arrive"
                                     f" within {WEBHOOK_READ_S:g} s")(scope, receive, send)

    def _known_token(self, scope: Scope) -> bool:
        header = _header(scope, b"authorization")
        if not header.lower().startswith("bearer "):
            return False
        # A primary-key lookup of the token's hash: microseconds, fine on the loop.
        return self.authenticate(header[7:].strip()) is not None

    @staticmethod
    async def _too_large(cap: int, scope: Scope, receive: Any, send: Any) -> None:
        await error_response(413, "payload_too_large", f"request bodies are capped at"
                             f" {cap // (1024 * 1024)} MB here")(scope, receive, send)
