"""Fixtures for onboarding tests: a fake GitHub on loopback and a moto server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.onboarding.fake_github import FakeGitHub

GOOD_TOKEN = "ghp_goodtoken0000000000000000000000000"
READONLY_TOKEN = "ghp_readonly000000000000000000000000000"
FINE_GRAINED_TOKEN = "github_pat_11AAAAfinegrained000000000000"


@pytest.fixture(params=["", "/api/v3"], ids=["github.com", "enterprise"])
def fake_github(request: pytest.FixtureRequest) -> Iterator[FakeGitHub]:
    """A fake GitHub (both the public API layout and an Enterprise /api/v3 base URL)."""
    fake = FakeGitHub(prefix=request.param)
    fake.tokens = {GOOD_TOKEN: ["admin:repo_hook", "repo:status"],
                   READONLY_TOKEN: ["read:user"], FINE_GRAINED_TOKEN: None}
    fake.repos = {("acme", "payments")}
    fake.start()
    yield fake
    fake.stop()
