"""`seamless-agent front status`: the HAProxy fronts on this host (no agent needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_client import fail, table

front_app = typer.Typer(help="the deploy fronts (HAProxy) on this host", no_args_is_help=True)


@front_app.command("status")
def front_status(data_dir: Annotated[Path | None, typer.Option(
                     "--data-dir", help="default ~/.seamless")] = None,
                 as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each front: its stable address, container state, and per colour weight and figures."""
    import docker

    from agent.config import load_config
    from agent.deploy.front import status_rows

    try:
        cfg = load_config(None, overrides={"data_dir": data_dir})
    except (OSError, ValueError) as exc:
        fail(f"bad configuration: {exc}", 2)
    try:
        client = docker.DockerClient(base_url=cfg.docker_host) if cfg.docker_host \
            else docker.from_env()
        rows = status_rows(client, cfg.data_dir / "fronts")
    except docker.errors.DockerException as exc:
        fail(f"the Docker engine does not answer: {exc}")
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no fronts: nothing deployed to a Docker target on this engine yet")
        return
    lines = []
    for r in rows:
        colours = "  ".join(
            f"{c} w{s['weight']} {s['status']} {s['requests']} req {s['errors']} err"
            for c, s in r["colours"].items()) or r.get("error", "")
        lines.append([f"{r['service']}/{r['environment']}", f"http://{r['address']}",
                      f"{r['state']} ({r['restarts']} restarts)", colours])
    typer.echo(table(lines, ["SERVICE/ENV", "STABLE ADDRESS", "FRONT", "COLOURS"]))


def register(app: typer.Typer) -> None:
    app.add_typer(front_app, name="front")
