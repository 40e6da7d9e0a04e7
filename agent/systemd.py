"""systemd integration: sd_notify (READY / WATCHDOG / STOPPING) and the unit file.

The notify protocol is one datagram of `KEY=value` lines to the unix socket in
$NOTIFY_SOCKET; a leading '@' names an abstract socket. No libsystemd needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import socket
from collections.abc import Mapping
from pathlib import Path

UNIT_PATH = Path("/etc/systemd/system/seamless-agent.service")


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `message` (e.g. "READY=1") to systemd; False when not run by systemd."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(target)
            # Never block the event loop: a receiver that is not reading loses a ping.
            sock.send(message.encode(), socket.MSG_DONTWAIT)
        except OSError:
            return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WatchdogSec, or None when it is off."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2


async def watchdog_loop(environ: Mapping[str, str] | None = None) -> None:
    """Ping the watchdog while the event loop is alive: a hung loop stops the pings."""
    interval = watchdog_interval(environ)
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1", environ)
        await asyncio.sleep(interval)


class Notifier:
    """READY=1 once serving, WATCHDOG=1 meanwhile, STOPPING=1 on the way out."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = environ
        self._task: asyncio.Task[None] | None = None

    def ready(self, status: str = "serving") -> None:
        notify(f"READY=1\nSTATUS={status}", self.environ)
        self._task = asyncio.ensure_future(watchdog_loop(self.environ))

    async def stopping(self) -> None:
        notify("STOPPING=1", self.environ)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


HOME_DIRS = (Path("/home"), Path("/root"), Path("/run/user"))


def protect_home(*paths: Path) -> str:
    """ProtectHome= that agrees with where things are: `true` hides every home directory,
    so a program, config or data directory inside one needs `read-only` (the data
    directory is made writable again by ReadWritePaths=)."""
    inside = any(p.is_relative_to(home) for p in paths for home in HOME_DIRS)
    return "read-only" if inside else "true"


DOCKER_SOCKETS = (Path("/var/run/docker.sock"), Path("/run/docker.sock"))


def docker_socket_group() -> str | None:
    """The group that may use the Docker socket (its group, else a `docker` group); None
    when there is none but root's — systemd refuses to start a unit naming a group that
    does not exist (status 216/GROUP, seen under a real systemd)."""
    for path in DOCKER_SOCKETS:
        try:
            gid = path.stat().st_gid
        except OSError:
            continue
        if gid != 0:
            with contextlib.suppress(KeyError):
                return grp.getgrgid(gid).gr_name
    try:
        return grp.getgrnam("docker").gr_name
    except KeyError:
        return None


def unit_file(exec_path: Path, config_path: Path, data_dir: Path, user: str = "seamless",
              socket_group: str | None = "docker") -> str:
    """The unit: the installed `seamless-agent` by absolute path, reading `config_path`
    (which names the data directory, host and port); hardened, Type=notify. The user
    joins `socket_group` (the Docker socket's) when there is one."""
    state = ("StateDirectory=seamless\nStateDirectoryMode=0700\n"
             if data_dir == Path("/var/lib/seamless") else "")
    groups = (f"# Docker socket access is root-equivalent: this hardening limits accidents,\n"
              f"# not a compromised agent.\nSupplementaryGroups={socket_group}\n"
              if socket_group else "")
    return f"""\
[Unit]
Description=Seamless CI/CD agent
After=network-online.target docker.service
Wants=network-online.target docker.service

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_path} serve --config {config_path}
Restart=on-failure
RestartSec=5
TimeoutStopSec=20
WatchdogSec=30
User={user}
Group={user}
{groups}{state}# Log streams, WebSockets, git and SQLite: far more than the default 1024 files.
LimitNOFILE=65536
ProtectSystem=strict
ReadWritePaths={data_dir}
ProtectHome={protect_home(exec_path, config_path, data_dir)}
PrivateTmp=true
NoNewPrivileges=true
PrivateDevices=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
RestrictSUIDSGID=true
LockPersonality=true
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
UMask=0077

[Install]
WantedBy=multi-user.target
"""


ENABLE_HINT = """\
Next steps (as root):
  systemd-analyze verify {unit}      # optional: systemd's own check of the unit
  systemctl daemon-reload
  systemctl enable --now seamless-agent
  journalctl -u seamless-agent -f      # the first start logs where the admin token is
"""
