"""Talking to a running front: HAProxy's runtime API on a unix socket in a host folder
bind-mounted into the front container (`<data_dir>/fronts/<service>-<environment>/run/`),
and the per-server figures of its `show stat` (status, last check, requests, errors) that
the switch and the canary judge by. The container and its config are in front.py.
"""

from __future__ import annotations

import csv
import io
import os
import socket
from dataclasses import dataclass
from pathlib import Path

COLOURS = ("blue", "green")
BACKEND = "colours"
SOCKET = "admin.sock"
_API_TIMEOUT_S = 5.0


class FrontError(RuntimeError):
    """The front cannot be set up or does not answer; the message says why."""


class FrontApi:
    """HAProxy's runtime API over the front's unix socket: one command per connection."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, command: str, timeout_s: float = _API_TIMEOUT_S) -> str:
        path = self.folder / SOCKET
        fd = None
        if len(str(path)) > 100:  # AF_UNIX paths stop at 108 bytes: go through the folder's fd
            fd = os.open(self.folder, os.O_RDONLY)
            path = Path(f"/proc/self/fd/{fd}/{SOCKET}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                sock.connect(str(path))
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while data := sock.recv(65536):
                    chunks.append(data)
        except OSError as exc:
            raise FrontError(f"the front's runtime API ({self.folder / SOCKET}) does not"
                             f" answer: {exc}") from exc
        finally:
            if fd is not None:
                os.close(fd)
        return b"".join(chunks).decode(errors="replace")


@dataclass
class ServerStat:
    colour: str
    status: str  # UP, DOWN, MAINT, DRAIN, no check…
    weight: int
    current: int  # open sessions
    requests: int  # total since the front started
    errors_5xx: int
    connect_errors: int
    response_errors: int
    addr: str
    check: str = ""  # the last health check's result: L4OK, L7OK, L4TOUT, INI…

    @property
    def errors(self) -> int:
        return self.errors_5xx + self.connect_errors + self.response_errors

    @property
    def checked_up(self) -> bool:
        """Up by the front's own check, with one failed check to spare. A server whose name
        resolves again is put UP at once (status `UP 1/3`: no check yet, the next failure
        takes it DOWN): a switch to it then had production answer 503 for a moment when
        that first check timed out on a loaded host."""
        word, _, margin = self.status.partition(" ")
        left = int(margin.split("/")[0]) if margin[:1].isdigit() else None
        return (bool(self.addr) and word in ("UP", "DRAIN") and self.check.endswith("OK")
                and (left is None or left >= 2))


def parse_stat(csv_text: str) -> dict[str, ServerStat]:
    rows = csv.DictReader(io.StringIO(csv_text.lstrip("# ")))
    out = {}
    for row in rows:
        if row.get("pxname") != BACKEND or row.get("svname") not in COLOURS:
            continue

        def num(key: str, row: dict[str, str] = row) -> int:
            return int(row.get(key) or 0)

        out[row["svname"]] = ServerStat(
            colour=row["svname"], status=row.get("status", ""), weight=num("weight"),
            current=num("scur"), requests=num("req_tot") or num("stot"),
            errors_5xx=num("hrsp_5xx"), connect_errors=num("econ"),
            response_errors=num("eresp"), addr=row.get("addr", ""),
            check=row.get("check_status", ""))
    return out
