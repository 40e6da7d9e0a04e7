"""Schemathesis against the served OpenAPI spec: generated requests, with and without a
token, never get a 5xx."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.models import Role
from tests.api.conftest import LiveApi, add_service

EXAMPLES_PER_OPERATION = 8
BUDGET_S = 50.0


@pytest.mark.parametrize("role", [None, Role.admin])
def test_generated_requests_never_get_a_server_error(api: LiveApi, role: Role | None) -> None:
    add_service(api.agent.store, webhook_secret="s")
    schema = schemathesis.openapi.from_url(f"{api.url}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {api.tokens[role]}"} if role else {}
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    failures: list[str] = []
    deadline = time.monotonic() + BUDGET_S
    for operation in operations:
        if time.monotonic() > deadline:
            break

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), _=st.just(None))
        def check(case, _) -> None:  # noqa: ANN001
            if case.method == "POST" and case.path == "/api/v1/services":
                # No git traffic to generated hosts (the repository check is tested apart).
                case.query = {**(case.query or {}), "check": "false"}
            response = case.call(base_url=api.url, headers=headers, timeout=10)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code}: {response.text[:200]}")

        check()
    assert failures == []
