"""CLI commands that act on a running agent through its REST API."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from agent.api.errors import readable
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
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {readable(e['msg'])}"
                       for e in exc.errors()), 2)


def _status(run: dict[str, Any]) -> str:
    """`queued: waiting for the Docker engine (…)` for a run held back."""
    return f"{run['status']}: {run['waiting']}" if run.get("waiting") else run["status"]


def _runs_table(runs: list[dict[str, Any]]) -> str:
    return table([[r["id"], r["service"], r["number"], _status(r), r["trigger"], r["kind"],
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
    def pipeline_show(name: str, agent: AgentUrl = None, token: Token = None,
                      as_json: Json = True) -> None:
        """The pipeline as JSON (--json accepted like every read command)."""
        remote = Remote(agent, token, True)
        remote.show(remote.call("GET", f"/api/v1/pipelines/{name}"))

    @service_app.command("add")
    def service_add(name: Annotated[str | None, typer.Option()] = None,
                    pipeline: Annotated[str | None, typer.Option()] = None,
                    repo: Annotated[str | None, typer.Option("--repo")] = None,
                    branch: Annotated[str | None, typer.Option()] = None,
                    file: File = None,
                    no_check: Annotated[bool, typer.Option(
                        "--no-check", help="skip the git ls-remote check of the repository "
                        "and branch (a host that cannot reach the remote yet)")] = False,
                    agent: AgentUrl = None, token: Token = None,
                    as_json: Json = False) -> None:
        """Create a service from flags and/or a TOML file (flags win). The agent first checks
        that the repository answers and has the branch, and says which failed."""
        body = _load(file, {"name": name, "pipeline": pipeline, "repo_url": repo,
                            "branch": branch}, ServiceConfig)
        remote = Remote(agent, token, as_json)
        created = remote.call("POST", "/api/v1/services", json=body,
                              params={"check": "false"} if no_check else None)
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
    def service_show(name: str, agent: AgentUrl = None, token: Token = None,
                     as_json: Json = True) -> None:
        """The service as JSON (--json accepted like every read command)."""
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
    def runs(run_id: Annotated[int | None, typer.Argument(
                 help="one run (with --url: its page's link)", show_default=False)] = None,
             url: Annotated[bool, typer.Option(
                 "--url", help="print RUN_ID's page link for browsers: signed, it opens "
                 "that run's page and logs for anyone holding it until it expires")] = False,
             service: Annotated[str | None, typer.Option()] = None,
             status: Annotated[str | None, typer.Option()] = None,
             limit: int = 20, agent: AgentUrl = None, token: Token = None,
             as_json: Json = False) -> None:
        """Recent runs, newest first; `runs N --url`: run N's page link."""
        remote = Remote(agent, token, as_json)
        if url and run_id is None:
            fail("--url needs a run: seamless-agent runs RUN_ID --url")
        if run_id is not None:
            if url:
                link = remote.call("GET", f"/api/v1/runs/{run_id}/link")
                remote.show(link, link["url"])
            else:
                run = remote.call("GET", f"/api/v1/runs/{run_id}")
                remote.show(run, _runs_table([run]))
            return
        params = {k: v for k, v in (("service", service), ("status", status),
                                    ("limit", limit)) if v is not None}
        page = remote.call("GET", "/api/v1/runs", params=params)
        remote.show(page["items"], _runs_table(page["items"]))

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
