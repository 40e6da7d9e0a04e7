"""A second Docker engine of the test's own, in its own network namespace, that the test
can stop, start again on the same data and kill.

NEVER a second dockerd in the host's namespace: started there with `--bridge=none` one
deleted the host engine's docker0. Here dockerd runs under `nsenter --net` in a fresh
namespace (tests/reliability/netns.py) with its own data root, exec root, pid file,
socket, bridge range (`--bip`, only safe because the bridge is inside the namespace) and
cgroup parent. The agent under test points `docker_host` at `url` and runs in the same
namespace (ServedAgent's `netns`), so the ports it publishes stay on that loopback.

    engine = SecondEngine.start_new()            # ~1 s
    engine.load_images(host_client, [BASE_IMAGE])  # docker save | docker load
    engine.stop(); engine.start()                # an engine restart
    engine.close()                               # everything gone (in a finally)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.reliability.netns import Netns

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0


class SecondEngineError(RuntimeError):
    pass


class SecondEngine:
    def __init__(self, root: Path, netns: Netns, bip: str = "10.213.0.1/24",
                 pool: str = "10.214.0.0/16") -> None:
        self.root, self.netns, self.bip, self.pool = root, netns, bip, pool
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @classmethod
    def start_new(cls, **kw: Any) -> SecondEngine:
        """A fresh namespace and data root (short paths: containerd's socket lives under
        the exec root, and unix socket paths stop at 108 bytes)."""
        shutil.which("dockerd") or _fail("dockerd is not installed (make docker)")
        shutil.which("ip") or _fail("`ip` is missing: apt-get install iproute2 (make test-tools)")
        root = Path(tempfile.mkdtemp(prefix="sle-", dir="/var/tmp"))
        netns = Netns(f"sl-{root.name[4:]}")
        engine = cls(root, netns, **kw)
        try:
            netns.create()
            engine.start()
        except BaseException:
            engine.close()
            raise
        return engine

    # -- where ----------------------------------------------------------------------------
    @property
    def socket_path(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def cgroup_parent(self) -> str:
        return f"seamless-{self.netns.name}"

    def client(self, timeout: int = 60) -> Any:
        import docker

        return docker.DockerClient(base_url=self.url, timeout=timeout)

    # -- life -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start dockerd on the same data root; returns once it answers."""
        if self.running:
            return
        self._forget_dead_containerd()
        args = ["dockerd", "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "x"), "--pidfile", str(self.root / "dockerd.pid"),
                "-H", self.url, "--bip", self.bip,
                "--default-address-pool", f"base={self.pool},size=24",
                "--cgroup-parent", self.cgroup_parent, "--shutdown-timeout", "2"]
        self.starts += 1
        with open(self.log_path, "ab") as out:
            out.write(f"--- start {self.starts} ---\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.netns.command(args), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise SecondEngineError(f"the second dockerd did not come up: {tail}")
            time.sleep(0.1)

    def _forget_dead_containerd(self) -> None:
        """After a kill -9 the old containerd is a zombie nobody reaps here (no init
        that reaps in this container); dockerd would take it for alive and wait for it."""
        pidfile = self.root / "x" / "containerd" / "containerd.pid"
        deadline = time.monotonic() + 5  # it may still be dying (killed with dockerd)
        while pidfile.exists():
            try:
                stat = Path(f"/proc/{int(pidfile.read_text().strip())}/stat").read_text()
            except (OSError, ValueError):
                stat = ""
            if not stat or stat.rsplit(")", 1)[1].split()[0] == "Z":
                pidfile.unlink()
                return
            if time.monotonic() > deadline:
                return  # alive: dockerd will use it
            time.sleep(0.1)

    def answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            client = self.client(timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # any failure: not (yet) answering
            return False

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, as `systemctl stop docker` would: containers stop with it."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9 dockerd (its containerd and containers are left to the next start)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def containers(self) -> list[str]:
        """Every container on this engine: name, state and ports (assertion messages)."""
        client = self.client(timeout=10)
        try:
            return [f"{c.name} {c.status} {c.ports}" for c in client.containers.list(all=True)]
        finally:
            client.close()

    def load_images(self, host_client: Any, tags: list[str]) -> None:
        """Copy images from the host engine (no registry here): docker save | docker load."""
        client = self.client(timeout=300)
        try:
            for tag in tags:
                data = b"".join(host_client.images.get(tag).save(named=True))
                client.images.load(data)
        finally:
            client.close()

    # -- cleanup ----------------------------------------------------------------------------
    def close(self) -> None:
        """Everything this engine made goes: containers, processes, mounts, data,
        the namespace."""
        if self.running:
            with contextlib.suppress(Exception):
                client = self.client(timeout=30)
                for container in client.containers.list(all=True):
                    with contextlib.suppress(Exception):
                        container.remove(force=True)
                client.close()
        self.stop(timeout=30)
        self._kill_leftovers()
        self._unmount()
        shutil.rmtree(self.root, ignore_errors=True)
        self.netns.delete()

    def _kill_leftovers(self) -> None:
        """After a kill -9: its containerd and shims (their command line names our root)
        and the containers' processes (in our cgroup parent)."""
        mine = str(self.root)
        pids = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if mine in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.add(int(entry.name))
        for procs in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}/**/cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(p) for p in procs.read_text().split()}
        for pid in pids - {os.getpid()}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2 if pids else 0)
        for group in sorted(Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}/**/"),
                            key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                group.rmdir()

    def _unmount(self) -> None:
        mine = str(self.root)
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(mine)]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _fail(message: str) -> str:
    raise SecondEngineError(message)
