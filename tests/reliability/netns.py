"""A network namespace of the test's own (`ip netns`), and ways into it from the test.

Fault tests run a second Docker engine and the agent under test inside one, so every
published port, bridge and iptables rule they make lives in the namespace and never on
the host's (a second dockerd in the host's namespace deleted the host engine's docker0).

From the test's side: `command(args)` runs a program inside (`nsenter --net`: only the
network namespace changes, the filesystem and cgroups stay the host's); `call(fn)` runs
a function in a thread that entered it; `forward(port)` makes 127.0.0.1:port of the host
reach 127.0.0.1:port inside, so the test's HTTP clients and ServedAgent work unchanged.
Needs root (CAP_SYS_ADMIN), as `make test` runs on CI.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tests.reliability.socket_cut import pipe

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _enter(path: str) -> None:
    """Move the calling thread (only it) into the namespace at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Netns:
    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"sl-{uuid.uuid4().hex[:10]}"
        self._inside: ThreadPoolExecutor | None = None
        self._forwards: dict[int, _Forward] = {}

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def create(self) -> Netns:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True,
                       capture_output=True)
        self._inside = ThreadPoolExecutor(16, thread_name_prefix=f"netns-{self.name}",
                                          initializer=_enter, initargs=(self.path,))
        return self

    def delete(self) -> None:
        for forward in self._forwards.values():
            forward.close()
        self._forwards.clear()
        if self._inside is not None:
            self._inside.shutdown(wait=False, cancel_futures=True)
            self._inside = None
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)

    def command(self, args: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.path}", *args]

    def call(self, fn: Callable[..., T], *args: object, timeout: float = 30) -> T:
        assert self._inside is not None, "create() the namespace first"
        return self._inside.submit(fn, *args).result(timeout)

    def connect(self, port: int, timeout: float = 5) -> socket.socket:
        """A TCP connection to 127.0.0.1:port inside the namespace."""
        return self.call(socket.create_connection, ("127.0.0.1", port), timeout,
                         timeout=timeout + 5)

    def forward(self, port: int) -> None:
        """127.0.0.1:port on the host reaches 127.0.0.1:port inside (idempotent)."""
        if port not in self._forwards:
            self._forwards[port] = _Forward(self, port)


class _Forward:
    """Accepts on the host's loopback; each connection gets its own connection inside.
    Nothing listening inside: the client's connection is closed at once (a failed
    request, as it would be without the forward)."""

    def __init__(self, ns: Netns, port: int) -> None:
        self.ns, self.port = ns, port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(256)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True,
                         name=f"forward-{port}").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = self.ns.connect(self.port)
        except Exception:
            client.close()
            return
        with self._lock:
            self._open |= {client, upstream}
        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join(120)
        with self._lock:
            self._open -= {client, upstream}
        client.close()
        upstream.close()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

