"""Reading a container's log stream fast, with stdout/stderr kept apart.

docker-py's `logs(stream=True)` reads each multiplexed frame with two small
reads and drops the stream type. We read the HTTP body in large blocks and
split the frames ourselves (8-byte header: stream type, 3 zero bytes, big-endian
length), which is several times cheaper per line and keeps stderr as stderr.

With `timestamps=1` each frame starts with docker's RFC 3339 nano stamp, so a
re-attach can ask for the lines after the last stored one.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import docker

from agent.engine.logsink import docker_ts_to_iso
from agent.executors.base import StageLog
from store.models import LogStream

_HEADER = struct.Struct(">BxxxL")
# Stream name by the frame header's type byte (a tuple index beats dict.get per frame).
_STREAM_NAMES = tuple("stderr" if kind == 2 else "stdout" for kind in range(256))
READ_SIZE = 256 * 1024

Frame = tuple[str, str, bytes]  # (stream, ts-iso, payload)


class ContainerLogStream:
    """An open GET /containers/{id}/logs: `blocks()` yields the body, `close()` stops it
    (even while another thread is blocked reading)."""

    def __init__(self, sock: socket.socket | None, blocks: Iterator[bytes],
                 response: Any = None) -> None:
        self._sock = sock
        self._blocks = blocks
        self._response = response

    def blocks(self) -> Iterator[bytes]:
        return self._blocks

    def close(self) -> None:
        for target in (self._sock, _response_socket(self._response)):
            if target is not None:
                try:  # closing a file does not wake a blocked recv(); shutting down does
                    target.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                target.close()
        if self._response is not None:
            self._response.close()


def open_log_stream(api: Any, container_id: str, *, follow: bool,
                    since: float | None = None) -> ContainerLogStream:
    """Open the multiplexed, timestamped log stream of a container."""
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1,
                              "follow": 1 if follow else 0, "tail": "all"}
    if since is not None:
        params["since"] = f"{since:.6f}"
    url = api._url("/containers/{0}/logs", container_id)
    socket_path = getattr(api.get_adapter(url), "socket_path", None)
    if socket_path:
        return _open_unix(socket_path, url, params)
    response = api._get(url, params=params, stream=True)
    api._raise_for_status(response)
    if follow:  # a quiet stage must not hit the client's read timeout
        api._disable_socket_timeout(api._get_raw_response_socket(response))
    return ContainerLogStream(None, _body_blocks(response), response)


def _open_unix(socket_path: str, url: str, params: dict[str, Any]) -> ContainerLogStream:
    """HTTP/1.0 straight over the engine's unix socket. Over HTTP/1.1 dockerd sends
    every frame as its own chunk and reading through http.client costs a call per log
    line; an HTTP/1.0 body is the bare frame stream, read here in 256 KiB blocks."""
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(socket_path)
    sock.sendall(f"GET {path}?{urlencode(params)} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        block = sock.recv(65536)
        if not block:
            break
        head += block
    header, _, rest = head.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1]) if header.startswith(b"HTTP/") else 0
    if status != 200:
        body = rest
        while block := sock.recv(65536):
            body += block
        sock.close()
        message = body.decode("utf-8", "replace").strip()
        if status == 404:
            raise docker.errors.NotFound(message)
        raise docker.errors.APIError(f"{status} logs of the container: {message}")
    sock.settimeout(None)  # a quiet stage may print nothing for a long time

    def blocks() -> Iterator[bytes]:
        if rest:
            yield rest
        buf = bytearray(READ_SIZE)
        view = memoryview(buf)
        while True:
            try:
                size = sock.recv_into(buf)
            except OSError:
                return
            if not size:
                return
            yield bytes(view[:size])

    return ContainerLogStream(sock, blocks())


def _response_socket(response: Any) -> socket.socket | None:
    try:
        return response.raw._fp.fp.raw._sock  # type: ignore[no-any-return]
    except AttributeError:
        return None


def _body_blocks(response: Any) -> Iterator[bytes]:
    """The response body in large blocks. Docker flushes every frame as its own HTTP
    chunk; reading through http.client would cost one read call per log line, so we
    read the socket's buffered file in big blocks and undo the chunking here."""
    fp = response.raw._fp  # http.client.HTTPResponse
    read = fp.fp.read1
    if not getattr(fp, "chunked", False):
        while block := read(READ_SIZE):
            yield block
        return
    buf, pos, need, crlf = b"", 0, 0, False
    while True:
        out: list[bytes] = []
        while True:
            if need:
                take = min(need, len(buf) - pos)
                if take <= 0:
                    break
                out.append(buf[pos:pos + take])
                pos += take
                need -= take
                if need:
                    break
                crlf = True
            if crlf:
                if len(buf) - pos < 2:
                    break
                pos += 2
                crlf = False
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            pos = eol + 2
            if size == 0:  # the last chunk: the body is complete
                if out:
                    yield b"".join(out)
                return
            need = size
        if out:
            yield b"".join(out)
        block = read(READ_SIZE)
        if not block:
            return
        buf = buf[pos:] + block
        pos = 0


