"""Adding a service through the REST API creates its GitHub webhook; removing it deletes it."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from agent.api.app import create_app
from agent.config import AgentConfig
from agent.onboarding.secrets import write_secret
from agent.runtime import Agent
from store.models import Role
from tests.onboarding.conftest import GOOD_TOKEN
from tests.onboarding.fake_github import FakeGitHub


def test_service_added_and_removed_over_rest_creates_and_deletes_its_hook(
        tmp_path: Path, github: FakeGitHub) -> None:
    config = AgentConfig(data_dir=tmp_path, public_url="https://ci.example.com",
                         github_api_url=github.url, executor="auto", poll_enabled=False)
    write_secret(tmp_path, "github_token", GOOD_TOKEN)
    agent = Agent(config)
    token, _ = agent.store.create_token("admin", Role.admin)
    with TestClient(create_app(agent)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        client.post("/api/v1/pipelines", json={"name": "shop"}).raise_for_status()
        created = client.post("/api/v1/services?check=false", json={
            "name": "payments", "pipeline": "shop",
            "repo_url": "https://127.0.0.1/acme/payments.git"})
        assert created.status_code == 201, created.text
        assert created.json()["webhook_secret"] == "********"  # set, and never shown
        (hook,) = github.hooks.values()
        assert hook["config"]["secret"] == agent.store.get_service("payments").webhook_secret
        audit = client.get("/api/v1/audit").json()
        assert any(e["action"] == "github_hook.created" for e in audit)

        assert client.delete("/api/v1/services/payments").status_code == 204
        assert github.hooks == {}
