"""The CLI a script can rely on: trigger --watch, logs --follow --exit-status, status,
cancel, rerun --from, unpin, --json, and help that shows flags as flags. Against a real
agent served over HTTP, its stages on the fake executor (tests/harness)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from agent.api.app import create_app
from agent.runtime import Agent
from store.models import NoTargetConfig, PipelineConfig, Role, ServiceConfig
from tests.harness import Fakes, agent_config, wait_until
from tests.harness.server import ServerThread

BIN = Path(sys.executable).parent / "seamless-agent"


SHA = "0123456789abcdef0123456789abcdef01234567"  # the fake workspaces take any commit


class Cli:
    def __init__(self, url: str, token: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
        self.env.update(SEAMLESS_AGENT_URL=url, SEAMLESS_TOKEN=token)
        self.url = url

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120,
                              env=self.env)

    def json(self, *args: str) -> dict:
        result = self(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.splitlines()[0])


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    settings = agent_config(tmp_path / "data")
    agent = Agent(settings, Fakes().parts(settings))
    agent.store.create_pipeline(PipelineConfig(name="shop", auto_deploy=False))
    agent.store.create_pipeline(PipelineConfig(name="ci", staging=NoTargetConfig(),
                                               production=NoTargetConfig()))
    services = {"ok": "lines=2", "red": "exit=1 lines=1", "slow": "duration=60",
                "stuck": "duration=60"}
    for name, unit_test in services.items():
        agent.store.create_service(ServiceConfig(
            name=name, pipeline="ci", repo_url=f"https://example.invalid/{name}.git",
            unit_test_command=unit_test, stage_timeout_s=2 if name == "stuck" else None))
    agent.store.create_service(ServiceConfig(name="web", pipeline="shop",
                                             repo_url="https://example.invalid/web.git"))
    token, _ = agent.store.create_token("ci-bot", Role.admin)
    server = ServerThread(create_app(agent)).start()
    try:
        yield Cli(server.url, token)
    finally:
        server.stop()


def status_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_watch_exits_with_the_runs_result(cli: Cli) -> None:
    ok = cli("trigger", "ok", "--sha", SHA, "--partial", "--watch")
    assert ok.returncode == 0, ok.stderr
    assert "[Unit Test]" in ok.stdout
    assert status_line(ok).startswith("==> run ") and status_line(ok).endswith("succeeded")

    red = cli("trigger", "red", "--sha", SHA, "--partial", "--watch")
    assert red.returncode == 1
    assert "failed in Unit Test" in status_line(red)

    stuck = cli("trigger", "stuck", "--sha", SHA, "--partial", "--watch")
    assert stuck.returncode == 2
    assert "timed out in Unit Test" in status_line(stuck)


def test_a_run_waiting_for_approval_stops_the_watch_with_3(cli: Cli) -> None:
    waiting = cli("trigger", "web", "--sha", SHA, "--watch")
    assert waiting.returncode == 3, waiting.stdout + waiting.stderr
    line = status_line(waiting)
    assert "waiting for approval" in line and "seamless-agent approve" in line
    run_id = int(line.split()[2])
    shown = cli.json("status", str(run_id))
    assert shown["status"] == "awaiting_approval"
    assert cli("status", str(run_id), "--exit-status").returncode == 3
    assert cli("approve", str(run_id)).returncode == 0
    approved = cli("logs", str(run_id), "--follow", "--exit-status")
    assert approved.returncode == 0, approved.stdout


def test_cancel_then_follow_exits_2_and_json_ends_with_a_status_object(cli: Cli) -> None:
    run = cli.json("trigger", "slow", "--sha", SHA, "--partial")
    wait_until(lambda: cli.json("status", str(run["id"]))["status"] == "running",
               timeout=30, what="the slow run to start")
    cancelled = cli("cancel", str(run["id"]))
    assert cancelled.returncode == 0 and "cancel" in cancelled.stdout  # requested or done
    followed = cli("logs", str(run["id"]), "--follow", "--exit-status", "--json")
    assert followed.returncode == 2
    last = json.loads(followed.stdout.strip().splitlines()[-1])
    assert (last["type"], last["status"], last["exit_code"]) == ("status", "cancelled", 2)
    # Without --exit-status the same follow says the result but exits 0 (like gh run watch).
    assert cli("logs", str(run["id"]), "--follow").returncode == 0


def test_rerun_from_a_stage_and_unpin(cli: Cli) -> None:
    red = cli("trigger", "red", "--sha", SHA, "--partial", "--watch")
    first = int(status_line(red).split()[2])
    again = cli.json("rerun", str(first), "--from", "Unit Test")
    assert (again["rerun_of"], again["rerun_from_stage"]) == (first, "Unit Test")
    watched = cli("rerun", str(first), "--watch")
    assert watched.returncode == 1 and "failed in Unit Test" in status_line(watched)
    bad = cli("rerun", str(first), "--from", "Lunch")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr

    unpinned = cli("unpin", "web", "production")
    assert unpinned.returncode == 0 and "unpinned" in unpinned.stdout
    assert cli.json("unpin", "web", "staging")["name"] == "web"
    assert cli("unpin", "web", "moon").returncode != 0


def test_read_commands_speak_json(cli: Cli) -> None:
    cli("trigger", "ok", "--sha", SHA, "--partial", "--watch")
    for args in (["runs"], ["pipeline", "list"], ["pipeline", "show", "ci"],
                 ["service", "list"], ["service", "show", "ok"], ["status", "1"],
                 ["logs", "1"]):
        result = cli(*args, "--json")
        assert result.returncode == 0, (args, result.stderr)
        for line in result.stdout.strip().splitlines() if args[0] == "logs" else [
                result.stdout]:
            json.loads(line)


def test_runs_url_prints_the_runs_signed_page_link(cli: Cli) -> None:
    cli("trigger", "ok", "--sha", SHA, "--partial", "--watch")
    result = cli("runs", "1", "--url")
    assert result.returncode == 0, result.stderr
    link = urlsplit(result.stdout.strip())
    assert link.path == "/runs/1" and "sig=" in link.query
    page = httpx.get(f"{cli.url}/runs/1?{link.query}", timeout=10)  # no token needed
    assert page.status_code == 200 and "ok" in page.text and "Unit Test" in page.text
    assert httpx.get(f"{cli.url}/runs/2?{link.query}", timeout=10).status_code == 403
    shown = cli("runs", "1")
    assert shown.returncode == 0 and "ok" in shown.stdout
    missing = cli("runs", "--url")
    assert missing.returncode != 0 and "--url needs a run" in missing.stderr


def help_of(*path: str) -> str:
    """The real program's --help (one Python start-up: ~1 s, far more on a loaded host)."""
    shown = subprocess.run([str(BIN), *path, "--help"], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, (path, shown.stderr)
    return shown.stdout


def _the_cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The program's command tree in this process, every command registered as `main`
    does it (main() registers, then runs `--help` and exits)."""
    import agent.cli

    monkeypatch.setattr(sys, "argv", ["seamless-agent", "--help"])
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        agent.cli.main()
    return agent.cli.app


def subcommands(help_text: str) -> list[str]:
    if "\nCommands:\n" not in help_text:
        return []
    listed = help_text.split("\nCommands:\n", 1)[1].splitlines()
    return [line.split()[0] for line in listed if line.startswith("  ") and line.split()
            and not line.startswith("   ")]


def test_help_shows_flags_as_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command's --help: a flag is shown without a value (no `--json <bool>`). The
    tree is walked in this process (a program start per command took 300 s at load 20);
    the real program's own --help is checked the same way."""
    app, runner = _the_cli(monkeypatch), CliRunner()
    top = help_of()
    assert "<bool>" not in top and "  --help " in top and "\nCommands:\n" in top, top
    seen = []
    todo: list[tuple[str, ...]] = [()]
    while todo:
        path = todo.pop()
        shown = runner.invoke(app, [*path, "--help"], prog_name="seamless-agent")
        assert shown.exit_code == 0, (path, shown.output)
        text = shown.output
        seen.append(path)
        assert "<bool>" not in text, (path, text)
        assert "  --help " in text, (path, text)
        todo += [(*path, name) for name in subcommands(text)]
    assert set(subcommands(top)) == set(subcommands(runner.invoke(
        app, ["--help"], prog_name="seamless-agent").output))  # the same tree as the program
    assert {("logs",), ("trigger",), ("cancel",), ("rerun",), ("unpin",),
            ("service", "add")} <= set(seen)
