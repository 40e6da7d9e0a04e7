"""The README's journey through `seamless-tui` in a real terminal, against a real agent
with real runs: shared by the journey tests and bench/tui_journey.py.

The agent is the TUI tests' seeded agent (history: a pending approval, deployments of
real images for a rollback) plus one real service, `stream`, whose Unit Test runs on
the agent (local executor) and prints `rate` lines a second, with a failing test among
them, then fails.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.store import Store
from tests.harness import wait_until
from tests.helpers import free_port, unique_name
from tests.sample_repo import git
from tests.tui.images import build_health_image, remove_images
from tests.tui.seed import add_deployments, seed, sha
from tests.tui_terminal.agent_process import AgentProcess, ProcessAgent
from tests.tui_terminal.terminal import Screen, Terminal, tui_command

KEY_BOUND_S = 10.0  # a key not answered in 10 s: the TUI is frozen (a detector, not a goal)
AGENT_BOUND_S = 180.0  # waiting for the agent: a run to fail, a rollback to turn healthy

STREAM_SCRIPT = '''\
import sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
print("collected 2,000 items", flush=True)
start, sent = time.monotonic(), 0
while time.monotonic() - start < seconds:
    due = min(int((time.monotonic() - start) * rate) + 1, int(rate * seconds))
    out = []
    for i in range(sent, due):
        if i % 1000 == 500:
            out.append(f"FAILED tests/test_refunds.py::test_refund_{i} - AssertionError: "
                       "expected 200, got 500")
        elif i % 250 == 100:
            out.append(f"stream line {i}: needle in the haystack")
        else:
            out.append(f"stream line {i}: test_case_{i % 97} PASSED")
    if out:
        print("\\n".join(out), flush=True)
    sent = due
    time.sleep(0.02)
print("error: 1 failed", flush=True)
sys.exit(1)
'''


@dataclass
class JourneyAgent:
    live: ProcessAgent
    rate: int
    seconds: float
    rollback_service: str  # deployed for real by the journey's rollback

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def token(self) -> str:
        return self.live.seeded.tokens["admin"]  # type: ignore[index]

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.live.http() as http:
            response = http.request(method, f"/api/v1{path}", **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def start_run(self) -> dict[str, Any]:
        """A new run of `stream`, streaming once its Unit Test starts."""
        run = self.api("POST", "/services/stream/trigger", json={})
        wait_until(lambda: _stage(self.api("GET", f"/runs/{run['id']}"), "Unit Test")
                   in ("in_progress", "failed"), timeout=60, what="the Unit Test streaming")
        return run  # type: ignore[no-any-return]


    def wait_for_error_line(self, number: int) -> None:
        """Until the agent has stored the stream's first error line (what `e` finds)."""
        runs = self.api("GET", "/runs", params={"service": "stream"})["items"]
        run_id = next(r["id"] for r in runs if r["number"] == number)
        wait_until(lambda: self.api("GET", f"/runs/{run_id}/logs/first-error",
                                    params={"stage": "Unit Test"})["line"] is not None,
                   timeout=AGENT_BOUND_S, what="the stream's first error line")


def _stage(run: dict[str, Any], name: str) -> str:
    return next(s["status"] for s in run["stages"] if s["name"] == name)


def _stream_repo(path: Path) -> str:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "stream.py").write_text(STREAM_SCRIPT)
    git(path, "add", ".")
    git(path, "-c", "user.name=ana", "-c", "user.email=ana@example.com", "commit", "-q",
        "-m", "Stream the unit test output")
    return str(path)


@contextmanager
def journey_agent(tmp: Path, docker_client: Any, base_image: str, *, rate: int = 200,
                  seconds: float = 90.0) -> Iterator[JourneyAgent]:
    store = Store(tmp / "seamless.db")
    seeded = seed(store)
    store.close()
    live = ProcessAgent(AgentProcess(tmp, free_port()).start(), seeded)
    # The rollback goes to a service of this test alone: deploy containers are named by
    # service and environment, and other tests deploy the seeded `catalog` at the same time.
    name = f"zrb-{uuid.uuid4().hex[:6]}"  # sorts after `stream`; short enough for 80 columns
    repo = unique_name("seamless-journey")
    tags = [f"{repo}/{name}:{sha(n)}" for n in (0x2f1, 0x2f2)]
    try:
        for tag in tags:
            build_health_image(docker_client, base_image, tag)
        agent = JourneyAgent(live, rate, seconds, name)
        agent.api("POST", "/pipelines", json={
            "name": "alpha", "executor": "local", "staging": {"kind": "none"},
            "production": {"kind": "none"}})
        repo_path = _stream_repo(tmp / "stream")
        agent.api("POST", "/services", json={
            "name": "stream", "pipeline": "alpha", "repo_url": repo_path,
            "code_quality_command": "echo lint ok",
            "unit_test_command": f"{sys.executable} stream.py {rate} {seconds}"})
        service = agent.api("POST", "/services", json={
            "name": name, "pipeline": "alpha", "repo_url": repo_path,
            "staging": {"kind": "docker"}, "production": {"kind": "docker"},
            "image_repository": f"{repo}/{name}"})
        store = Store(tmp / "seamless.db")
        try:  # its history: two images in production, the newer one live
            add_deployments(store, service["id"], name, repo, [0x2f1, 0x2f2, 0x301])
        finally:
            store.close()
        yield agent
    finally:
        live.server.stop()
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)
        remove_images(docker_client, tags)
        for network in docker_client.networks.list(names=[f"seamless-{name}"]):
            network.remove()


