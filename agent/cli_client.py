"""The CLI's side of the REST API: where the agent is, which token, and printing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

from agent.config import DEFAULT_PORT

ADMIN_TOKEN_FILE = "admin-token"

AgentUrl = Annotated[str | None, typer.Option("--agent", envvar="SEAMLESS_AGENT_URL",
                                              help="agent URL, default http://127.0.0.1:8787")]
Token = Annotated[str | None, typer.Option(
    "--token", help="API token; visible in `ps`: prefer $SEAMLESS_TOKEN or --token-file")]
Json = Annotated[bool, typer.Option("--json", help="machine-readable output")]

# Exit codes for scripts: 0 ok, 1 refused/failed, 2 usage, 3 not found, 4 auth, 5 unreachable.
EXIT_REFUSED, EXIT_NOT_FOUND, EXIT_AUTH, EXIT_UNREACHABLE = 1, 3, 4, 5


def typer_app(help: str, **kwargs: Any) -> typer.Typer:
    """A command group with plain help: Typer's rich help labels every flag with its Python
    type (`--json <bool>`, even `--help <bool>`), as if it took a value."""
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False,
                       rich_markup_mode=None, **kwargs)


def default_data_dir() -> Path:
    return Path(os.environ.get("SEAMLESS_DATA_DIR") or Path.home() / ".seamless")


class Options:
    """The app-wide flags (`seamless-agent --verbose --token-file F COMMAND`)."""

    verbose = False
    token_file: Path | None = None


def resolve_token(url: str, token: str | None, data_dir: Path | None = None
                  ) -> tuple[str | None, str]:
    """The token and where it came from: --token (warned about), --token-file, then
    $SEAMLESS_TOKEN, the keyring, the token file of `seamless-tui login` (the TUI's own
    order), then the admin-token file of a local agent."""
    from seamless_tui.tokens import ARGV_WARNING
    from seamless_tui.tokens import resolve_token as stored_token

    if token:
        typer.echo(f"warning: {ARGV_WARNING}", err=True)
    try:
        found, source = stored_token(url, token, Options.token_file)
    except OSError as exc:
        fail(f"cannot read the token file: {exc}", 2)
    if found:
        return found, source
    path = (data_dir or default_data_dir()) / ADMIN_TOKEN_FILE
    try:
        return (path.read_text().strip() or None), str(path)
    except OSError:
        return None, "none"


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class Remote:
    def __init__(self, url: str | None, token: str | None, as_json: bool = False) -> None:
        self.url = (url or os.environ.get("SEAMLESS_AGENT_URL")
                    or f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/")
        self.token, source = resolve_token(self.url, token)
        if Options.verbose:
            typer.echo(f"using the token from {source} for {self.url}", err=True)
        self.as_json = as_json
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=30)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[4:]

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the agent at {self.url}: {exc}", EXIT_UNREACHABLE)
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = body.get("detail")
                if isinstance(detail, list):
                    detail = "; ".join(f"{d.get('field')}: {d.get('message')}" for d in detail)
                message = f"{body.get('error')}: {detail}"
            except ValueError:
                message = response.text[:300]
            code = {401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND}.get(
                response.status_code, EXIT_REFUSED)
            fail(f"HTTP {response.status_code} {message}", code)
        return response.json() if response.content else None

    def show(self, data: Any, text: str | None = None) -> None:
        if self.as_json or text is None:
            sys.stdout.write(json.dumps(data, indent=None if self.as_json else 2) + "\n")
        else:
            typer.echo(text)


def table(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
