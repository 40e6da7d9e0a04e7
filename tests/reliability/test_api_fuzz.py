"""Schemathesis against the served agent's OpenAPI spec: every operation, with an admin
token and without one. No 5xx ever; without a token no write succeeds and the
database is left exactly as it was."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any, cast

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.reliability.conftest import svc_name
from tests.reliability.served import ServedAgent

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
OPEN_READS = {"/healthz", "/metrics", "/api/v1/openapi.json"}
# Fuzzing with admin rights may delete our own token and lock the rest of the run out.
AUTHED_SKIP = {("DELETE", "/api/v1/tokens/{token_id}")}
FUZZ = settings(max_examples=8, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])


def _fuzz(operation: Any, base_url: str, headers: dict[str, str], seen: list[tuple[str, int]],
          examples: int) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy())
    @settings(FUZZ, max_examples=examples)
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=20)
        seen.append((label, response.status_code))
        assert response.status_code < 500, (label, case.path_parameters, case.query,
                                            case.body, response.text[:500])

    run()


def _counts(agent: ServedAgent) -> dict[str, int]:
    conn = sqlite3.connect(agent.data_dir / "seamless.db")
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("pipelines", "services", "runs", "api_tokens", "approvals",
                          "deployments", "audit_events", "webhook_deliveries")}
    finally:
        conn.close()


@pytest.mark.slow
def test_fuzzed_api_never_errors_and_refuses_unauthenticated_writes(serve, sample_repo) -> None:
    repo = sample_repo("fuzzed")
    agent: ServedAgent = serve()
    agent.add_pipeline("shop")
    agent.add_service(svc_name("fuzz"), "shop", repo.url, webhook_secret="fuzz-secret")
    schema = schemathesis.openapi.from_url(f"{agent.url}/api/v1/openapi.json")
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25, [f"{o.method} {o.path}" for o in operations]

    anonymous: list[tuple[str, int]] = []
    before = _counts(agent)
    for operation in operations:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            _fuzz(operation, agent.url, headers, anonymous, examples=3)
    assert _counts(agent) == before
    for label, status in anonymous:
        method, path = label.split(" ", 1)
        if method in WRITES:
            assert 400 <= status < 500, (label, status)
        elif path not in OPEN_READS:
            assert status == 401, (label, status)

    authed: list[tuple[str, int]] = []
    admin = {"Authorization": f"Bearer {agent.token}"}
    for operation in operations:
        if (operation.method.upper(), operation.path) not in AUTHED_SKIP:
            _fuzz(operation, agent.url, admin, authed, examples=8)
    statuses = Counter(status for _, status in authed)
    assert sum(n for s, n in statuses.items() if s < 300) > 20, statuses  # it got in
    assert agent.call("GET", "/healthz", 200)["status"] == "ok"
    assert agent.integrity_check() == "ok"
