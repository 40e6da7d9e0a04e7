"""The TUI's HTTP client drops an idle connection before the agent does: a request sent on
a connection the agent closes at that moment fails (ReadError: "agent unreachable"), and
a POST such as a rollback is not retried blindly."""

from __future__ import annotations

from agent.api.serving import KEEP_ALIVE_S
from seamless_tui.client import KEEPALIVE_S, AgentClient


def test_idle_connections_expire_before_the_agent_closes_them() -> None:
    client = AgentClient("http://127.0.0.1:9", "token")
    pool = client._http._transport._pool  # type: ignore[attr-defined]
    assert pool._keepalive_expiry == KEEPALIVE_S < KEEP_ALIVE_S
