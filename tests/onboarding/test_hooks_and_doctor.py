"""Webhooks created/deleted with services, and `service doctor`, against a fake GitHub."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.config import AgentConfig
from agent.onboarding.doctor import diagnose, render
from agent.onboarding.hooks import hook_key, on_service_created, on_service_deleted
from agent.onboarding.secrets import github_token, secrets_path, write_secret
from store.models import PipelineConfig, ServiceConfig
from store.store import Store
from tests.onboarding.conftest import GOOD_TOKEN, READONLY_TOKEN
from tests.onboarding.fake_github import FakeGitHub

PUBLIC_URL = "https://ci.example.com"


def _agent(tmp_path: Path, fake: FakeGitHub, token: str | None = GOOD_TOKEN,
           repo_url: str | None = None) -> SimpleNamespace:
    config = AgentConfig(data_dir=tmp_path, public_url=PUBLIC_URL, github_api_url=fake.url)
    if token:
        write_secret(tmp_path, "github_token", token)
    store = Store(config.db_path)
    store.create_pipeline(PipelineConfig(name="shop"))
    # The fake's host plays github.com (or the Enterprise host with the /api/v3 layout).
    store.create_service(ServiceConfig(
        name="payments", pipeline="shop",
        repo_url=repo_url or "https://127.0.0.1/acme/payments.git"))
    return SimpleNamespace(config=config, store=store)


@pytest.fixture
def gh(fake_github: FakeGitHub) -> FakeGitHub:
    return fake_github


def test_token_is_kept_in_a_0600_file_and_read_back(tmp_path: Path) -> None:
    write_secret(tmp_path, "github_token", "ghp_x")
    mode = stat.S_IMODE(secrets_path(tmp_path).stat().st_mode)
    assert mode == 0o600
    assert github_token(AgentConfig(data_dir=tmp_path)) == "ghp_x"


def test_creating_a_service_creates_its_webhook_with_a_stored_secret(
        tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh)
    outcome = on_service_created(agent, agent.store.get_service("payments"))
    assert outcome.action == "created", outcome.message
    assert outcome.hook_id is not None
    hook = gh.hooks[outcome.hook_id]
    service = agent.store.get_service("payments")
    assert service.webhook_secret and len(service.webhook_secret) == 64
    assert hook["config"]["secret"] == service.webhook_secret
    assert hook["config"]["url"] == f"{PUBLIC_URL}/webhooks/github"
    assert hook["events"] == ["push", "pull_request"] and hook["config"]["content_type"] == "json"
    assert agent.store.get_setting(hook_key("payments")) == str(outcome.hook_id)


def test_recreating_a_service_reuses_the_existing_hook_with_a_new_secret(
        tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh)
    first = on_service_created(agent, agent.store.get_service("payments"))
    second = on_service_created(agent, agent.store.get_service("payments"))
    assert first.hook_id == second.hook_id and len(gh.hooks) == 1
    assert first.hook_id is not None
    assert gh.hooks[first.hook_id]["config"]["secret"] == (
        agent.store.get_service("payments").webhook_secret)


def test_deleting_the_service_deletes_the_webhook(tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh)
    service = agent.store.get_service("payments")
    on_service_created(agent, service)
    outcome = on_service_deleted(agent, service)
    assert outcome.action == "deleted"
    assert gh.hooks == {}
    assert agent.store.get_setting(hook_key("payments")) is None


def test_deleting_when_the_hook_is_already_gone_still_succeeds(
        tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh)
    service = agent.store.get_service("payments")
    on_service_created(agent, service)
    gh.hooks.clear()
    assert on_service_deleted(agent, service).action == "deleted"


def test_no_token_means_no_hook_and_a_clear_reason(tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh, token=None)
    outcome = on_service_created(agent, agent.store.get_service("payments"))
    assert outcome.action == "skipped" and "token" in outcome.message
    assert gh.requests == []


def test_repo_not_on_github_is_left_alone(tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh, repo_url="git://127.0.0.1:9418/payments.git")
    outcome = on_service_created(agent, agent.store.get_service("payments"))
    assert outcome.action == "skipped"
    assert gh.requests == []


def test_missing_scope_is_reported_not_raised(tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh, token=READONLY_TOKEN)
    outcome = on_service_created(agent, agent.store.get_service("payments"))
    assert outcome.action == "failed"
    assert "admin:repo_hook" in outcome.message


def test_doctor_reports_failed_deliveries_with_githubs_response(
        tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh)
    hook_id = on_service_created(agent, agent.store.get_service("payments")).hook_id
    assert hook_id is not None
    gh.add_delivery(hook_id, 200, '{"queued": true}')
    gh.add_delivery(hook_id, 401, '{"error":"invalid signature"}', event="pull_request")
    report = diagnose(agent.config, agent.store, "payments")
    assert not report.ok and report.problems == []
    assert [d.status_code for d in report.failed] == [401]
    text = render(report)
    assert "2 recent deliveries, 1 failed" in text
    assert "invalid signature" in text and "pull_request" in text


def test_doctor_spots_a_hook_changed_by_hand(tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh)
    hook_id = on_service_created(agent, agent.store.get_service("payments")).hook_id
    assert hook_id is not None
    gh.hooks[hook_id]["events"] = ["push"]
    gh.hooks[hook_id]["config"]["content_type"] = "form"
    report = diagnose(agent.config, agent.store, "payments")
    assert any("pull_request" in p for p in report.problems)
    assert any("'form'" in p for p in report.problems)


def test_doctor_on_a_healthy_hook_says_ok(tmp_path: Path, gh: FakeGitHub) -> None:
    agent = _agent(tmp_path, gh)
    hook_id = on_service_created(agent, agent.store.get_service("payments")).hook_id
    assert hook_id is not None
    gh.add_delivery(hook_id, 202, "")
    report = diagnose(agent.config, agent.store, "payments")
    assert report.ok
    assert "ok:" in render(report)
