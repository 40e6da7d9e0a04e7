"""Reading a container's output fast, with stdout/stderr kept apart.

A new stage container is *attached* before it starts (POST …/attach, what
`docker run` does): the engine copies the container's pipes straight to us, and
lines are stamped as they arrive. Following the log instead (GET …/logs with
`follow`) makes the engine decode its JSON log file line by line, which costs
dockerd more CPU than the whole rest of the pipeline and caps a stage at ~90k
lines/s. The log endpoint, with docker's own timestamps, serves what the attach
cannot: a re-attach after a restart, an exited container's output, an engine on
TCP. Those re-reads start from the beginning and skip the lines already stored
(see agent.logs.stage_writer.StageLogWriter.rewind), so they neither lose nor repeat a line.

docker-py reads each multiplexed frame with two small reads and drops the stream
type. We read the body in large blocks and split the frames ourselves (8-byte
header: stream type, 3 zero bytes, big-endian length).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import docker

from agent.logs import Frame, StageLog
from agent.logs.timestamps import docker_ts_to_iso, iso_ts

_HEADER = struct.Struct(">BxxxL")
# Stream name by the frame header's type byte (a tuple index beats dict.get per frame).
_STREAM_NAMES = tuple("stderr" if kind == 2 else "stdout" for kind in range(256))
READ_SIZE = 256 * 1024



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


def open_log_stream(api: Any, container_id: str, *, follow: bool) -> ContainerLogStream:
    """The multiplexed, timestamped log of a container, from its first line."""
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1,
                              "follow": 1 if follow else 0, "tail": "all"}
    url = api._url("/containers/{0}/logs", container_id)
    socket_path = getattr(api.get_adapter(url), "socket_path", None)
    if socket_path:
        return _open_unix(socket_path, "GET", url, params)
    response = api._get(url, params=params, stream=True)
    api._raise_for_status(response)
    if follow:  # a quiet stage must not hit the client's read timeout
        api._disable_socket_timeout(api._get_raw_response_socket(response))
    return ContainerLogStream(None, _body_blocks(response), response)


def open_attach_stream(api: Any, container_id: str) -> ContainerLogStream | None:
    """The live, multiplexed stdout/stderr of a container not started yet (attach first,
    then start, and not a byte is missed); None when the engine is not on a unix socket
    (the caller follows the log instead)."""
    url = api._url("/containers/{0}/attach", container_id)
    socket_path = getattr(api.get_adapter(url), "socket_path", None)
    if not socket_path:
        return None
    return _open_unix(socket_path, "POST", url, {"stream": 1, "stdout": 1, "stderr": 1})


def _open_unix(socket_path: str, method: str, url: str, params: dict[str, Any]
               ) -> ContainerLogStream:
    """HTTP straight over the engine's unix socket. A log is asked for over HTTP/1.0:
    over HTTP/1.1 dockerd sends every frame as its own chunk, and reading through
    http.client costs a call per log line; an HTTP/1.0 body is the bare frame stream.
    An attach upgrades the connection to that same bare stream. Read in 256 KiB blocks."""
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(socket_path)
    request = f"{method} {path}?{urlencode(params)} "
    if method == "GET":
        request += "HTTP/1.0\r\nHost: docker\r\n\r\n"
    else:
        request += ("HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                    "Content-Length: 0\r\n\r\n")
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        block = sock.recv(65536)
        if not block:
            break
        head += block
    header, _, rest = head.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1]) if header.startswith(b"HTTP/") else 0
    if status not in (200, 101):
        body = rest
        sock.settimeout(5)
        try:
            while block := sock.recv(65536):
                body += block
        except OSError:
            pass
        sock.close()
        message = body.decode("utf-8", "replace").strip()
        if status == 404:
            raise docker.errors.NotFound(message)
        raise docker.errors.APIError(f"{status} {method} {path}: {message}")
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


def iter_frame_batches(stream: ContainerLogStream, timestamps: bool = True
                       ) -> Iterator[list[Frame]]:
    """Yield lists of (stream, ts-iso, payload) frames, one list per block read. Without
    `timestamps` (an attach) every frame of a block is stamped with its arrival."""
    unpack = _HEADER.unpack_from
    names = _STREAM_NAMES
    to_iso = docker_ts_to_iso
    buf = b""
    for block in stream.blocks():
        buf = buf + block if buf else block
        frames: list[Frame] = []
        append = frames.append
        pos, size = 0, len(buf)
        arrived = "" if timestamps else iso_ts()
        while pos + 8 <= size:
            kind, length = unpack(buf, pos)
            end = pos + 8 + length
            if end > size:
                break
            if not timestamps:
                append((names[kind], arrived, buf[pos + 8:end]))
            elif length > 31 and buf[pos + 38] == 32:  # "2024-…T…:12.123456789Z ": 30 chars
                stamp = buf[pos + 8:pos + 34].decode("ascii", "replace") + "+00:00"
                append((names[kind], stamp, buf[pos + 39:end]))
            else:  # trailing zeros trimmed from the nanoseconds: the general form
                raw, _, text = buf[pos + 8:end].partition(b" ")
                append((names[kind], to_iso(raw.decode("ascii", "replace")), text))
            pos = end
        buf = buf[pos:]
        if frames:
            yield frames


class LogPump(threading.Thread):
    """Copies one log or attach stream into a StageLog in its own thread (a read may
    block after the container exits, so the caller bounds it and can `close()` it)."""

    def __init__(self, stream: ContainerLogStream, log: StageLog, timestamps: bool = True
                 ) -> None:
        super().__init__(name="docker-log-pump", daemon=True)
        self.stream = stream
        self.write = log.write_frames
        self.timestamps = timestamps
        self.lines = 0  # frames, in fact: one per line on the log endpoint
        self.error: BaseException | None = None
        self._closed = False

    def run(self) -> None:
        try:
            for frames in iter_frame_batches(self.stream, self.timestamps):
                self.write(frames)
                self.lines += len(frames)
        except Exception as exc:  # engine gone, or closed by us
            if not self._closed:
                self.error = exc
        finally:
            self.stream.close()

    def close(self) -> None:
        """Stop the pump, even while it is blocked reading from the engine."""
        self._closed = True
        self.stream.close()
