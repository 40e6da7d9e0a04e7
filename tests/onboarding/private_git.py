"""A private git server on 127.0.0.1: git's `http-backend` CGI behind a tiny HTTPS server.

Every request must carry `Authorization: Basic base64(x-access-token:<token>)`, as GitHub
expects of a token; anything else gets 401. Each request waits `delay_s`, so a fetch is
slow enough for a test to look at the process list while it runs.
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (git trusts it through GIT_SSL_CAINFO)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


class PrivateGitServer:
    def __init__(self, root: Path, token: str, cert: Path, key: str | Path,
                 delay_s: float = 0.0) -> None:
        self.root, self.delay_s = root, delay_s
        expected = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        self.expected_header = f"Basic {expected}"
        self.authorized = 0
        self.refused = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

            def do_POST(self) -> None:
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> PrivateGitServer:
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        if req.headers.get("Authorization") != self.expected_header:
            self.refused += 1
            req.send_response(401)
            req.send_header("WWW-Authenticate", 'Basic realm="private"')
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        self.authorized += 1
        time.sleep(self.delay_s)
        path, _, query = req.path.partition("?")
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root),
               "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": req.command,
               "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_TYPE": req.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
               "GIT_PROTOCOL": req.headers.get("Git-Protocol", "")}
        proc = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode().splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        req.send_response(status)
        for name, value in headers:
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)
