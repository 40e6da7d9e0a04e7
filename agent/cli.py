"""`seamless-agent`: serve the agent, manage tokens, and drive a running agent.

Commands acting on a running agent go through its REST API (`--agent URL`,
`--token` / $SEAMLESS_TOKEN / the admin-token file); `serve`, `token` and
`install-service` work on the host directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sqlite3
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent import systemd
from agent.cli_client import ADMIN_TOKEN_FILE, Json, Options, fail, table, typer_app
from agent.config import SYSTEM_CONFIG_PATH, AgentConfig, load_config
from agent.onboarding import system_install
from store.models import Role
from store.space import is_storage_full

if TYPE_CHECKING:  # the store (sqlite) loads only for the commands that use it
    from store.store import Store

log = logging.getLogger("seamless.agent")

app = typer_app("Seamless CI/CD agent")
token_app = typer_app("API tokens (works on the database directly)")
pipeline_app = typer_app("pipelines on a running agent")
service_app = typer_app("services on a running agent")
app.add_typer(token_app, name="token")
secrets_app = typer.Typer(help="secrets at rest (works on the database and key directly)",
                          no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
links_app = typer.Typer(help="signed run-page links (works on the key file directly)",
                        no_args_is_help=True)
app.add_typer(links_app, name="links")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(service_app, name="service")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="default ~/.seamless")]


@app.callback()
def options(verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                                  help="say where the API token came from")
                               ] = False,
            token_file: Annotated[Path | None, typer.Option(
                "--token-file", envvar="SEAMLESS_TOKEN_FILE",
                help="read the API token from this file")] = None) -> None:
    """Seamless CI/CD agent. The API token: $SEAMLESS_TOKEN, the keyring, the token file of
    `seamless-tui login`, a local agent's admin-token file (in that order), or --token-file."""
    Options.verbose, Options.token_file = verbose, token_file


def _config(config: Path | None, **overrides: Any) -> AgentConfig:
    try:
        return load_config(config, overrides=overrides)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        fail(f"bad configuration: {exc}", 2)


# -- serve ---------------------------------------------------------------------------------
def ensure_admin_token(store: Store, data_dir: Path) -> Path | None:
    """First start: create an admin token, readable only by the agent's user."""
    path = data_dir / ADMIN_TOKEN_FILE
    if store.list_tokens():
        return None
    token, _ = store.create_token("admin", Role.admin)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return path


async def _serve(config: AgentConfig) -> None:
    import uvicorn

    from agent.api.app import create_app
    from agent.api.serving import server_config
    from agent.runtime import Agent

    agent = Agent(config)
    created = ensure_admin_token(agent.store, config.data_dir)
    if created:
        log.warning("first start: admin token written to %s (mode 0600)", created)
    # Header timeout, connection bound, open-file limit: see agent/api/serving.py.
    server = uvicorn.Server(server_config(create_app(agent), config.host, config.port,
                                          log_level=config.log_level))
    notifier = systemd.Notifier()

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.05)
        notifier.ready(f"serving on {config.url}")
        log.info("seamless agent serving on http://%s:%d", config.host, config.port)
        while not server.should_exit:
            await asyncio.sleep(0.1)
        await notifier.stopping()

    # uvicorn re-raises the signal it caught once it has shut down; make that a no-op so
    # the process ends with status 0 after a clean shutdown.
    signal.signal(signal.SIGTERM, lambda *_: None)
    watcher = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        watcher.cancel()
        agent.close()


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="default 127.0.0.1")] = None,
          port: Annotated[int | None, typer.Option(help="default 8787")] = None,
          config: Annotated[Path | None, typer.Option("--config", help="TOML file")] = None,
          data_dir: DataDir = None) -> None:
    """Run the agent: REST, WebSockets, webhooks, runs. SIGTERM shuts down gracefully."""
    cfg = _config(config, host=host, port=port, data_dir=data_dir)
    if shutil.which("git") is None:  # GitPython would stop the import with a traceback
        fail("git is not installed (or not on PATH): the agent fetches every repository "
             "with it; install it (apt-get install git) and start again", 2)
    logging.basicConfig(level=cfg.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(cfg))


# -- tokens (on the database) ---------------------------------------------------------------
def _store(data_dir: Path | None, config: Path | None = None) -> Any:
    from store.store import Store

    return Store(_config(config, data_dir=data_dir).db_path)


@secrets_app.command("rotate-key")
def rotate_key(data_dir: DataDir = None, config: Annotated[Path | None, typer.Option(
        "--config", help="TOML file")] = None) -> None:
    """A new encryption key for secrets at rest: every stored secret is re-encrypted with
    it, then the old key is dropped. Safe with the agent running (it re-reads the key)."""
    from agent.onboarding.secrets import encrypt_secrets_file
    from store.crypto import SecretCipher, ensure_key_file, new_key, read_keys, write_keys
    from store.store import Store

    cfg = _config(config, data_dir=data_dir)
    path = ensure_key_file(cfg.key_path)
    old = read_keys(path)
    key = new_key()
    try:
        write_keys(path, [key, *old])  # first: both keys, so every value stays readable
        store = Store(cfg.db_path)
        store.cipher = SecretCipher(path)
        changed = store.encrypt_stored_secrets()
        changed += encrypt_secrets_file(cfg, store.cipher, rotate=True)
        store.close()
        write_keys(path, [key])
    except OSError as exc:
        fail(f"cannot rotate the key at {path}: {exc}")
    typer.echo(f"new key in {path}; {changed} secret(s) re-encrypted; old key dropped")


