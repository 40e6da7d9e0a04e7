"""A service's secret, printed every way a build tool might, is never stored, served,
streamed or logged by the agent."""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from websockets.sync.client import connect

from tests.reliability.conftest import svc_name
from tests.reliability.served import ServedAgent, summary

SECRET = 'Tr0ub4dor-"quoted"/path+plus&amp:colon'
# The stage derives every form itself: the command (which the API shows) holds none.
LEAK = "; ".join([
    'echo "plain: $DB_PASSWORD"',
    'echo "stderr: $DB_PASSWORD" >&2',
    'printf "b64: "; printf %s "$DB_PASSWORD" | base64',
    'printf "b64-offset: "; printf "x%s" "$DB_PASSWORD" | base64',
    'printf "url: "; printf %s "$DB_PASSWORD" | sed \'s/"/%22/g; s|/|%2F|g; s/+/%2B/g; '
    's/&/%26/g; s/;/%3B/g; s/:/%3A/g\'; echo',
    'printf "json: {\\"pw\\": \\""; printf %s "$DB_PASSWORD" | sed \'s/"/\\\\"/g\'; '
    'echo \'"}\'',
    'printf "split: %s" "${DB_PASSWORD%%/*}"; sleep 0.4; echo "/${DB_PASSWORD#*/}"',
    'echo "done"'])


def forms() -> set[str]:
    raw = SECRET.encode()
    return {SECRET, quote(SECRET, safe=""), quote_plus(SECRET), json.dumps(SECRET)[1:-1],
            base64.b64encode(raw).decode().rstrip("="),
            base64.b64encode(b"x" + raw).decode()[4:-4], SECRET[:12], SECRET[-12:]}


def _assert_clean(where: str, text: str) -> None:
    for form in forms():
        assert form not in text, f"secret form {form!r} leaked in {where}"


@pytest.mark.slow
def test_a_secret_never_leaves_the_agent_in_any_encoding(serve, sample_repo) -> None:
    repo = sample_repo("secretive")
    agent: ServedAgent = serve()
    agent.add_pipeline("shop")
    name = svc_name("secret")
    created = agent.add_service(name, "shop", repo.url, unit_test_command=LEAK,
                                secrets={"DB_PASSWORD": SECRET})
    _assert_clean("POST /services answer", json.dumps(created))
    run = agent.trigger(name, repo.head_sha, kind="partial")
    done = agent.wait_run(run["id"], timeout=90)
    assert done["status"] == "success", summary(done)

    lines = agent.log_lines(run["id"], "Unit Test")
    assert "done" in lines and any(line.startswith("split: ") for line in lines), lines
    assert sum("********" in line for line in lines) >= 7, lines  # every form was masked

    conn = sqlite3.connect(agent.data_dir / "seamless.db")
    try:
        stored = "\n".join(r[0] for r in conn.execute("SELECT text FROM log_lines"))
    finally:
        conn.close()
    _assert_clean("stored logs", stored)

    with agent.client() as api:
        for path in ("/api/v1/services", f"/api/v1/services/{name}", "/api/v1/runs",
                     f"/api/v1/runs/{run['id']}", f"/api/v1/runs/{run['id']}/logs?limit=1000",
                     "/api/v1/overview", "/api/v1/audit", "/metrics"):
            resp = api.get(path)
            assert resp.status_code == 200, (path, resp.status_code)
            _assert_clean(f"GET {path}", resp.text)

    ws_url = f"ws://127.0.0.1:{agent.port}/api/v1/ws/runs/{run['id']}/logs?token={agent.token}"
    streamed: list[dict[str, Any]] = []
    with connect(ws_url, open_timeout=10) as ws:
        while not any("done" == line["text"] for line in streamed):
            streamed.extend(json.loads(ws.recv(timeout=10))["lines"])
    _assert_clean("the WebSocket log stream", json.dumps([line["text"] for line in streamed]))

    agent.stop()
    own_log = agent.own_log()
    assert "GET /api/v1/runs" in own_log  # it is the log of this agent, access lines included
    _assert_clean("the agent's own log", own_log)
