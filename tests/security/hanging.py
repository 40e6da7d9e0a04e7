"""A remote that accepts connections and never answers (git over HTTP or git://),
on loopback, for as long as the context lasts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hanging_remote(max_clients: int = 512) -> Iterator[str]:
    """Yields the URL of a repository whose server reads requests and never replies."""
    server = socket.create_server(("127.0.0.1", 0), backlog=max_clients)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if len(held) < max_clients:
                held.append(conn)  # kept open, never answered
            else:
                conn.close()

    thread = threading.Thread(target=accept, name="hanging-remote", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hangs.git"
    finally:
        stop.set()
        thread.join(2)
        server.close()
        for conn in held:
            conn.close()
