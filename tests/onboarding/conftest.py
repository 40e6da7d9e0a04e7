"""Fixtures for onboarding tests: a fake GitHub on loopback and a moto server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.onboarding.fake_github import FakeGitHub

GOOD_TOKEN = "ghp_goodtoken0000000000000000000000000"
READONLY_TOKEN = "ghp_readonly000000000000000000000000000"
FINE_GRAINED_TOKEN = "github_pat_11AAAAfinegrained000000000000"


def _fake(prefix: str) -> FakeGitHub:
    fake = FakeGitHub(prefix=prefix)
    fake.tokens = {GOOD_TOKEN: ["admin:repo_hook", "repo:status"],
                   READONLY_TOKEN: ["read:user"], FINE_GRAINED_TOKEN: None}
    fake.repos = {("acme", "payments")}
    return fake.start()


@pytest.fixture(params=["", "/api/v3"], ids=["github.com", "enterprise"])
def fake_github(request: pytest.FixtureRequest) -> Iterator[FakeGitHub]:
    """A fake GitHub (both the public API layout and an Enterprise /api/v3 base URL)."""
    fake = _fake(request.param)
    yield fake
    fake.stop()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """One fake GitHub in the Enterprise layout (for tests that need not run twice)."""
    fake = _fake("/api/v3")
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode on loopback (real HTTP, like AWS)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto state and fake credentials; returns the endpoint URL."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_url