@links_app.command("rotate-key")
def rotate_link_key(data_dir: DataDir = None, config: Annotated[Path | None, typer.Option(
        "--config", help="TOML file")] = None) -> None:
    """A new key for signing run-page links. Links signed with an older key keep working
    until they expire; a key is dropped once no link it signed can still be valid. Safe
    with the agent running (it re-reads the key file)."""
    from agent.run_links import rotate_link_keys

    cfg = _config(config, data_dir=data_dir)
    try:
        keys = rotate_link_keys(cfg.link_key_path, cfg.link_ttl_days * 24 * 3600)
    except (OSError, ValueError) as exc:
        fail(f"cannot rotate the link key at {cfg.link_key_path}: {exc}")
    typer.echo(f"new link key in {cfg.link_key_path}; {len(keys) - 1} older key(s) kept "
               "for unexpired links")


@token_app.command("create")
def token_create(name: Annotated[str, typer.Option(help="who uses it, e.g. ci-bot")],
                 role: Annotated[Role, typer.Option()] = Role.viewer,
                 data_dir: DataDir = None, as_json: Json = False) -> None:
    """Create a token and print it once (only its hash is stored)."""
    token, info = _store(data_dir).create_token(name, role)
    if as_json:
        typer.echo(json.dumps({"token": token, "info": info.model_dump(mode="json")}))
    else:
        typer.echo(token)
        typer.echo(f"# token {info.id} {name!r} ({role.value}); shown once", err=True)


@token_app.command("list")
def token_list(data_dir: DataDir = None, as_json: Json = False) -> None:
    tokens = _store(data_dir).list_tokens()
    if as_json:
        typer.echo(json.dumps([t.model_dump(mode="json") for t in tokens]))
        return
    typer.echo(table([[t.id, t.name, t.role.value, t.created_at.strftime("%Y-%m-%d %H:%M"),
                       "revoked" if t.revoked else ""] for t in tokens],
                     ["ID", "NAME", "ROLE", "CREATED", ""]))


@token_app.command("revoke")
def token_revoke(token_id: int, data_dir: DataDir = None) -> None:
    from store.configs import NotFound

    try:
        _store(data_dir).revoke_token(token_id)
    except NotFound as exc:
        fail(str(exc), 3)
    typer.echo(f"token {token_id} revoked")


# -- systemd -------------------------------------------------------------------------------
def installed_executable() -> Path:
    """This install's `seamless-agent` by absolute path: beside the interpreter of its venv
    (also when started through a symlink such as /usr/local/bin/seamless-agent)."""
    beside = Path(sys.executable).parent / "seamless-agent"
    return beside if beside.exists() else Path(sys.argv[0]).resolve()


@app.command("install-service")
def install_service(
        path: Annotated[Path, typer.Option(help="where to write the unit")] = systemd.UNIT_PATH,
        config: Annotated[Path, typer.Option(help="the config the service reads (written by "
                                             "`seamless-agent init --system`)")
                          ] = SYSTEM_CONFIG_PATH,
        user: Annotated[str, typer.Option(help="the service's user")] = "seamless") -> None:
    """Write the systemd unit (Type=notify, hardened) running this install's seamless-agent
    with --config CONFIG, and print how to enable it."""
    config = config.absolute()
    if not config.is_file():
        fail(f"no config at {config}: run `seamless-agent init --system` first "
             "(or pass --config)", 2)
    try:  # the file alone: the unit must not depend on this shell's SEAMLESS_* variables
        cfg = load_config(config, environ={})
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        fail(f"bad configuration in {config}: {exc}", 2)
    for warning in system_install.check_service_user(user, config, cfg.data_dir):
        typer.echo(f"warning: {warning}", err=True)
    group = systemd.docker_socket_group()
    if group is None:
        typer.echo("warning: no group may use the Docker socket here (no docker group): the "
                   "unit joins none, so the agent reaches no engine (stages wait for one); "
                   "once Docker is installed, run install-service again", err=True)
    unit = systemd.unit_file(installed_executable(), config, cfg.data_dir.absolute(), user,
                             socket_group=group)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(unit)
    except OSError as exc:
        fail(f"cannot write {path}: {exc} (run as root, or pass --path)")
    typer.echo(f"wrote {path}")
    typer.echo(systemd.ENABLE_HINT.format(unit=path))


def main() -> None:
    from agent import cli_remote, cli_runs, cli_tests, front_cli

    cli_remote.register(app, pipeline_app, service_app)
    cli_runs.register(app)
    cli_tests.register(app)
    front_cli.register(app)
    try:
        # Optional: onboarding commands (init, env, service doctor) live in their own module.
        from agent.onboarding.cli import register
    except ImportError:
        register = None  # type: ignore[assignment]
    if register is not None:
        register(app, service_app)
    try:
        app()
    except (sqlite3.Error, OSError) as exc:  # one clear line, never a traceback
        typer.echo(f"error: {_local_failure(exc)}", err=True)
        sys.exit(1)


def _local_failure(exc: BaseException) -> str:
    """What went wrong on this host (the database, the data dir), in one line."""
    if is_storage_full(exc):
        return (f"the disk of the agent's data dir is full ({exc}): nothing was changed;"
                " free space and retry")
    if isinstance(exc, sqlite3.Error):
        return f"the agent's database: {exc}"
    return str(exc)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", 2)

