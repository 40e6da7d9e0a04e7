"""Shared bits of the bench scripts: a table printer and the --json convention."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def report(title: str, rows: list[tuple[str, Any]], figures: dict[str, Any], as_json: bool
           ) -> None:
    width = max(len(name) for name, _ in rows)
    print(title)
    print("-" * len(title))
    for name, value in rows:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{name:<{width}}  {shown}")
    if as_json:
        print(json.dumps(figures))


def spawn_server(script: str, data_dir: str, lines: int) -> tuple[subprocess.Popen[str],
                                                                   list[str]]:
    """`script --serve DATA_DIR --lines N` in its own process (its memory apart from the
    measuring side's): the process and the fields of its `READY …` line."""
    agent = subprocess.Popen([sys.executable, script, "--serve", data_dir, "--lines",
                              str(lines)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=REPO_ROOT)
    assert agent.stdout is not None
    ready = agent.stdout.readline().split()
    if not ready or ready[0] != "READY":
        raise SystemExit("the agent process did not start")
    return agent, ready[1:]


def flood(log: Any, rate: float, seconds: float, text: Callable[[int], str],
          tick_s: float = 0.01) -> None:
    """Write `rate` lines a second (`text(n)`) to a stage log for `seconds`, flushed every
    tick: a stage printing at a steady rate."""
    start, sent = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        for _ in range(due - sent):
            log.write(text(sent))
            sent += 1
        log.flush()
        time.sleep(tick_s)


def hidden_option() -> str:
    """argparse help that hides an option (the agent side's --serve)."""
    return argparse.SUPPRESS


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                         text=True)
    return out.stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "bench@seamless.invalid")
    git(path, "config", "user.name", "bench")
    (path / "README").write_text("bench\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


def commit(path: Path, message: str) -> str:
    git(path, "commit", "-q", "--allow-empty", "-m", message)
    return git(path, "rev-parse", "HEAD")