def iter_frame_batches(stream: ContainerLogStream) -> Iterator[list[Frame]]:
    """Yield lists of (stream, ts-iso, payload) frames, one list per block read."""
    unpack = _HEADER.unpack_from
    names = _STREAM_NAMES
    to_iso = docker_ts_to_iso
    buf = b""
    for block in stream.blocks():
        buf = buf + block if buf else block
        frames: list[Frame] = []
        append = frames.append
        pos, size = 0, len(buf)
        while pos + 8 <= size:
            kind, length = unpack(buf, pos)
            end = pos + 8 + length
            if end > size:
                break
            if length > 31 and buf[pos + 38] == 32:  # "2024-…T…:12.123456789Z ": 30 chars
                stamp = buf[pos + 8:pos + 34].decode("ascii", "replace") + "+00:00"
                text = buf[pos + 39:end]
            else:  # trailing zeros trimmed from the nanoseconds: the general form
                raw, _, text = buf[pos + 8:end].partition(b" ")
                stamp = to_iso(raw.decode("ascii", "replace"))
            pos = end
            append((names[kind], stamp, text))
        buf = buf[pos:]
        if frames:
            yield frames


def frame_writer(log: StageLog) -> Callable[[list[Frame]], None]:
    """The StageLog's batch method when it has one, else one write_chunk per frame."""
    fast = getattr(log, "write_frames", None)
    if fast is not None:
        return fast  # type: ignore[no-any-return]

    def slow(frames: list[Frame]) -> None:
        from datetime import datetime

        for stream, stamp, data in frames:
            log.write_chunk(data, LogStream(stream), datetime.fromisoformat(stamp))

    return slow


class LogPump(threading.Thread):
    """Copies one log stream into a StageLog in its own thread (the blocking read may
    hang after the container exits, so the caller bounds it and can `close()` it)."""

    def __init__(self, stream: ContainerLogStream, log: StageLog,
                 after_iso: str | None = None) -> None:
        super().__init__(name="docker-log-pump", daemon=True)
        self.stream = stream
        self.write = frame_writer(log)
        self.after_iso = after_iso  # skip lines stamped at or before this (re-attach)
        self.last_iso: str | None = after_iso
        self.lines = 0
        self.error: BaseException | None = None
        self._closed = False

    def run(self) -> None:
        try:
            for frames in iter_frame_batches(self.stream):
                if self.after_iso is not None:
                    frames = [f for f in frames if f[1] > self.after_iso]
                    if frames:
                        self.after_iso = None  # stamps only grow from here on
                if frames:
                    self.write(frames)
                    self.lines += len(frames)
                    self.last_iso = frames[-1][1]
        except Exception as exc:  # engine gone, or closed by us
            if not self._closed:
                self.error = exc
        finally:
            self.stream.close()

    def close(self) -> None:
        """Stop the pump, even while it is blocked reading from the engine."""
        self._closed = True
        self.stream.close()
