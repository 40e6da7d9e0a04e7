"""Every JSON body the API sends, and every HTML page, passes the agent's secret masker.

Routes already answer with redacted models; this is the net under them, so a
secret that reached any stored text (an error, a health answer, a commit
message) still leaves the agent as the mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


class MaskJsonBodies:
    def __init__(self, app: Any, mask: Callable[[str], str]) -> None:
        self.app = app
        self.mask = mask

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def masked_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                kind = headers.get(b"content-type", b"")
                if b"json" not in kind and b"text/html" not in kind:
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            text = body.decode("utf-8", "replace")
            masked = self.mask(text)
            if masked != text:
                body = masked.encode()
            kept = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            kept.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": kept})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, masked_send)
