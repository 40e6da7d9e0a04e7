"""CLI commands that act on a running agent through its REST API."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from agent.cli_client import AgentUrl, Json, Remote, Token, fail, table
from store.models import PipelineConfig, ServiceConfig

File = Annotated[Path | None, typer.Option("--file", help="TOML file with the fields")]


def _load(file: Path | None, fields: dict[str, Any], model: type) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if file is not None:
        try:
            with open(file, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            fail(f"cannot read {file}: {exc}", 2)
    data.update({k: v for k, v in fields.items() if v is not None})
    try:  # validate here for field-level messages before the round trip
        return model(**data).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), 2)


def _runs_table(runs: list[dict[str, Any]]) -> str:
    return table([[r["id"], r["service"], r["number"], r["status"], r["trigger"], r["kind"],
                   r["sha"][:10], r.get("branch"), r["created_at"][:19]] for r in runs],
                 ["ID", "SERVICE", "#", "STATUS", "TRIGGER", "KIND", "SHA", "BRANCH", "CREATED"])


def register(app: typer.Typer, pipeline_app: typer.Typer, service_app: typer.Typer) -> None:
    @pipeline_app.command("add")
    def pipeline_add(name: Annotated[str | None, typer.Option()] = None, file: File = None,
                     auto_deploy: Annotated[bool | None, typer.Option()] = None,
                     agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        """Create a pipeline from flags and/or a TOML file."""
        body = _load(file, {"name": name, "auto_deploy": auto_deploy}, PipelineConfig)
        remote = Remote(agent, token, as_json)
        created = remote.call("POST", "/api/v1/pipelines", json=body)
        remote.show(created, f"pipeline {created['name']} created")

    @pipeline_app.command("list")
    def pipeline_list(agent: AgentUrl = None, token: Token = None, as_json: Json = False
                      ) -> None:
        remote = Remote(agent, token, as_json)
        items = remote.call("GET", "/api/v1/pipelines")
        remote.show(items, table([[p["name"], p["executor"], p["auto_deploy"],
                                   p["staging"]["kind"], p["production"]["kind"]]
                                  for p in items],
                                 ["NAME", "EXECUTOR", "AUTO-DEPLOY", "STAGING", "PRODUCTION"]))

    @pipeline_app.command("show")
    def pipeline_show(name: str, agent: AgentUrl = None, token: Token = None) -> None:
        Remote(agent, token, True).show(Remote(agent, token).call("GET",
                                                                  f"/api/v1/pipelines/{name}"))

    @service_app.command("add")
    def service_add(name: Annotated[str | None, typer.Option()] = None,
                    pipeline: Annotated[str | None, typer.Option()] = None,
                    repo: Annotated[str | None, typer.Option("--repo")] = None,
                    branch: Annotated[str | None, typer.Option()] = None,
                    file: File = None, agent: AgentUrl = None, token: Token = None,
                    as_json: Json = False) -> None:
        """Create a service from flags and/or a TOML file (flags win)."""
        body = _load(file, {"name": name, "pipeline": pipeline, "repo_url": repo,
                            "branch": branch}, ServiceConfig)
        remote = Remote(agent, token, as_json)
        created = remote.call("POST", "/api/v1/services", json=body)
        remote.show(created, f"service {created['name']} created in {created['pipeline']}")

    @service_app.command("list")
    def service_list(pipeline: Annotated[str | None, typer.Option()] = None,
                     agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        remote = Remote(agent, token, as_json)
        items = remote.call("GET", "/api/v1/services",
                            params={"pipeline": pipeline} if pipeline else None)
        remote.show(items, table([[s["name"], s["pipeline"], s["branch"], s["repo_url"]]
                                  for s in items], ["NAME", "PIPELINE", "BRANCH", "REPO"]))

    @service_app.command("show")
    def service_show(name: str, agent: AgentUrl = None, token: Token = None) -> None:
        remote = Remote(agent, token, True)
        remote.show(remote.call("GET", f"/api/v1/services/{name}"))

    @service_app.command("remove")
    def service_remove(name: str, teardown: Annotated[bool, typer.Option(
            "--teardown", help="also stop its live deployments and remove its images")] = False,
                       agent: AgentUrl = None, token: Token = None) -> None:
        Remote(agent, token).call("DELETE", f"/api/v1/services/{name}",
                                  params={"teardown": "true"} if teardown else None)
        typer.echo(f"service {name} removed")

    @service_app.command("cache")
    def service_cache(name: str, clear: Annotated[bool, typer.Option(
            "--clear", help="empty it (the next runs fill it again)")] = False,
                      agent: AgentUrl = None, token: Token = None, as_json: Json = False
                      ) -> None:
        """The service's dependency cache: its size, or --clear it."""
        remote = Remote(agent, token, as_json)
        info = remote.call("DELETE" if clear else "GET", f"/api/v1/services/{name}/cache")
        text = (f"{name}: cache cleared ({info['freed_bytes']} bytes freed)" if clear else
                f"{name}: cache {info['bytes']} of {info['max_bytes']} bytes")
        remote.show(info, text)

    @app.command()
    def runs(service: Annotated[str | None, typer.Option()] = None,
             status: Annotated[str | None, typer.Option()] = None,
             limit: int = 20, agent: AgentUrl = None, token: Token = None,
             as_json: Json = False) -> None:
        """Recent runs, newest first."""
        remote = Remote(agent, token, as_json)
        params = {k: v for k, v in (("service", service), ("status", status),
                                    ("limit", limit)) if v is not None}
        page = remote.call("GET", "/api/v1/runs", params=params)
        remote.show(page["items"], _runs_table(page["items"]))

    @app.command()
    def trigger(service: str, branch: Annotated[str | None, typer.Option()] = None,
                sha: Annotated[str | None, typer.Option()] = None,
                partial: Annotated[bool, typer.Option(help="stop after Integration Test")
                                   ] = False,
                agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        """Queue a manual run of SERVICE at a branch head or a sha."""
        remote = Remote(agent, token, as_json)
        body = {"branch": branch, "sha": sha, "kind": "partial" if partial else "full"}
        run = remote.call("POST", f"/api/v1/services/{service}/trigger",
                          json={k: v for k, v in body.items() if v is not None})
        remote.show(run, f"run {run['id']} ({service} #{run['number']}) queued at {run['sha']}")

    def _decide(verb: str, run_id: int, comment: str | None, agent: str | None,
                token: str | None, as_json: bool) -> None:
        remote = Remote(agent, token, as_json)
        approval = remote.call("POST", f"/api/v1/runs/{run_id}/{verb}",
                               json={"comment": comment} if comment else {})
        remote.show(approval, f"run {run_id}: {approval['status']}")

    @app.command()
    def approve(run_id: int, comment: Annotated[str | None, typer.Option()] = None,
                agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        """Approve the production deploy of a run awaiting approval."""
        _decide("approve", run_id, comment, agent, token, as_json)

    @app.command()
    def reject(run_id: int, comment: Annotated[str | None, typer.Option()] = None,
               agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        """Reject the production deploy of a run awaiting approval."""
        _decide("reject", run_id, comment, agent, token, as_json)

    @app.command()
    def rollback(service: str, environment: str, sha: str, agent: AgentUrl = None,
                 token: Token = None, as_json: Json = False) -> None:
        """Deploy an earlier sha of SERVICE to ENVIRONMENT (staging|production)."""
        remote = Remote(agent, token, as_json)
        dep = remote.call("POST", "/api/v1/rollbacks",
                          json={"service": service, "environment": environment, "sha": sha})
        remote.show(dep, f"rollback of {service}/{environment} to {sha[:10]} started "
                         f"(deployment {dep['id']})")

    @app.command()
    def logs(run_id: int, stage: Annotated[str | None, typer.Option()] = None,
             follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
             agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        """Print a run's logs; with --follow, stream until the run finishes."""
        remote = Remote(agent, token, as_json)
        if follow:
            asyncio.run(_follow(remote, run_id, stage))
            return
        after = None
        while True:
            params = {k: v for k, v in (("stage", stage), ("after", after)) if v}
            page = remote.call("GET", f"/api/v1/runs/{run_id}/logs", params=params)
            for line in page["lines"]:
                _print_line(line, as_json)
            if len(page["lines"]) < 1000:
                return
            after = page["next_cursor"]


def _print_line(line: dict[str, Any], as_json: bool) -> None:
    typer.echo(json.dumps(line) if as_json else f"[{line['stage']}] {line['text']}")


async def _follow(remote: Remote, run_id: int, stage: str | None) -> None:
    """Stream over the WebSocket, reconnecting with the last id; stop once the run is
    finished and the stream has been quiet for a moment."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

    finished = {"success", "failed", "cancelled", "rejected", "superseded"}
    last: str | None = None
    headers = {"Authorization": f"Bearer {remote.token}"} if remote.token else {}
    while True:
        query = "&".join(f"{k}={v}" for k, v in (("after", last), ("stage", stage)) if v)
        url = f"{remote.ws_url}/api/v1/ws/runs/{run_id}/logs" + (f"?{query}" if query else "")
        try:
            async with connect(url, additional_headers=headers, max_size=None) as ws:
                while True:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=1.0)
                    except TimeoutError:
                        run = await asyncio.to_thread(remote.call, "GET", f"/api/v1/runs/{run_id}")
                        if run["status"] in finished:
                            return
                        continue
                    message = json.loads(raw)
                    for line in message.get("lines", []):
                        _print_line(line, remote.as_json)
                        last = line["id"]
                    if message.get("type") == "lagged":
                        break
        except (OSError, WebSocketException) as exc:
            refused = getattr(exc, "rcvd", None)  # set on a close frame from the agent
            if refused is not None and refused.code in (4401, 4403, 4404):
                fail(f"log stream refused: {refused.reason}", 3 if refused.code == 4404 else 4)
            await asyncio.sleep(1.0)
