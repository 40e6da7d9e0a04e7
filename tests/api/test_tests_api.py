"""Test results over REST, the CLI (--json) and /metrics, against a real agent served over
HTTP, its stages on the fake executor writing real JUnit XML: a run's summary and
failures, a test's history, quarantine (deployer, audited, expiring), service figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.api.app import create_app
from agent.executors.base import StageSpec
from agent.runtime import Agent
from store.models import NoTargetConfig, PipelineConfig, Role, RunInfo, ServiceConfig
from tests.api.test_cli_runs import Cli
from tests.harness import Fakes, agent_config, wait_until
from tests.harness.server import ServerThread
from tests.junit_fixtures import junit_xml, many_cases

SHA = "0123456789abcdef0123456789abcdef01234567"


class Live:
    def __init__(self, agent: Agent, server: ServerThread, tokens: dict[Role, str]) -> None:
        self.agent, self.server, self.tokens = agent, server, tokens
        self.cli = Cli(server.url, tokens[Role.deployer])

    def client(self, role: Role) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=10,
                            headers={"Authorization": f"Bearer {self.tokens[role]}"})

    def run(self, sha: str = SHA) -> RunInfo:
        with self.client(Role.deployer) as c:
            r = c.post("/api/v1/services/payments/trigger", json={"sha": sha})
        assert r.status_code in (200, 201), r.text
        run_id = r.json()["id"]
        wait_until(lambda: self.agent.store.get_run(run_id).status.finished, timeout=30)
        return self.agent.store.get_run(run_id)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    settings = agent_config(tmp_path / "data")
    fakes = Fakes()

    def reports(spec: StageSpec) -> None:
        if spec.stage == "Unit Test":
            (spec.workspace / "junit.xml").write_text(junit_xml(
                [("tests.test_pay", "test_refund", "failed"), *many_cases(1204)],
                message="refund timed out"))

    fakes.executor.on_run = reports
    agent = Agent(settings, fakes.parts(settings))
    agent.store.create_pipeline(PipelineConfig(name="ci", staging=NoTargetConfig(),
                                               production=NoTargetConfig()))
    agent.store.create_service(ServiceConfig(
        name="payments", pipeline="ci", repo_url="https://example.invalid/payments.git",
        unit_test_command="exit=1 lines=1", dockerfile=None))
    tokens = {role: agent.store.create_token(f"{role.value}-bot", role)[0] for role in Role}
    server = ServerThread(create_app(agent)).start()
    try:
        yield Live(agent, server, tokens)
    finally:
        server.stop()


def test_summary_history_and_quarantine_over_rest(live: Live) -> None:
    run = live.run()
    with live.client(Role.viewer) as viewer:
        summary = viewer.get(f"/api/v1/runs/{run.id}/tests").json()
        assert [(s["stage"], s["failed"], s["passed"]) for s in summary["stages"]] == [
            ("Unit Test", 1, 1204)]
        failure = summary["failures"][0]
        assert (failure["name"], failure["message"], failure["history"]) == (
            "test_refund", "refund timed out", "✗")
        history = viewer.get("/api/v1/services/payments/tests/history",
                             params={"test": "tests.test_pay::test_refund"}).json()
        assert [e["outcome"] for e in history["entries"]] == ["failed"]
        assert viewer.get("/api/v1/services/payments/tests/history",
                          params={"test": "nope"}).status_code == 404
        refused = viewer.post("/api/v1/services/payments/tests/quarantine",
                              json={"test": "test_refund", "reason": "flaky on CI"})
        assert refused.status_code == 403  # a viewer cannot quarantine

    with live.client(Role.deployer) as deployer:
        held = deployer.post("/api/v1/services/payments/tests/quarantine",
                             json={"test": "test_refund", "reason": "flaky on CI, #123"})
        assert held.status_code == 201, held.text
        assert held.json()["actor"] == "deployer-bot"
    audit = live.agent.store.list_audit()
    assert (audit[0].actor, audit[0].action, audit[0].target) == (
        "deployer-bot", "test.quarantine", "payments tests.test_pay::test_refund")
    assert "flaky on CI, #123" in (audit[0].detail or "")

    second = live.run("1" * 40)  # exit 1, but only the quarantined test failed
    assert second.status.value == "success", second.error
    with live.client(Role.viewer) as viewer:
        summary = viewer.get(f"/api/v1/runs/{second.id}/tests").json()
        assert summary["stages"][0]["quarantined"] == 1
        assert summary["failures"][0]["quarantined"] is True
        assert summary["failures"][0]["history"] == "✗✗"
        figures = viewer.get("/api/v1/services/payments/tests/figures").json()
        assert figures["runs"] == 2 and figures["quarantined"] == 1
        assert figures["failure_rate"] == pytest.approx(2 / (2 * 1205))
        assert len(figures["slowest"]) == 10
        metrics = viewer.get("/metrics").text
    assert 'seamless_tests_quarantined{service="payments"} 1.0' in metrics
    assert 'seamless_test_failure_rate{service="payments"}' in metrics

    with live.client(Role.deployer) as deployer:
        assert deployer.delete("/api/v1/services/payments/tests/quarantine",
                               params={"test": "test_refund"}).status_code == 204
        assert deployer.delete("/api/v1/services/payments/tests/quarantine",
                               params={"test": "test_refund"}).status_code == 404
    assert live.run("2" * 40).status.value == "failed"


def test_the_cli_reads_and_quarantines(live: Live) -> None:
    run = live.run()
    shown = live.cli("tests", "show", str(run.id))
    assert shown.returncode == 0, shown.stderr
    assert "Unit Test: 1 failed / 1,204 passed" in shown.stdout
    assert "FAILED  tests.test_pay::test_refund  ✗" in shown.stdout
    as_json = live.cli.json("tests", "show", str(run.id))
    assert as_json["failures"][0]["name"] == "test_refund"

    held = live.cli("tests", "quarantine", "payments", "tests.test_pay::test_refund",
                    "--reason", "timing-dependent", "--days", "3")
    assert held.returncode == 0, held.stderr
    assert "quarantined until" in held.stdout
    listed = json.loads(live.cli("tests", "quarantined", "payments", "--json").stdout)
    assert [(q["name"], q["reason"]) for q in listed] == [("test_refund", "timing-dependent")]
    history = live.cli("tests", "history", "payments", "test_refund")
    assert history.returncode == 0 and "quarantined by deployer-bot" in history.stdout
    missing = live.cli("tests", "history", "payments", "no_such_test")
    assert missing.returncode == 3 and "no test 'no_such_test'" in missing.stderr
    figures = live.cli.json("tests", "figures", "payments")
    assert figures["quarantined"] == 1
