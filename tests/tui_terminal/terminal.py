"""Drive a real program in a real terminal: tmux on its own socket, keys in with
`send-keys`, the screen out with `capture-pane`.

Each key is answered when the screen shows what the key should change; a key that gets
no answer within `timeout` is a frozen program (`Frozen`, with the last screen).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.01


class Frozen(AssertionError):
    """The program did not answer a key (or never showed what it should)."""


@dataclass(frozen=True)
class Screen:
    text: str  # what a user reads
    raw: str  # with colours and attributes (a moved highlight or a new theme changes it)

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def line_with(self, needle: str, raw: bool = False) -> str | None:
        text = self.raw if raw else self.text
        return next((line for line in text.splitlines() if needle in line), None)


def tmux_binary() -> str:
    found = shutil.which("tmux")
    if found is None:
        raise AssertionError("tmux is not installed: `make test` installs it "
                             "(scripts/ensure-test-tools.sh)")
    return found


class Terminal:
    """One tmux server (its own socket) running one program in one window."""

    def __init__(self, command: Sequence[str], *, width: int, height: int,
                 env: dict[str, str] | None = None) -> None:
        self.socket = f"seamless-{uuid.uuid4().hex[:10]}"
        self.width, self.height = width, height
        self._tmux = tmux_binary()
        self._conf = Path(tempfile.mkdtemp(prefix="seamless-tmux-")) / "tmux.conf"
        # remain-on-exit: after `q` the pane stays (its last screen can still be read).
        self._conf.write_text("set -g remain-on-exit on\nset -g status off\nset -s escape-time 0\n"
                              "set -g default-terminal tmux-256color\n")
        environment = " ".join(f"{k}={_quote(v)}" for k, v in (env or {}).items())
        program = " ".join(_quote(part) for part in command)
        # The shell waits for the program and writes its exit status: tmux itself can take
        # minutes to reap a pane's process on a loaded host (its `pane_dead` is not the
        # program's doing).
        self._status_file = self._conf.parent / "exit-status"
        shell = (f"env -u COLUMNS -u LINES {environment} {program}; "
                 f"echo $? > {_quote(str(self._status_file))}")
        self._run("-f", str(self._conf), "new-session", "-d", "-s", "main",
                  "-x", str(width), "-y", str(height), shell)
        self.answers: list[tuple[str, float]] = []  # (step, seconds from send to answer)

    def _run(self, *args: str) -> str:
        # COLUMNS/LINES from the test runner would override the pane's real size.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        proc = subprocess.run([self._tmux, "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=10, check=False, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args[:2])}: {proc.stderr.strip()}")
        return proc.stdout

    def screen(self) -> Screen:
        raw = self._run("capture-pane", "-p", "-e", "-t", "main")
        text = self._run("capture-pane", "-p", "-t", "main")
        return Screen(text, raw)

    def send(self, key: str, *, literal: bool = False) -> None:
        self._run("send-keys", "-t", "main", *(["-l"] if literal else []), key)

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._run("resize-window", "-t", "main", "-x", str(width), "-y", str(height))

    def size(self) -> str:
        return self._run("display-message", "-p", "-t", "main",
                         "#{pane_width}x#{pane_height}").strip()

    def exit_status(self) -> int | None:
        """None while the program runs; its exit status once it has ended."""
        try:
            text = self._status_file.read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.endswith("\n") else None  # written whole

    def wait(self, what: str, until: Callable[[Screen], bool], timeout: float) -> Screen:
        """Wait for the agent or the program (not a key): e.g. a run to finish."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if until(screen):
                return screen
            if time.monotonic() > deadline:
                raise Frozen(f"timed out after {timeout:g} s waiting for {what}; the screen:\n"
                             f"{screen.text}")
            time.sleep(POLL_S * 5)

    def press(self, step: str, key: str, until: Callable[[Screen, Screen], bool], *,
              timeout: float, literal: bool = False) -> float:
        """Send `key`; return the seconds until `until(before, now)` holds on screen."""
        before = self.screen()
        start = time.monotonic()
        self.send(key, literal=literal)
        while True:
            now = self.screen()
            if until(before, now):
                took = time.monotonic() - start
                self.answers.append((step, took))
                return took
            if time.monotonic() - start > timeout:
                raise Frozen(f"no answer to {key!r} ({step}) within {timeout:g} s; the screen "
                             f"({self.size()}):\n{now.text}\nbefore the key:\n{before.raw}"
                             f"\nnow:\n{now.raw}")
            time.sleep(POLL_S)

    def close(self) -> None:
        subprocess.run([self._tmux, "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10, check=False)
        shutil.rmtree(self._conf.parent, ignore_errors=True)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def tui_command(agent_url: str) -> list[str]:
    """`seamless-tui` installed beside the Python that runs the tests (the token goes in
    through SEAMLESS_TOKEN, never on the command line)."""
    return [str(Path(sys.executable).parent / "seamless-tui"), "--agent", agent_url]
