"""Tokens and open streams: a revoked token stops streaming at once, and a token never
lands in the server's log (#21 items 6 and 7)."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.reliability.conftest import serve, svc_name  # noqa: F401  (the fixture)
from tests.reliability.served import ServedAgent


def _viewer(agent: ServedAgent) -> tuple[int, str]:
    made = agent.call("POST", "/api/v1/tokens", 201, json={"name": "watcher", "role": "viewer"})
    return made["info"]["id"], made["token"]


def _closed_within(ws: ClientConnection, seconds: float) -> int | None:
    """The close code if the server closed the stream within `seconds`, else None."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else -1
    except TimeoutError:
        return None
    return None


@pytest.mark.docker
def test_revoking_a_token_closes_its_open_streams_within_a_second(
        serve, sample_repo) -> None:  # noqa: F811
    agent: ServedAgent = serve()
    repo = sample_repo("revoke")
    agent.add_pipeline("shop")
    name = svc_name("revoke")
    agent.add_service(name, "shop", repo.url, unit_test_command="sleep 30")
    run = agent.trigger(name, repo.head_sha, kind="partial")
    token_id, token = _viewer(agent)
    auth = {"Authorization": f"Bearer {token}"}
    base = f"ws://127.0.0.1:{agent.port}/api/v1/ws"
    with connect(f"{base}/events", additional_headers=auth) as events, \
            connect(f"{base}/runs/{run['id']}/logs", additional_headers=auth) as logs:
        assert _closed_within(events, 0.5) is None  # open and streaming
        agent.call("DELETE", f"/api/v1/tokens/{token_id}", 204)
        assert _closed_within(events, 1.0) == 4401
        assert _closed_within(logs, 1.0) == 4401
    agent.call("POST", f"/api/v1/runs/{run['id']}/cancel", 200)


@pytest.mark.docker
def test_a_websocket_token_never_appears_in_the_agent_log(serve) -> None:  # noqa: F811
    agent: ServedAgent = serve()
    _, token = _viewer(agent)
    base = f"ws://127.0.0.1:{agent.port}/api/v1/ws/events"
    with connect(f"{base}?token={token}") as ws:  # a browser's way
        assert _closed_within(ws, 0.3) is None
    with connect(base) as ws:  # the token as the first message instead of the URL
        ws.send(json.dumps({"token": token}))
        assert _closed_within(ws, 0.3) is None
    with connect(base) as ws:
        ws.send(json.dumps({"token": "sls_wrong"}))
        assert _closed_within(ws, 2.0) == 4401
    agent.stop()
    log = agent.own_log()
    assert "WebSocket /api/v1/ws/events" in log, log[-2000:]  # the access log is on
    assert token not in log and token[:20] not in log, log[-2000:]
