"""Tokens off the command line: the CLI and the demo take them from the environment or
a file, say which with --verbose, and warn when one is given on the command line."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

from agent.demo.__main__ import make_story, print_keep, tui_command
from agent.demo.agentproc import AgentProcess
from tests.helpers import free_port

BIN = Path(sys.executable).parent / "seamless-agent"


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
    base.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"),
                SEAMLESS_AGENT_URL=f"http://127.0.0.1:{free_port()}", **env)
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60,
                          env=base)


def test_verbose_says_which_token_in_the_documented_order(tmp_path: Path) -> None:
    stored = tmp_path / "config" / "seamless" / "token"
    stored.parent.mkdir(parents=True)
    stored.write_text("http://elsewhere sls_from_login\n")
    from_login = cli(tmp_path, "--verbose", "runs")
    assert f"using the token from {stored}" in from_login.stderr
    from_env = cli(tmp_path, "--verbose", "runs", SEAMLESS_TOKEN="sls_env")
    assert "using the token from SEAMLESS_TOKEN" in from_env.stderr
    token_file = tmp_path / "token"
    token_file.write_text("sls_file\n")
    from_file = cli(tmp_path, "--verbose", "--token-file", str(token_file), "runs",
                    SEAMLESS_TOKEN="sls_env")
    assert f"using the token from --token-file {token_file}" in from_file.stderr
    # Every one of them got as far as the (unreachable) agent: exit 5, not a usage error.
    assert {r.returncode for r in (from_login, from_env, from_file)} == {5}


def test_a_token_on_the_command_line_is_warned_about(tmp_path: Path) -> None:
    result = cli(tmp_path, "runs", "--token", "sls_argv")
    assert "visible to every user" in result.stderr and "ps" in result.stderr


def test_an_unreadable_token_file_is_a_clear_error(tmp_path: Path) -> None:
    result = cli(tmp_path, "--token-file", str(tmp_path / "missing"), "runs")
    assert result.returncode == 2
    assert "cannot read the token file" in result.stderr and "Traceback" not in result.stderr


def test_the_demo_passes_its_token_by_environment_and_file(tmp_path: Path) -> None:
    assert "--token" not in tui_command("http://127.0.0.1:8787")
    agent = AgentProcess(tmp_path, tmp_path / "data", 8787)
    out = io.StringIO()
    with redirect_stdout(out):
        print_keep(agent, "sls_demo_secret", make_story(""))
    assert "sls_demo_secret" not in out.getvalue()
    header = tmp_path / "auth-header"
    assert f"curl -H @{header}" in out.getvalue()
    assert header.read_text() == "Authorization: Bearer sls_demo_secret\n"
    assert stat.S_IMODE(header.stat().st_mode) == 0o600


def test_the_tui_says_which_token_and_warns_about_argv(monkeypatch, capsys, tmp_path: Path
                                                       ) -> None:
    from seamless_tui import cli as tui_cli
    from seamless_tui.app import SeamlessApp

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("SEAMLESS_TOKEN", "sls_env")
    monkeypatch.setattr(SeamlessApp, "run", lambda self, **kw: None)  # no terminal here
    assert tui_cli.main(["--verbose", "--agent", "http://127.0.0.1:1"]) == 0
    assert "using the token from SEAMLESS_TOKEN" in capsys.readouterr().err
    assert tui_cli.main(["--token", "sls_argv", "--agent", "http://127.0.0.1:1"]) == 0
    assert "visible to every user" in capsys.readouterr().err
