"""No request can starve the API: bodies are refused before they are read, a hanging
git remote holds neither /healthz nor cancel, slow clients are dropped (#21 item 8)."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from agent.api.serving import HEADER_TIMEOUT_S
from tests.reliability.conftest import serve, svc_name  # noqa: F401  (the fixture)
from tests.reliability.served import FINAL, ServedAgent, stage, summary
from tests.security.hanging import hanging_remote

HUGE = 300 * 1024 * 1024


def _send_head(port: int, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head.encode())
    return sock


def _status_of(sock: socket.socket) -> int:
    """The status line of the answer (the body was never sent: the server must not wait)."""
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return 0  # no answer: the server is waiting for the body
    finally:
        sock.close()
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0


@pytest.mark.docker
def test_a_huge_upload_is_refused_before_its_body_is_read(serve) -> None:  # noqa: F811
    agent: ServedAgent = serve()
    unauthenticated = (f"POST /api/v1/services HTTP/1.1\r\nHost: x\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {HUGE}\r\n\r\n{{")
    assert _status_of(_send_head(agent.port, unauthenticated)) == 401
    chunked = ("POST /api/v1/pipelines HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
               "\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer sls_not-a-token\r\n"
               "\r\n1\r\n{\r\n")
    assert _status_of(_send_head(agent.port, chunked)) == 401
    authenticated = unauthenticated.replace("Host: x\r\n",
                                            f"Host: x\r\nAuthorization: Bearer {agent.token}\r\n")
    assert _status_of(_send_head(agent.port, authenticated)) == 413
    with httpx.Client(base_url=agent.url, timeout=10) as client:  # still answering
        assert client.get("/healthz").status_code == 200


@pytest.mark.docker
def test_a_hanging_git_remote_holds_neither_healthz_nor_cancel(
        serve) -> None:  # noqa: F811
    agent: ServedAgent = serve()
    agent.add_pipeline("shop")
    name = svc_name("hangs")
    with hanging_remote() as url:
        agent.add_service(name, "shop", url, unit_test_command="true")
        run = agent.trigger(name, "a" * 40, kind="partial")
        agent.wait_run(run["id"], lambda r: stage(r, "Prepare")["status"] == "in_progress")
        time.sleep(0.5)  # git is connected and waiting for the remote's answer

        # 45 triggers by branch each ask the hanging remote for the branch head.
        def trigger() -> int:
            with agent.client(timeout=60) as client:
                return client.post(f"/api/v1/services/{name}/trigger",
                                   json={"branch": "main"}).status_code

        pool = ThreadPoolExecutor(45)
        answers = [pool.submit(trigger) for _ in range(45)]
        time.sleep(1.0)
        failures = []
        with agent.client(timeout=2) as client:
            for _ in range(10):
                for path in ("/healthz", "/api/v1/runs"):
                    try:
                        if client.get(path).status_code != 200:
                            failures.append(path)
                    except httpx.TimeoutException:
                        failures.append(f"{path} timed out")
                time.sleep(0.2)
        assert failures == [], failures

        agent.call("POST", f"/api/v1/runs/{run['id']}/cancel", 200)
        done = agent.wait_run(run["id"], timeout=2.5)  # git is killed, not waited for
        assert done["status"] == "cancelled", summary(done)
        assert {a.result() for a in answers} <= {504, 502}, [a.result() for a in answers]
        pool.shutdown()
    assert done["status"] in FINAL


@pytest.mark.docker
def test_a_client_that_never_finishes_its_headers_is_disconnected(serve) -> None:  # noqa: F811
    agent: ServedAgent = serve()
    slow = [_send_head(agent.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            for _ in range(200)]
    with agent.client(timeout=5) as client:
        assert client.get("/healthz").status_code == 200  # the others are served meanwhile
    closed = threading.Event()

    def wait_closed(sock: socket.socket) -> None:
        sock.settimeout(HEADER_TIMEOUT_S + 10)
        try:
            if sock.recv(1) == b"":
                closed.set()
        except OSError:
            closed.set()

    wait_closed(slow[0])
    assert closed.is_set(), "a client trickling its headers kept its connection"
    for sock in slow:
        sock.close()

