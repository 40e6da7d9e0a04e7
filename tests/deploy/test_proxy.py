"""The stable front: switching backends, draining connections still on the old one."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest

from agent.deploy.proxy import Fronts
from tests.helpers import free_port


class Backend:
    """A TCP server answering each line with `<name>:<line>`; keeps connections open."""

    def __init__(self, name: str) -> None:
        label = name.encode()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    self.wfile.write(label + b":" + line)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = ("127.0.0.1", self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends():
    blue, green = Backend("blue"), Backend("green")
    yield blue, green
    blue.close()
    green.close()


@pytest.fixture
def fronts():
    f = Fronts()
    yield f
    f.close_all()


def ask(conn: socket.socket, text: str) -> str:
    conn.sendall(text.encode() + b"\n")
    return conn.makefile().readline().strip()


def test_switch_sends_new_connections_to_the_new_backend_and_keeps_open_ones(
        fronts, backends):
    blue, green = backends
    port = free_port()
    fronts.ensure("svc", "127.0.0.1", port, blue.address)
    with socket.create_connection(("127.0.0.1", port)) as old:
        assert ask(old, "hi") == "blue:hi"
        assert fronts.switch("svc", green.address) == blue.address
        with socket.create_connection(("127.0.0.1", port)) as new:
            assert ask(new, "hi") == "green:hi"
        assert ask(old, "still") == "blue:still"  # in-flight connection kept its backend
        assert fronts.drain("svc", blue.address, timeout_s=0.2) == 1
    time.sleep(0.1)
    assert fronts.drain("svc", blue.address, timeout_s=2) == 0


def test_a_front_whose_backend_is_gone_closes_the_client_connection(fronts):
    port = free_port()
    fronts.ensure("svc", "127.0.0.1", port, ("127.0.0.1", free_port()))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"hello\n")
        assert conn.recv(10) == b""


def test_a_taken_port_is_reported(fronts, backends):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            fronts.ensure("svc", "127.0.0.1", taken.getsockname()[1], backends[0].address)