# -- what the screen shows --------------------------------------------------------------------
_ESCAPE = re.compile(r"(\x1b\[[0-9;?]*[A-Za-z])")


def _no_digits(line: str | None) -> str:
    """The line with the digits of its text (not of its colour codes) left out."""
    parts = _ESCAPE.split(line or "")
    return "".join(part if part.startswith("\x1b") else re.sub(r"\d", "", part)
                   for part in parts)


def row_changed(needle: str) -> Callable[[Screen, Screen], bool]:
    """The row showing `needle` changed look (a cursor moved onto or off it). Running timers
    and ages only change digits, so they do not count; nor does the log pane on the same
    terminal line (right of its `▏` border)."""
    def row(screen: Screen) -> str:
        return _no_digits((screen.line_with(needle, raw=True) or "").split("▏")[0])

    return lambda before, now: row(before) != row(now)


def shows(*texts: str) -> Callable[[Screen, Screen], bool]:
    return lambda before, now: all(t in now.text for t in texts)


def matches(pattern: str) -> Callable[[Screen, Screen], bool]:
    return lambda before, now: re.search(pattern, now.text) is not None


def log_of(stage: str) -> Callable[[Screen, Screen], bool]:
    """The log pane's status line names `stage`."""
    return matches(rf"{re.escape(stage)}\s+[●○] ")


def footer_changed(before: Screen, now: Screen) -> bool:
    return before.lines[-1:] != now.lines[-1:]


def _log_focused(screen: Screen) -> bool:
    """The footer lists the log view's keys (`f follow`) only while the log has focus."""
    return "f follow" in "".join(screen.lines[-1:])


def log_focused(before: Screen, now: Screen) -> bool:
    return _log_focused(now)


def stages_focused(before: Screen, now: Screen) -> bool:
    return not _log_focused(now)


def opened(stage: str) -> Callable[[Screen, Screen], bool]:
    """`stage`'s log is shown and has the focus."""
    return lambda before, now: log_of(stage)(before, now) and _log_focused(now)


def look_changed(before: Screen, now: Screen) -> bool:
    return before.raw != now.raw


