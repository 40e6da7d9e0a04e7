"""CLI commands on runs that scripts rely on (`gh run watch` is the model): trigger,
status, logs (--follow, --exit-status), cancel, rerun, unpin. Exit codes: EXIT_CODES."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from agent.cli_client import AgentUrl, Json, Remote, Token

EXIT_SUCCESS, EXIT_FAILED, EXIT_CANCELLED, EXIT_APPROVAL, EXIT_RUNNING = 0, 1, 2, 3, 4
# \b keeps click from re-wrapping the list in --help.
EXIT_CODES = """\
Exit codes with --exit-status / --watch, the run's result:

\b
  0  success
  1  failed, or its production deploy rejected
  2  cancelled, timed out or superseded
  3  waiting for approval (the watch stops there and says so)
  4  still queued or running (only without --follow)

Errors: 3 not found, 4 authentication, 5 the agent is unreachable.
"""
FINISHED = {"success", "failed", "cancelled", "rejected", "superseded"}
STOPS_WATCH = FINISHED | {"awaiting_approval"}

Watch = Annotated[bool, typer.Option("--watch", "-w", help="follow the run's logs, then exit "
                                     "with its result (see `logs --exit-status`)")]


def outcome(run: dict[str, Any]) -> tuple[int, str]:
    """The exit code for a run's state, and the status line that says it."""
    status = run["status"]
    stages = run.get("stages") or []
    timed_out = [s["name"] for s in stages if s.get("status") == "timed_out"]
    failed = [s["name"] for s in stages if s.get("status") == "failed"]
    head = f"run {run['id']} ({run['service']} #{run['number']})"
    if status == "success":
        return EXIT_SUCCESS, f"{head} succeeded"
    if status == "awaiting_approval":
        return EXIT_APPROVAL, (f"{head} is waiting for approval of its production deploy: "
                               f"seamless-agent approve {run['id']} (or reject)")
    if timed_out:
        return EXIT_CANCELLED, f"{head} timed out in {', '.join(timed_out)}"
    if status in ("cancelled", "superseded"):
        return EXIT_CANCELLED, f"{head} was {status}"
    if status == "failed":
        where = f" in {', '.join(failed)}" if failed else ""
        why = f": {run['error']}" if run.get("error") else ""
        return EXIT_FAILED, f"{head} failed{where}{why}"
    if status == "rejected":
        return EXIT_FAILED, f"{head}: its production deploy was rejected"
    return EXIT_RUNNING, f"{head} is {status.replace('_', ' ')}"


def finish(remote: Remote, run_id: int, exit_status: bool) -> None:
    """Print the status line (a JSON object with --json) and exit with the run's code."""
    run = remote.call("GET", f"/api/v1/runs/{run_id}")
    code, line = outcome(run)
    if remote.as_json:
        typer.echo(json.dumps({"type": "status", "run": run_id, "status": run["status"],
                               "exit_code": code, "message": line}))
    else:
        typer.echo(f"==> {line}")
    raise typer.Exit(code if exit_status else 0)


def _print_line(line: dict[str, Any], as_json: bool) -> None:
    typer.echo(json.dumps(line) if as_json else f"[{line['stage']}] {line['text']}")


def print_logs(remote: Remote, run_id: int, stage: str | None) -> None:
    after = None
    while True:
        params = {k: v for k, v in (("stage", stage), ("after", after)) if v}
        page = remote.call("GET", f"/api/v1/runs/{run_id}/logs", params=params)
        for line in page["lines"]:
            _print_line(line, remote.as_json)
        if len(page["lines"]) < 1000:
            return
        after = page["next_cursor"]


