"""`seamless-agent front status`: the HAProxy fronts on this host (no agent needed), and
`seamless-agent canary status|promote|abort` on a running agent (REST)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_client import Remote, fail, table, typer_app

front_app = typer_app("the deploy fronts (HAProxy) on this host")
canary_app = typer_app("canary deploys on a running agent")
AgentUrl = Annotated[str | None, typer.Option("--agent", envvar="SEAMLESS_AGENT_URL",
                                              help="agent URL, default http://127.0.0.1:8787")]
Token = Annotated[str | None, typer.Option("--token", help="API token (or $SEAMLESS_TOKEN)")]
Json = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@front_app.command("status")
def front_status(data_dir: Annotated[Path | None, typer.Option(
                     "--data-dir", help="default ~/.seamless")] = None,
                 as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each front: its stable address, container state, and per colour weight and figures."""
    import docker

    from agent.config import load_config
    from agent.deploy.front import status_rows
    from agent.docker_client import engine_client

    try:
        cfg = load_config(None, overrides={"data_dir": data_dir})
    except (OSError, ValueError) as exc:
        fail(f"bad configuration: {exc}", 2)
    try:
        client = engine_client(cfg.docker_host)
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


@canary_app.command("status")
def canary_status(service: str, environment: str, agent: AgentUrl = None, token: Token = None,
                  as_json: Json = False) -> None:
    """Weights on the front and every measured window of the latest deploy."""
    remote = Remote(agent, token, as_json)
    status = remote.call("GET", f"/api/v1/services/{service}/canary/{environment}")
    if as_json:
        typer.echo(json.dumps(status))
        return
    dep = status.get("deployment") or {}
    weights = ", ".join(f"{c} {w}" for c, w in status["weights"].items()) or "no front"
    typer.echo(f"{service}/{environment}: deployment {dep.get('id', '-')}"
               f" {dep.get('status', '')} {'(canary running)' if status['running'] else ''}"
               f"; weights: {weights}")
    if dep.get("error"):
        typer.echo(f"reason: {dep['error']}")
    rows = [[m["step"], f"{m['weight']}%", m["role"], m["colour"], m["requests"], m["errors"],
             _ms(m["p50_ms"]), _ms(m["p95_ms"]), m["verdict"], m["rule"]]
            for m in status["measurements"]]
    if rows:
        typer.echo(table(rows, ["STEP", "WEIGHT", "ROLE", "COLOUR", "REQ", "ERR", "P50", "P95",
                                "VERDICT", "RULE"]))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _steer(action: str, service: str, environment: str, agent: str | None,
           token: str | None, as_json: bool) -> None:
    remote = Remote(agent, token, as_json)
    dep = remote.call("POST", f"/api/v1/services/{service}/canary/{environment}/{action}")
    remote.show(dep, f"canary of {service}/{environment} ({dep['sha'][:10]}): {action} sent")


@canary_app.command("promote")
def canary_promote(service: str, environment: str, agent: AgentUrl = None,
                   token: Token = None, as_json: Json = False) -> None:
    """Skip the remaining analysis: the canary takes all traffic now."""
    _steer("promote", service, environment, agent, token, as_json)


@canary_app.command("abort")
def canary_abort(service: str, environment: str, agent: AgentUrl = None, token: Token = None,
                 as_json: Json = False) -> None:
    """Weight 0 on the canary at once, drain and remove it; the deploy fails."""
    _steer("abort", service, environment, agent, token, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(front_app, name="front")
    app.add_typer(canary_app, name="canary")
