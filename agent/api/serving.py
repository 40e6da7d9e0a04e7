"""How the agent's HTTP server is set up to survive slow and numerous clients.

- A client gets `HEADER_TIMEOUT_S` to send a request's headers (the first one,
  and each next one on a kept-alive connection); then the connection is closed.
  uvicorn has no such limit of its own: 1,100 clients trickling headers held
  every file descriptor the agent had.
- At most `MAX_CONNECTIONS` open connections get served; past it uvicorn answers
  503 (and the log limiter keeps that warning from flooding the log).
- The process raises its soft open-file limit to the hard one (the systemd unit
  sets `LimitNOFILE`), so the connection bound is reached before EMFILE is.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 2000
KEEP_ALIVE_S = 5


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers never finish."""

    _header_timer: asyncio.TimerHandle | None = None
    _waiting_after: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._waiting_after = self.cycle  # a new cycle appears once the headers are in
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is self._waiting_after and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is not None and self.cycle is not self._waiting_after:
            self._disarm_header_timer()

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._disarm_header_timer()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._disarm_header_timer()
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def raise_open_file_limit(wanted: int = 65536) -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (at most `wanted`); the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """The uvicorn config every way of serving the agent uses."""
    files = raise_open_file_limit()
    settings: dict[str, Any] = {
        "ws": "websockets-sansio",
        # Compression is per client: with 50 log watchers it would cost 50x the CPU of
        # the stream itself. Log traffic is local or over an SSH tunnel that compresses.
        "ws_per_message_deflate": False,
        "http": HeaderTimeoutProtocol,
        "limit_concurrency": max(64, min(MAX_CONNECTIONS, files - 200)),
        "timeout_keep_alive": KEEP_ALIVE_S,
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
        **options,
    }
    return uvicorn.Config(app, host=host, port=port, **settings)