async def follow(remote: Remote, run_id: int, stage: str | None) -> None:
    """Stream over the WebSocket, reconnecting with the last id; stop once the run is
    finished or waits for approval and the stream has been quiet for a moment."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

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
                        if run["status"] in STOPS_WATCH:
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
                typer.echo(f"error: log stream refused: {refused.reason}", err=True)
                raise typer.Exit(3 if refused.code == 4404 else 4) from exc
            await asyncio.sleep(1.0)


def watch(remote: Remote, run_id: int) -> None:
    asyncio.run(follow(remote, run_id, None))
    finish(remote, run_id, exit_status=True)


def _stages_table(run: dict[str, Any]) -> str:
    rows = [f"  {s['name']:<20} {s['status']}" for s in run.get("stages") or []]
    return "\n".join([outcome(run)[1], *rows])


def register(app: typer.Typer) -> None:
    @app.command(help=f"Queue a manual run of SERVICE at a branch head or a sha.\n\n{EXIT_CODES}")
    def trigger(service: str, branch: Annotated[str | None, typer.Option()] = None,
                sha: Annotated[str | None, typer.Option()] = None,
                partial: Annotated[bool, typer.Option(help="stop after Integration Test")
                                   ] = False,
                watch_run: Watch = False,
                every_service: Annotated[bool, typer.Option(
                    "--all", help="run every service of SERVICE's repository (a monorepo), "
                                  "whatever changed, dependencies first")] = False,
                agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        remote = Remote(agent, token, as_json)
        body = {"branch": branch, "sha": sha, "kind": "partial" if partial else "full"}
        payload = {k: v for k, v in body.items() if v is not None}
        if every_service:
            runs = remote.call("POST", f"/api/v1/services/{service}/trigger-all", json=payload)
            remote.show(runs, "\n".join(f"run {r['id']} ({r['service']} #{r['number']}) queued"
                                        f" at {r['sha']}" for r in runs))
            if watch_run:  # each run followed in turn; the exit code is the worst of them
                codes = [0]
                for run in runs:
                    asyncio.run(follow(remote, run["id"], None))
                    code, line = outcome(remote.call("GET", f"/api/v1/runs/{run['id']}"))
                    typer.echo(f"==> {line}")
                    codes.append(code)
                raise typer.Exit(max(codes))
            return
        run = remote.call("POST", f"/api/v1/services/{service}/trigger", json=payload)
        remote.show(run, f"run {run['id']} ({service} #{run['number']}) queued at {run['sha']}")
        if watch_run:
            watch(remote, run["id"])

    @app.command()
    def decisions(service: Annotated[str | None, typer.Option()] = None,
                  sha: Annotated[str | None, typer.Option()] = None,
                  limit: Annotated[int, typer.Option()] = 20,
                  agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        """Why each service of a shared repository ran or not, per push (newest first)."""
        remote = Remote(agent, token, as_json)
        params: dict[str, str | int] = {"limit": limit}
        if service:
            params["service"] = service
        if sha:
            params["sha"] = sha
        found = remote.call("GET", "/api/v1/decisions", params=params)
        remote.show(found, "\n".join(
            f"{d['sha'][:12]} {d['service']}: {'ran' if d['ran'] else 'not run'}"
            f"{' (run ' + str(d['run_id']) + ')' if d['run_id'] else ''} - {d['reason']}"
            for d in found) or "no decisions")

    @app.command()
    def status(run_id: int, exit_status: Annotated[bool, typer.Option(
                   "--exit-status", help="exit with the run's result (codes: `logs --help`)")
               ] = False,
               agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        """A run's status and its stages."""
        remote = Remote(agent, token, as_json)
        run = remote.call("GET", f"/api/v1/runs/{run_id}")
        remote.show(run, _stages_table(run))
        if exit_status:
            raise typer.Exit(outcome(run)[0])

    @app.command(help="Print a run's logs; with --follow, stream until the run finishes or "
                      f"waits for approval, then print a status line.\n\n{EXIT_CODES}")
    def logs(run_id: int, stage: Annotated[str | None, typer.Option()] = None,
             follow_run: Annotated[bool, typer.Option("--follow", "-f")] = False,
             exit_status: Annotated[bool, typer.Option(
                 "--exit-status", help="exit with the run's result (codes below)")] = False,
             agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        remote = Remote(agent, token, as_json)
        if follow_run:
            asyncio.run(follow(remote, run_id, stage))
        else:
            print_logs(remote, run_id, stage)
        if follow_run or exit_status:
            finish(remote, run_id, exit_status)

    @app.command()
    def cancel(run_id: int, agent: AgentUrl = None, token: Token = None,
               as_json: Json = False) -> None:
        """Cancel a queued or running run (its running stage is stopped)."""
        remote = Remote(agent, token, as_json)
        run = remote.call("POST", f"/api/v1/runs/{run_id}/cancel")
        state = run["status"] if run["status"] in FINISHED else "cancel requested (it stops " \
            f"its {run['status']} stage; `seamless-agent logs {run_id} --follow` shows the end)"
        remote.show(run, f"run {run_id} ({run['service']} #{run['number']}): {state}")

    @app.command()
    def rerun(run_id: int,
              from_stage: Annotated[str | None, typer.Option(
                  "--from", help="rerun from this stage, reusing the earlier stages' results")
              ] = None,
              watch_run: Watch = False,
              agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
        """Run RUN_ID again (a new run of the same sha), whole or from a stage."""
        remote = Remote(agent, token, as_json)
        run = remote.call("POST", f"/api/v1/runs/{run_id}/rerun",
                          json={"from_stage": from_stage} if from_stage else {})
        remote.show(run, f"run {run['id']} ({run['service']} #{run['number']}) queued: rerun "
                         f"of {run_id} from {from_stage or 'the start'}")
        if watch_run:
            watch(remote, run["id"])

    @app.command()
    def unpin(service: str, environment: str, agent: AgentUrl = None, token: Token = None,
              as_json: Json = False) -> None:
        """Let deploys reach ENVIRONMENT of SERVICE again after a rollback pinned it."""
        remote = Remote(agent, token, as_json)
        shown = remote.call("POST", f"/api/v1/services/{service}/unpin/{environment}")
        remote.show(shown, f"{service}/{environment} unpinned: the next deploy goes out")
