"""`seamless-tui [--agent URL] [--token-file F] [--verbose]` and `seamless-tui login`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

DEFAULT_AGENT = "http://127.0.0.1:8787"  # agent.config.DEFAULT_PORT; the TUI imports no agent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seamless-tui",
                                     description="Seamless control center (terminal UI)")
    parser.add_argument("--agent", help=f"agent URL (default: last used, else {DEFAULT_AGENT})")
    parser.add_argument("--token", help="API token; visible in `ps`, so prefer the default: "
                        "$SEAMLESS_TOKEN, then the keyring, then the token file")
    parser.add_argument("--token-file", type=Path, help="read the API token from this file")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say where the token came from")
    sub = parser.add_subparsers(dest="command")
    login = sub.add_parser("login", help="store an API token for an agent")
    login.add_argument("--agent", dest="login_agent")
    login.add_argument("--token", dest="login_token", help="token (default: prompt)")
    return parser


def _check(agent: str, token: str) -> tuple[bool | None, str]:
    """Ask the agent who the token is: (True, who) accepted, (False, why) refused,
    (None, why) when the agent cannot be asked."""
    from seamless_tui.client import AgentClient, AgentUnreachable, ApiError

    async def check() -> tuple[bool | None, str]:
        client = AgentClient(agent, token)
        try:
            me = await client.me()
            return True, f"logged in to {agent} as {me.get('name')} ({me.get('role')})"
        except AgentUnreachable as exc:
            return None, f"warning: could not check the token: {exc.message}"
        except ApiError as exc:
            return False, exc.message
        finally:
            await client.aclose()

    return asyncio.run(check())


def main(argv: list[str] | None = None) -> int:
    from seamless_tui.config import UserConfig
    from seamless_tui.tokens import ARGV_WARNING, resolve_token, store_token

    args = _parser().parse_args(argv)
    config = UserConfig.load()
    if args.command == "login":
        agent = (args.login_agent or args.agent or config.last_agent or DEFAULT_AGENT).rstrip("/")
        if args.login_token:
            print(f"seamless-tui: warning: {ARGV_WARNING}", file=sys.stderr)
        token = args.login_token or getpass.getpass(f"API token for {agent}: ").strip()
        if not token:
            print("seamless-tui: no token given", file=sys.stderr)
            return 2
        accepted, said = _check(agent, token)
        if accepted is False:  # refused: the token already stored (if any) stays
            print(f"seamless-tui: {agent} refused this token ({said}); nothing was stored",
                  file=sys.stderr)
            return 1
        print(store_token(agent, token))
        print(said)
        config.last_agent = agent
        config.save()
        return 0

    agent = (args.agent or config.last_agent or DEFAULT_AGENT).rstrip("/")
    if args.token:
        print(f"seamless-tui: warning: {ARGV_WARNING}", file=sys.stderr)
    try:
        token, source = resolve_token(agent, args.token, args.token_file)
    except OSError as exc:
        print(f"seamless-tui: cannot read the token file: {exc}", file=sys.stderr)
        return 2
    if token is None:
        print(f"seamless-tui: no token for {agent}; run `seamless-tui login`, set "
              "SEAMLESS_TOKEN or pass --token-file", file=sys.stderr)
        return 2
    if args.verbose:
        print(f"seamless-tui: using the token from {source} for {agent}", file=sys.stderr)
    from seamless_tui import quick_escape
    from seamless_tui.app import SeamlessApp
    from seamless_tui.client import AgentClient
    from seamless_tui.theming import IncompleteInstall, check_install

    try:
        check_install(SeamlessApp.CSS_PATH)
    except IncompleteInstall as exc:
        print(f"seamless-tui: {exc}", file=sys.stderr)
        return 3

    if config.last_agent != agent:
        config.last_agent = agent
        config.save()
    app = SeamlessApp(AgentClient(agent, token), config=config)
    app.exit_at_once = True
    quick_escape.install()
    app.run()
    # Textual reports a fatal error (a stylesheet it could not read, a crash) as its return
    # code, not by raising: pass it on so scripts and systemd see the failure.
    return app.return_code or 0


def entry() -> None:
    """The `seamless-tui` program: `main`, then out at once. The terminal is restored and
    everything is saved: skip the interpreter's teardown of every object the session made
    (after a big log, seconds on a busy host: the journey saw `q` leave a blank terminal
    for over 10 s, py-spy showing no Python frame left). Not in `main`, which callers in
    the same process (tests) get back from."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
