"""`python -m agent.demo [--headless] [--keep] [--dir DIR] [--port PORT]` (`make demo`)."""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from agent.demo.agentproc import AgentProcess, Api, pick_ports
from agent.demo.checks import Verifier, report, served_without_agent
from agent.demo.scenario import Scenario, Story
from agent.demo.shop import (
    MONO_SERVICES,
    SERVICE_NAMES,
    create_monorepo,
    create_shop,
    service_name,
)

STAGING_PORTS = [18081, 18082, 18083, 18084, 18085]
PRODUCTION_PORTS = [18091, 18092, 18093, 18094, 18095]


class Progress:
    """Timestamped progress lines, to the terminal (headless) or a file (under the TUI)."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.t0 = out, time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self.lock:
            self.out.write(f"[{time.monotonic() - self.t0:6.1f}s] {text}\n")
            self.out.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="make demo ARGS=…", description=__doc__)
    p.add_argument("--headless", action="store_true",
                   help="no TUI: print progress, verify every outcome, exit non-zero on a miss")
    p.add_argument("--keep", action="store_true",
                   help="leave the demo agent running afterwards (stop: make demo-clean)")
    p.add_argument("--dir", type=Path, default=Path.cwd() / ".demo",
                   help="where the demo lives (default: ./.demo)")
    p.add_argument("--port", type=int, default=8787, help="agent port (another if busy)")
    p.add_argument("--suffix", default="", type=_suffix,
                   help="name the services <name>-SUFFIX, so two demos can share one Docker "
                        "engine (the test suite uses it)")
    return p.parse_args(argv)


def _suffix(value: str) -> str:
    if value and not re.fullmatch(r"[a-z0-9]{1,12}", value):
        raise argparse.ArgumentTypeError("1-12 lowercase letters or digits")
    return value


def stop_previous(workdir: Path) -> None:
    """A kept agent of an earlier demo in the same directory: stop it by its recorded pid."""
    pid_file = workdir / "agent.pid"
    try:
        pid = int(pid_file.read_text().strip())
        # The pid may have been reused since (a reboot): only stop our own agent.
        if b"serve" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.2)


def fresh_workdir(workdir: Path) -> None:
    """Start from scratch, but never wipe a directory an earlier demo did not make."""
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / "demo.json").exists():
        raise SystemExit(f"demo: {workdir} exists and is not a demo directory; "
                         "choose another --dir")
    stop_previous(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "demo.json").write_text("{}\n")  # the marker; filled in by write_state


def make_story(suffix: str) -> Story:
    roles = (*SERVICE_NAMES, *MONO_SERVICES)
    staging = pick_ports(STAGING_PORTS)
    production = pick_ports(PRODUCTION_PORTS, taken=set(staging))
    ports = {name: {"staging": s, "production": p}
             for name, s, p in zip(roles, staging, production, strict=True)}
    keys = {n: secrets.token_hex(16) for n in SERVICE_NAMES}
    shared = secrets.token_hex(16)  # one repository, one webhook: one secret
    keys.update({role: shared for role in MONO_SERVICES})
    return Story(names={role: service_name(role, suffix) for role in roles},
                 ports=ports, secrets=keys)


def write_state(workdir: Path, agent: AgentProcess, token: str | None, story: Story,
                instance: str | None = None) -> None:
    # demo-clean reads the agent's instance id from here: it removes only what carries it.
    state = {"url": agent.url, "token": token, "pid": agent.proc.pid if agent.proc else None,
             "instance": instance, "services": list(story.names.values()),
             "ports": story.ports, "shas": story.shas}
    (workdir / "demo.json").write_text(json.dumps(state, indent=2) + "\n")


def tui_command(url: str) -> list[str]:
    """The TUI for the demo agent; its token goes by environment (tui_env), never argv."""
    exe = Path(sys.executable).with_name("seamless-tui")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "seamless_tui.cli"]
    return [*base, "--agent", url]


def tui_env(token: str) -> dict[str, str]:
    return {**os.environ, "SEAMLESS_TOKEN": token}


def write_auth_header(workdir: Path, token: str) -> Path:
    """The header for `curl -H @file`: the token stays out of every command line."""
    path = workdir / "auth-header"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"Authorization: Bearer {token}\n")
    return path


def print_keep(agent: AgentProcess, token: str, story: Story) -> None:
    pid = agent.proc.pid if agent.proc else "?"
    header = write_auth_header(agent.workdir, token)
    print(f"\nThe demo agent keeps running at {agent.url} (pid {pid}).")
    print(f"  TUI:    SEAMLESS_TOKEN=$(cat {agent.token_path}) .venv/bin/seamless-tui "
          f"--agent {agent.url}")
    print(f"  REST:   curl -H @{header} {agent.url}/api/v1/overview")
    for role, ports in story.ports.items():
        print(f"  {story.names[role]:<14} staging http://127.0.0.1:{ports['staging']}/  "
              f"production http://127.0.0.1:{ports['production']}/")
    print(f"  Fronts: .venv/bin/seamless-agent front status --data-dir {agent.data_dir}"
          "  (HAProxy, outside the agent: production serves while it is stopped)")
    print("  Stop it and remove everything the demo made: make demo-clean")


def run_headless(scenario: Scenario, api: Api, story: Story, say: Progress) -> bool:
    scenario.run()
    say("verifying every outcome through the REST API and the stable ports")
    return report(Verifier(api, story).all(), say)


def run_with_tui(scenario: Scenario, agent: AgentProcess, token: str, workdir: Path) -> bool:
    """The story plays in the background while the TUI shows it live."""
    errors: list[str] = []

    def play() -> None:
        try:
            scenario.run()
            scenario.say("the story is complete: approve notifications v2 in the TUI")
        except Exception as exc:
            errors.append(str(exc))
            scenario.say(f"the story stopped: {exc}")

    thread = threading.Thread(target=play, name="demo-story", daemon=True)
    thread.start()
    subprocess.run(tui_command(agent.url), env=tui_env(token), check=False)
    if thread.is_alive():
        print(f"You left the TUI before the story ended; its progress is in {workdir}/demo.log")
    for err in errors:
        print(f"demo: the story stopped: {err}", file=sys.stderr)
    return not errors


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.dir.resolve()
    fresh_workdir(workdir)
    log_file = sys.stdout if args.headless else open(workdir / "demo.log", "a")  # noqa: SIM115
    say = Progress(log_file)
    print(f"demo: building the shop in {workdir}")
    repos = create_shop(workdir / "repos", args.suffix)
    mono = create_monorepo(workdir / "repos", args.suffix)
    story = make_story(args.suffix)
    port = pick_ports([args.port])[0]
    agent = AgentProcess(workdir, workdir / "data", port)
    write_state(workdir, agent, None, story)
    print(f"demo: starting the agent on {agent.url} (log: {agent.log_path})")
    ok = False
    try:
        agent.start()
        token = agent.admin_token()
        api = Api(agent.url, token)
        scenario = Scenario(api, repos, story, say, mono)
        instance = str(api.get("/api/v1/info")["instance"])
        write_state(workdir, agent, token, story, instance)
        if args.headless:
            ok = run_headless(scenario, api, story, say)
            say("stopping the agent: the HAProxy fronts keep every environment serving")
            agent.stop()
            ok = report(served_without_agent(story), say) and ok
            if args.keep:
                agent.start()
        else:
            print("demo: opening the TUI (the story plays live; press q to leave)")
            ok = run_with_tui(scenario, agent, token, workdir)
        write_state(workdir, agent, token, story, instance)
    except Exception as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        print(f"agent log tail ({agent.log_path}):\n{agent.log_tail()}", file=sys.stderr)
    finally:
        if args.keep and agent.running():
            print_keep(agent, agent.admin_token(), story)
        else:
            agent.stop()
            print("demo: agent stopped; production keeps serving through its HAProxy fronts"
                  f" (see them: .venv/bin/seamless-agent front status --data-dir {agent.data_dir});"
                  " everything stays until make demo-clean")
    if args.headless:
        print("demo: " + ("every expected outcome happened" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
