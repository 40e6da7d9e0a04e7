"""Bearer tokens with roles (viewer < deployer < admin) and the audit trail."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.api.errors import ApiError
from store.models import ApiToken, Role
from store.store import Store

bearer = HTTPBearer(auto_error=False, description="an API token: `seamless-agent token create`")

# `last_used_at` is a convenience, not an audit record: write it at most once a minute
# per token so reads never queue behind the single SQLite writer.
_TOUCH_EVERY_S = 60.0


class Authenticator:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._touched: dict[int, float] = {}

    def check(self, token: str | None, needed: Role) -> ApiToken:
        if not token:
            raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'")
        info = self.store.authenticate(token)
        if info is None:
            raise ApiError(401, "unauthorized", "unknown or revoked token")
        if not info.role.allows(needed):
            raise ApiError(403, "forbidden",
                           f"needs role {needed.value}; token {info.name!r} is {info.role.value}")
        last = self._touched.get(info.id, 0.0)
        if time.monotonic() - last > _TOUCH_EVERY_S:
            self._touched[info.id] = time.monotonic()
            self.store.touch_token(info.id)
        return info


def require(role: Role) -> Callable[..., ApiToken]:
    """A dependency that answers 401/403 unless the bearer token has at least `role`."""

    def dependency(request: Request,
                   creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiToken:
        auth: Authenticator = request.app.state.auth
        return auth.check(creds.credentials if creds else None, role)

    dependency.__name__ = f"require_{role.value}"
    return dependency


def websocket_token(ws: WebSocket) -> str | None:
    """Header first; `?token=` for clients (browsers) that cannot set headers."""
    header = ws.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return ws.query_params.get("token")


def audit(request: Request, token: ApiToken, action: str, target: str,
          detail: str | None = None) -> None:
    request.app.state.agent.store.audit(token.name, action, target, detail)


Viewer = Annotated[ApiToken, Depends(require(Role.viewer))]
Deployer = Annotated[ApiToken, Depends(require(Role.deployer))]
Admin = Annotated[ApiToken, Depends(require(Role.admin))]
