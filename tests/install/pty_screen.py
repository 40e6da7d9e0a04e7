"""Run a terminal program under a pseudo-terminal, as a user's shell would, and read
the screen it paints (a pyte terminal emulator) until some text shows up."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyte


class PtyProgram:
    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str],
                 size: tuple[int, int] = (120, 40)) -> None:
        master, slave = os.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.master = master
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=slave,
                                     stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)

    @property
    def text(self) -> str:
        """What the terminal shows now."""
        return "\n".join(line.rstrip() for line in self.screen.display)

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.stream.feed(os.read(self.master, 65536))
            except OSError:  # the program closed the terminal
                time.sleep(timeout)

    def wait_for(self, needle: str, timeout: float) -> float:
        """Seconds from start until `needle` was painted; raises with the screen otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text:
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                self._read(0.1)
                if needle in self.text:
                    return time.monotonic() - self.started
                break
            self._read(0.05)
        raise AssertionError(f"{needle!r} not painted within {timeout:g} s "
                             f"(exit {self.proc.poll()}); the terminal showed:\n"
                             f"{self.text}")

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.05)
        if self.proc.poll() is None:
            self.close()
            raise AssertionError(f"still running after {timeout:g} s:\n{self.text}")
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        os.close(self.master)
