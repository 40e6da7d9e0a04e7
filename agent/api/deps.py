"""Small shared helpers for the route modules."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from store.db import now
from store.models import Event, Service, redact_service


def agent_of(request: Request) -> Any:
    return request.app.state.agent


def publish_service(request: Request, service: Service | None, **data: Any) -> None:
    """Tell /ws/events watchers about a service change (secrets masked)."""
    agent_of(request).bus.publish_event(Event(
        type="service", ts=now(), service=redact_service(service) if service else None,
        data=data))
