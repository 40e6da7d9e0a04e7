"""No request can make the agent read much for nothing.

`BodyGuard` runs before routing: a request to the REST API that carries a body
(POST, PUT, PATCH, DELETE) must show a known bearer token first — without one
it is answered 401 before a byte of its body is read — and every body is
capped (`API_MAX_BODY`; webhooks cap theirs at GitHub's 25 MB and verify the
signature). A declared length over the cap is answered 413 at once; a chunked
body is cut off at the cap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.api.errors import error_response

API_MAX_BODY = 1024 * 1024  # a service config is a few KB
WEBHOOK_MAX_BODY = 25 * 1024 * 1024
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
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._too_large(cap, scope, receive, send)

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
