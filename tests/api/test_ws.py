"""WebSocket streams against a real server: resume without gap or duplicate, lagging
clients are told and dropped while the agent keeps answering, events are typed JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from store.db import now
from store.ids import new_ulid
from store.models import LogLine, LogStream, Role, RunKind, Trigger
from tests.api.conftest import LiveApi, add_service, serve_agent


def write_lines(api: LiveApi, run_id: int, count: int, *, batch: int = 50, pause: float = 0.002,
                stage: str = "Unit Test", width: int = 20) -> list[str]:
    """What the log writer does: commit a batch, then publish it."""
    store, bus = api.agent.store, api.agent.bus
    ids = []
    for start in range(0, count, batch):
        lines = [LogLine(id=new_ulid(), run_id=run_id, stage=stage, stream=LogStream.stdout,
                         text=f"{i:06d} ".ljust(width, "x"), ts=now())
                 for i in range(start, min(start + batch, count))]
        store.insert_log_lines(lines)
        bus.publish_logs(run_id, lines)
        ids += [ln.id for ln in lines]
        if pause:
            time.sleep(pause)
    return ids


def new_run(api: LiveApi) -> int:
    service = add_service(api.agent.store)
    return api.agent.store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full,
                                      sha="abcdef1").id


def logs_url(api: LiveApi, run_id: int, after: str | None = None) -> str:
    query = f"?token={api.tokens[Role.viewer]}" + (f"&after={after}" if after else "")
    return f"{api.ws_url}/api/v1/ws/runs/{run_id}/logs{query}"


async def test_log_stream_resumes_after_forced_disconnect_without_gap_or_duplicate(
        api: LiveApi) -> None:
    run_id = new_run(api)
    early = write_lines(api, run_id, 500, pause=0)  # backlog before anyone connects
    written: list[str] = []
    writer = threading.Thread(target=lambda: written.extend(write_lines(api, run_id, 4000)))
    received: list[str] = []
    async with connect(logs_url(api, run_id)) as ws:
        writer.start()
        while len(received) < 1500:
            received += [ln["id"] for ln in json.loads(await ws.recv())["lines"]]
        ws.transport.abort()  # no close handshake: what a dropped SSH tunnel looks like
    await asyncio.sleep(0.2)
    async with connect(logs_url(api, run_id, after=received[-1])) as ws:
        while len(received) < 4500:
            received += [ln["id"] for ln in json.loads(await asyncio.wait_for(ws.recv(), 10))
                         ["lines"]]
    writer.join()
    assert received == early + written


async def test_backlog_only_sends_lines_after_the_cursor_for_the_stage(api: LiveApi) -> None:
    run_id = new_run(api)
    ids = write_lines(api, run_id, 30, batch=10, pause=0)
    write_lines(api, run_id, 5, stage="Build", pause=0)
    url = logs_url(api, run_id, after=ids[9]) + "&stage=Unit%20Test"
    async with connect(url) as ws:
        first = json.loads(await ws.recv())["lines"]
    assert [ln["id"] for ln in first] == ids[10:]


class StalledClient:
    """A WebSocket client that stops reading: sans-io protocol over a socket with a small
    receive buffer, so the server's writes back up at once (library clients keep reading
    into their own buffers)."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        self.proto.send_request(self.proto.connect())
        self.sock.sendall(b"".join(self.proto.data_to_send()))

    def read_all(self, timeout: float = 30) -> list[Frame]:
        """Read until the server closes; every data frame received."""
        frames = []
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(1 << 20)
            if data:
                self.proto.receive_data(data)
            else:
                self.proto.receive_eof()
            frames += [e for e in self.proto.events_received() if isinstance(e, Frame)]
            with contextlib.suppress(OSError):  # answer the close handshake
                self.sock.sendall(b"".join(self.proto.data_to_send()))
            if not data:
                return frames


async def test_slow_client_is_told_it_lagged_and_agent_stays_responsive(tmp_path: Path) -> None:
    with serve_agent(tmp_path, ws_queue_logs=4) as api:
        run_id = new_run(api)
        total = 30_000  # ~9 MB: more than the stalled socket, its queue, and the buffers
        path = logs_url(api, run_id).removeprefix(api.ws_url)
        slow = StalledClient(api.server.port, path)
        async with connect(logs_url(api, run_id), max_size=None) as fast:
            writer = threading.Thread(target=write_lines, args=(api, run_id, total),
                                      kwargs={"batch": 500, "pause": 0.001, "width": 300})
            writer.start()

            async def drain_fast() -> int:
                n = 0
                while n < total:
                    n += len(json.loads(await fast.recv())["lines"])
                return n

            fast_task = asyncio.create_task(drain_fast())
            async with httpx.AsyncClient(base_url=api.url) as client:
                while writer.is_alive():  # the stalled client must not stall the agent
                    # The bound detects a hang (a blocked event loop), not a speed figure.
                    assert (await client.get("/healthz", timeout=30)).status_code == 200
                    await asyncio.sleep(0.1)
            assert await asyncio.wait_for(fast_task, 30) == total
        frames = await asyncio.to_thread(slow.read_all)
        texts = [json.loads(bytes(f.data)) for f in frames if f.opcode is Opcode.TEXT]
        got = [ln["id"] for msg in texts for ln in msg.get("lines", [])]
        closes = [f for f in frames if f.opcode is Opcode.CLOSE]
        assert 0 < len(got) < total and len(set(got)) == len(got)
        assert texts[-1] == {"type": "lagged"}
        assert closes and Close.parse(closes[0].data).code == 4008
        # It resumes by cursor and gets exactly the rest.
        rest: list[str] = []
        async with connect(logs_url(api, run_id, after=got[-1]), max_size=None) as ws:
            while len(got) + len(rest) < total:
                rest += [ln["id"] for ln in json.loads(await asyncio.wait_for(ws.recv(), 10))
                         ["lines"]]
        assert len(set(got + rest)) == total == len(got + rest)


async def test_events_stream_typed_run_changes(api: LiveApi) -> None:
    add_service(api.agent.store)
    url = f"{api.ws_url}/api/v1/ws/events"
    headers = {"Authorization": f"Bearer {api.tokens[Role.viewer]}"}
    async with connect(url, additional_headers=headers) as ws:
        async with httpx.AsyncClient(base_url=api.url, headers={
                "Authorization": f"Bearer {api.tokens[Role.deployer]}"}) as client:
            r = await client.post("/api/v1/services/payments/trigger", json={"sha": "abcdef1"})
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert event["type"] == "run" and event["run"]["id"] == r.json()["id"]
    assert event["run"]["status"] == "queued"


async def test_websocket_without_token_is_closed_4401(api: LiveApi) -> None:
    async with connect(f"{api.ws_url}/api/v1/ws/events") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4401


async def test_log_stream_of_unknown_run_is_closed_4404(api: LiveApi) -> None:
    async with connect(logs_url(api, 424242)) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4404
