"""In a real terminal (tmux, 80×24): `:` jumps to a service, `u` asks with its keys shown,
`y` unpins; `/` searches the whole log with a counter. What Pilot cannot show: the keys
reach the program through a terminal and the answer is on the screen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from store.models import Role
from tests.tui.conftest import LiveAgent
from tests.tui.seed import sha

TMUX = shutil.which("tmux")


class Terminal:
    def __init__(self, command: list[str], env: dict[str, str], cwd: str) -> None:
        if TMUX is None:
            raise AssertionError("tmux is missing: apt-get install tmux (make venv does)")
        self.socket, self.session = f"tui-feat-{uuid.uuid4().hex[:8]}", "t"
        self._tmux("new-session", "-d", "-s", self.session, "-x", "80", "-y", "24",
                   "-c", cwd, " ".join(command), env=env)

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run([TMUX or "tmux", "-L", self.socket, *args], env=env,
                              capture_output=True, text=True, timeout=10, check=False)
        return done.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            self._tmux("send-keys", "-t", self.session, key)
            time.sleep(0.05)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def wait(self, predicate: Callable[[str], bool], what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")
            time.sleep(0.1)

    def close(self) -> None:
        self._tmux("kill-server")


@pytest.fixture
def terminal(live_agent: LiveAgent, tmp_path) -> Iterator[Terminal]:
    env = {**os.environ, "SEAMLESS_TOKEN": live_agent.seeded.tokens[Role.deployer],
           "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "TERM": "xterm-256color"}
    term = Terminal([sys.executable, "-m", "seamless_tui.cli", "--agent", live_agent.url], env,
                    cwd=str(tmp_path))
    yield term
    term.close()


def test_jump_then_unpin_with_y_in_a_real_terminal(live_agent: LiveAgent, terminal: Terminal):
    store = live_agent.server.agent.store
    store.set_pin(store.get_service("payments").id, "production", sha(0x102))
    terminal.wait(lambda s: "payments" in s and "connected" in s, "the dashboard")
    terminal.keys(":")
    terminal.wait(lambda s: ":service" in s, "the jump box")
    terminal.keys("payments", "Enter")
    terminal.wait(lambda s: "Seamless › payments" in s and "#3" in s, "the service view")
    terminal.keys("u")
    text = terminal.wait(lambda s: "Unpin (y)" in s, "the question with its keys")
    assert "Cancel (n)" in text and "pinned at aaaa102" in text
    terminal.keys("y")
    terminal.wait(lambda s: "unpinned" in s, "the answer")
    assert store.get_service("payments").pinned == {}
    terminal.keys("q")


def test_search_shows_the_match_counter_in_a_real_terminal(live_agent: LiveAgent,
                                                           terminal: Terminal):
    terminal.wait(lambda s: "checkout" in s and "connected" in s, "the dashboard")
    terminal.keys(":")
    terminal.wait(lambda s: ":service" in s, "the jump box")
    terminal.keys("checkout#1", "Enter")
    terminal.wait(lambda s: "checkout › #1" in s and "Unit Test" in s, "the run view")
    terminal.keys("Tab")
    time.sleep(0.3)
    terminal.keys("/")
    terminal.wait(lambda s: "search the whole stage log" in s, "the search box")
    terminal.keys("Unit Test 1", "Enter")
    terminal.wait(lambda s: "match 1 / 11" in s, "the counter over the whole stage log")
    terminal.keys("n")
    terminal.wait(lambda s: "match 2 / 11" in s, "the next match")
    terminal.keys("q")


def test_escape_and_arrow_keys_in_a_real_terminal(terminal: Terminal):
    """`escape` waits only 30 ms for the rest of a sequence (seamless_tui.quick_escape): an
    arrow (ESC [ D, one write from the terminal) is still an arrow, not `escape` then text,
    and a lone `escape` still closes the box."""
    terminal.wait(lambda s: "checkout" in s and "connected" in s, "the dashboard")
    terminal.keys(":")
    terminal.wait(lambda s: ":service" in s, "the jump box")
    terminal.keys("checkoutX", "Left", "BSpace")
    terminal.wait(lambda s: "checkouX" in s, "the arrow moving the cursor, the box still open")
    terminal.keys("Escape")
    text = terminal.wait(lambda s: "checkouX" not in s, "escape closing the box")
    assert "checkout" in text and "connected" in text  # back on the dashboard
    terminal.keys("q")