# -- the journey ------------------------------------------------------------------------------
@dataclass
class Journey:
    term: Terminal
    agent: JourneyAgent
    run_number: int  # the stream run the dashboard shows as its last run

    def key(self, step: str, key: str, until: Callable[[Screen, Screen], bool],
            literal: bool = False) -> float:
        # An answer is a changed screen that shows what the key should do.
        return self.term.press(step, key, lambda b, n: n.raw != b.raw and until(b, n),
                               timeout=KEY_BOUND_S, literal=literal)

    def dashboard(self) -> None:
        self.term.wait("the dashboard", lambda s: "connected" in s.text and "stream" in s.text
                       and "payments" in s.text, KEY_BOUND_S * 3)

    def open_stream_run(self) -> None:
        # Sorted by pipeline: `▾ alpha`, then `stream` (alpha sorts first).
        self.key("dashboard: down to stream", "j", row_changed("stream"))
        self.key("dashboard: last run", "l", matches(rf"stream\W+#{self.run_number}\b"))
        self.term.wait("the live Unit Test log", lambda s: log_of("Unit Test")(s, s)
                       and "stream line" in s.text, AGENT_BOUND_S)

    def switch_stages(self, rounds: int = 2) -> None:
        for _ in range(rounds):
            self.key("stages: up", "k", row_changed("Code Quality"))
            self.key("stages: open Code Quality", "Enter", opened("Code Quality"))
            self.key("log → stages", "Tab", stages_focused)
            self.key("stages: up", "k", row_changed("Prepare"))
            self.key("stages: open Prepare", "Enter", opened("Prepare"))
            self.key("log → stages", "Tab", stages_focused)
            self.key("stages: down", "j", row_changed("Code Quality"))
            self.key("stages: down", "j", row_changed("Unit Test"))
            self.key("stages: open Unit Test (live)", "Enter", opened("Unit Test"))
            self.key("log → stages", "Tab", stages_focused)
        self.key("stages → log", "Tab", log_focused)

    def live_log(self) -> None:
        def last_line(screen: Screen) -> int:
            found = re.findall(r"stream line (\d+)", screen.text)
            return max(map(int, found)) if found else -1

        first = last_line(self.term.screen())
        self.term.wait("new live lines", lambda s: last_line(s) > first, KEY_BOUND_S)

    def search(self) -> None:
        self.key("log: open search", "/", footer_changed)
        # The box itself shows the word (log lines with "needle" are on screen already).
        self.key("search: type", "needle", matches(r"(?m)▏ ?needle *$"), literal=True)
        self.key("search: apply", "Enter", lambda b, n: "needle in the haystack" in n.text
                 and "○" in n.text)
        self.key("search: next match", "n", look_changed)

    def first_error(self) -> None:
        # The stream writes its first FAILED line ~2.5 s in at the tests' 200 lines/s; a
        # quick journey gets here sooner, and `e` then rightly answers "no error line".
        self.agent.wait_for_error_line(self.run_number)
        self.key("log: first error", "e", shows("FAILED tests/test_refunds.py"))

    def confirmed(self, step: str, key: str, until: Callable[[Screen, Screen], bool]) -> None:
        """A key that may ask first (`Cancel (n)` / `… (y)`): confirm with `y`."""
        self.key(step, key, lambda b, n: until(b, n) or "Cancel (n)" in n.text)
        if "Cancel (n)" in self.term.screen().text:
            self.key(f"{step}: confirm", "y", until)

    def cancel_and_rerun_from_stage(self) -> None:
        number = self.run_number
        self.key("log → stages", "Tab", stages_focused)
        self.confirmed("cancel the run", "c", lambda b, n: re.search(
            rf"#{number}\b.*(cancelled|failed)", n.text) is not None
            or f"Cancelling run #{number}" in n.text or "already finished" in n.text)
        # The run's own crumb, not a toast: the agent stops the stage after it answers, and
        # F before the run has ended is refused.
        self.term.wait("the run to end", lambda s: re.search(
            rf"› #{number}\b.*(cancelled|failed)", s.line_with("Seamless ›") or "")
            is not None, AGENT_BOUND_S)
        self.confirmed("rerun from Unit Test", "F", shows(f"#{number + 1}"))
        self.run_number += 1

    def approve(self) -> None:
        # The header says "awaiting approval" on every screen: wait for the run's crumbs to
        # go, or `a` lands on the run view (the live log changes the screen meanwhile).
        self.key("run → dashboard", "Escape", lambda b, n: "awaiting approval" in n.text
                 and re.search(r"Seamless › \S+ › #", n.text) is None)
        self.key("dashboard: approve", "a", shows("Approve production deploy"))
        self.key("approval: approve", "a", shows("approved"))

    def rollback(self) -> None:
        # `▾ alpha` is the top row, then `stream`, then the rollback service.
        name = self.agent.rollback_service
        self.key("dashboard: top", "g", row_changed("alpha"))
        self.key("dashboard: down to stream", "j", row_changed("stream"))
        self.key(f"dashboard: down to {name}", "j", row_changed(name))
        self.key("dashboard: rollback", "r", shows(f"{name} › rollback", sha(0x2f1)[:7],
                                                   sha(0x2f2)[:7]))
        self.key("rollback: older image", "j", row_changed(sha(0x2f1)[:7]))
        self.key("rollback: choose", "Enter", shows("Roll back"))
        self.key("rollback: confirm", "y", shows("rolling back"))
        done = self.term.wait("the rollback to end", lambda s: "live and healthy" in s.text
                              or "failed" in s.text, AGENT_BOUND_S)
        assert "live and healthy" in done.text, f"the rollback failed:\n{done.text}"

    def unpin(self) -> None:
        """The rollback pinned production: unpin it from the picker (the dialog names the
        pinned sha)."""
        self.key("rollback: unpin", "u", shows("Unpin (y)", f"pinned at {sha(0x2f1)[:7]}"))
        self.key("unpin: confirm", "y", shows("production unpinned"))

    def theme(self) -> None:
        self.key("next theme", "C-t", look_changed)

    def resize(self, width: int, height: int) -> None:
        self.term.resize(width, height)
        self.term.wait(f"the TUI at {width}x{height}", lambda s: len(s.lines) == height
                       and "connected" in s.lines[0] and max(map(len, s.lines)) <= width,
                       KEY_BOUND_S)

    def quit(self) -> int:
        # The answer to `q` is the program's end (its exit status written by the shell).
        self.term.press("quit", "q", lambda b, n: self.term.exit_status() is not None,
                        timeout=KEY_BOUND_S)
        status = self.term.exit_status()
        assert status is not None
        return status


def start_tui(agent: JourneyAgent, home: Path, width: int, height: int) -> Terminal:
    home.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(home), "SEAMLESS_TOKEN": agent.token, "TERM": "tmux-256color",
           "COLORTERM": "truecolor", "PATH": "/usr/bin:/bin"}
    return Terminal(tui_command(agent.url), width=width, height=height, env=env)


def walk(journey: Journey, other_size: tuple[int, int]) -> int:
    """The whole journey; returns the TUI's exit status."""
    journey.dashboard()
    journey.open_stream_run()
    journey.switch_stages()
    journey.live_log()
    journey.search()
    journey.first_error()
    journey.cancel_and_rerun_from_stage()
    journey.approve()
    journey.rollback()
    journey.unpin()
    journey.theme()
    journey.resize(*other_size)
    return journey.quit()

