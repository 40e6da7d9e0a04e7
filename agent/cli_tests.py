"""`seamless-agent tests …`: a run's test results, a test's history, quarantines and a
service's figures, through the agent's REST API (--json for scripts)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agent.cli_client import AgentUrl, Json, Remote, Token, table, typer_app

GLYPHS = {"passed": "✓", "failed": "✗", "error": "✗", "flaky": "~", "skipped": "-"}

tests_app = typer_app("Test results from JUnit reports: per run, per test, quarantines.")
TestArg = Annotated[str, typer.Argument(help="classname::name, a unique test name, or its id")]


def _name(item: dict[str, Any]) -> str:
    return f"{item['classname']}::{item['name']}" if item["classname"] else item["name"]


def summary_text(summary: dict[str, Any]) -> str:
    lines = []
    for stage in summary["stages"]:
        parts = [f"{stage['failed'] + stage['errors']:,} failed", f"{stage['passed']:,} passed"]
        parts += [f"{stage[k]:,} {k}" for k in ("flaky", "skipped", "quarantined") if stage[k]]
        retry = (f"  (attempts {stage['attempts']}, {stage['retry_s']:.1f} s retried)"
                 if stage["attempts"] > 1 else "")
        lines.append(f"{stage['stage']}: {' / '.join(parts)}{retry}")
    if not summary["stages"]:
        lines.append(f"run {summary['run_id']}: no test reports")
    for failure in summary["failures"]:
        label = ("QUARANTINED" if failure["quarantined"] else failure["outcome"].upper())
        lines.append(f"\n{label}  {_name(failure)}  {failure['history']}  "
                     f"(flaky score {failure['flaky_score']:.2f})")
        if failure["message"]:
            lines.append(f"  {failure['message']}")
        if failure["trace"]:
            lines += [f"    {line}" for line in failure["trace"].splitlines()[-8:]]
    return "\n".join(lines)


@tests_app.command("show")
def show(run_id: int, agent: AgentUrl = None, token: Token = None, as_json: Json = False
         ) -> None:
    """A run's test summary per stage, failures first (message, trace, recent history)."""
    remote = Remote(agent, token, as_json)
    summary = remote.call("GET", f"/api/v1/runs/{run_id}/tests")
    remote.show(summary, summary_text(summary))


@tests_app.command("history")
def history(service: str, test: TestArg,
            limit: Annotated[int, typer.Option(help="runs shown")] = 20,
            agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
    """A test's outcomes across runs, newest first, and its flakiness score."""
    remote = Remote(agent, token, as_json)
    found = remote.call("GET", f"/api/v1/services/{service}/tests/history",
                        params={"test": test, "limit": limit})
    glyphs = "".join(GLYPHS.get(e["outcome"], "?") for e in reversed(found["entries"]))
    held = found.get("quarantine")
    head = (f"{_name(found)} ({found['service']}): {glyphs}  flaky score "
            f"{found['flaky_score']:.2f}"
            + (f"  quarantined by {held['actor']} until {held['expires_at'][:10]}: "
               f"{held['reason']}" if held else ""))
    rows = [[f"#{e['run_number']}", e["sha"][:12], e["stage"], e["attempt"], e["outcome"],
             f"{e['duration_s']:.3f}" if e["duration_s"] is not None else None,
             (e["message"] or "")[:60]] for e in found["entries"]]
    remote.show(found, head + "\n" + table(
        rows, ["run", "sha", "stage", "attempt", "outcome", "seconds", "message"]))


@tests_app.command("quarantine")
def quarantine(service: str, test: TestArg,
               reason: Annotated[str, typer.Option(help="why (kept in the audit trail)")],
               days: Annotated[int, typer.Option(help="expires after this many days")] = 14,
               agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
    """Quarantine (or renew) a test: its failures no longer fail a stage (deployer)."""
    remote = Remote(agent, token, as_json)
    held = remote.call("POST", f"/api/v1/services/{service}/tests/quarantine",
                       json={"test": test, "reason": reason, "days": days})
    remote.show(held, f"{_name(held)} quarantined until {held['expires_at'][:10]}")


@tests_app.command("release")
def release(service: str, test: TestArg, agent: AgentUrl = None, token: Token = None,
            as_json: Json = False) -> None:
    """End a test's quarantine: its failures fail the stage again (deployer)."""
    remote = Remote(agent, token, as_json)
    remote.call("DELETE", f"/api/v1/services/{service}/tests/quarantine", params={"test": test})
    remote.show({"released": test}, f"{test}: quarantine ended")


@tests_app.command("quarantined")
def quarantined(service: str, agent: AgentUrl = None, token: Token = None,
                as_json: Json = False) -> None:
    """The service's tests in quarantine now: who, why, until when."""
    remote = Remote(agent, token, as_json)
    held = remote.call("GET", f"/api/v1/services/{service}/tests/quarantine")
    remote.show(held, table([[_name(q), q["actor"], q["expires_at"][:10], q["reason"]]
                             for q in held], ["test", "by", "until", "reason"]))


@tests_app.command("figures")
def figures(service: str, days: Annotated[int, typer.Option(help="over this many days")] = 30,
            agent: AgentUrl = None, token: Token = None, as_json: Json = False) -> None:
    """Failure rate, flaky rate, slowest tests and time lost to retries."""
    remote = Remote(agent, token, as_json)
    got = remote.call("GET", f"/api/v1/services/{service}/tests/figures", params={"days": days})
    text = (f"{service}, last {days} days: {got['runs']} runs, {got['results']:,} results\n"
            f"failure rate {got['failure_rate']:.1%}  flaky rate {got['flaky_rate']:.1%}  "
            f"retries {got['retries']} ({got['retry_s']:.1f} s lost)  "
            f"quarantined {got['quarantined']}\n" + table(
                [[_name(t), f"{t['mean_s']:.3f}", t["runs"]] for t in got["slowest"]],
                ["slowest tests", "mean s", "runs"]))
    remote.show(got, text)


def register(app: typer.Typer) -> None:
    app.add_typer(tests_app, name="tests")
