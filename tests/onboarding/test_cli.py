"""The onboarding commands wired into a Typer app, as agent/cli.py does with register()."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from agent.onboarding.cli import register
from agent.onboarding.hooks import hook_key
from store.models import ServiceConfig
from store.store import Store
from tests.onboarding.conftest import GOOD_TOKEN
from tests.onboarding.fake_github import FakeGitHub


def _app() -> typer.Typer:
    app, service_app = typer.Typer(), typer.Typer()
    app.add_typer(service_app, name="service")
    register(app, service_app)
    return app


def _invoke(*args: str):
    return CliRunner().invoke(_app(), list(args), catch_exceptions=False)


def test_env_provision_dry_run_then_for_real_then_teardown(tmp_path: Path, aws: str) -> None:
    cfg, data = tmp_path / "agent.toml", tmp_path / "data"
    assert _invoke("init", "--non-interactive", "--config", str(cfg), "--data-dir", str(data),
                   "--executor", "auto", "--aws-region", "us-east-1", "--aws-endpoint-url",
                   aws, "--pipeline", "shop", "--staging-target", "ecs").exit_code == 0
    store = Store(data / "seamless.db")
    store.create_service(ServiceConfig(name="payments", pipeline="shop",
                                       repo_url="https://github.com/acme/payments.git"))
    store.close()
    env = ["--pipeline", "shop", "--env", "staging", "--config", str(cfg)]
    dry = _invoke("env", "provision", *env, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "plan (dry run, nothing changed)" in dry.output
    assert "create    cluster          shop-staging" in dry.output
    real = _invoke("env", "provision", *env, "--cpu", "512", "--memory", "1024")
    assert "register  task-definition  payments-staging" in real.output
    again = _invoke("env", "provision", *env)
    assert "create" not in again.output and "register" not in again.output
    down = _invoke("env", "teardown", *env)
    assert "delete    service          payments-staging" in down.output


def test_env_provision_of_an_unknown_pipeline_is_an_error(tmp_path: Path, aws: str) -> None:
    cfg = tmp_path / "agent.toml"
    _invoke("init", "--non-interactive", "--config", str(cfg), "--data-dir",
            str(tmp_path / "d"), "--executor", "auto")
    result = _invoke("env", "provision", "--pipeline", "nope", "--env", "staging",
                     "--config", str(cfg))
    assert result.exit_code == 1 and "no pipeline named 'nope'" in result.output


def test_service_doctor_exits_non_zero_on_failed_deliveries(tmp_path: Path,
                                                            github: FakeGitHub) -> None:
    cfg, data = tmp_path / "agent.toml", tmp_path / "data"
    assert _invoke("init", "--non-interactive", "--config", str(cfg), "--data-dir", str(data),
                   "--executor", "auto", "--github-token", GOOD_TOKEN, "--github-api-url",
                   github.url, "--public-url", "https://ci.example.com",
                   "--pipeline", "shop").exit_code == 0
    store = Store(data / "seamless.db")
    store.create_service(ServiceConfig(name="payments", pipeline="shop",
                                       repo_url="git@127.0.0.1:acme/payments.git"))
    github.hooks[7] = {"_repo": ("acme", "payments"), "id": 7, "active": True,
                       "events": ["push", "pull_request"],
                       "config": {"url": "https://ci.example.com/webhooks/github",
                                  "content_type": "json"}}
    store.set_setting(hook_key("payments"), "7")
    store.close()
    github.add_delivery(7, 500, "Internal Server Error")
    result = _invoke("service", "doctor", "payments", "--config", str(cfg))
    assert result.exit_code == 2
    assert "1 failed" in result.output and "Internal Server Error" in result.output
