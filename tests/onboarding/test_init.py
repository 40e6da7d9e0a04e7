"""`seamless-agent init`: flags for scripts, the interactive wizard, checks as it goes."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.config import load_config
from agent.onboarding.cli import register
from agent.onboarding.secrets import read_secrets, secrets_path
from store.models import DockerTargetConfig, EcsTargetConfig, NoTargetConfig
from store.store import Store
from tests.onboarding.conftest import GOOD_TOKEN, READONLY_TOKEN
from tests.onboarding.fake_github import FakeGitHub


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    service_app = typer.Typer()
    app.add_typer(service_app, name="service")
    register(app, service_app)
    return app


def _run(cli: typer.Typer, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["init", *args], input=input, catch_exceptions=False)


def _toml(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_non_interactive_flags_write_config_secret_and_pipeline(
        cli: typer.Typer, tmp_path: Path, github: FakeGitHub) -> None:
    cfg, data = tmp_path / "agent.toml", tmp_path / "data"
    result = _run(cli, "--non-interactive", "--config", str(cfg), "--data-dir", str(data),
                  "--host", "0.0.0.0", "--port", "9000", "--executor", "docker",
                  "--public-url", "https://ci.example.com", "--github-token", GOOD_TOKEN,
                  "--github-api-url", github.url, "--pipeline", "shop",
                  "--staging-target", "docker", "--production-target", "none")
    assert result.exit_code == 0, result.output
    assert _toml(cfg) == {"data_dir": str(data), "host": "0.0.0.0", "port": 9000,
                          "executor": "docker", "public_url": "https://ci.example.com",
                          "github_api_url": github.url}
    assert GOOD_TOKEN not in cfg.read_text()
    assert read_secrets(data) == {"github_token": GOOD_TOKEN}
    assert GOOD_TOKEN not in secrets_path(data).read_text()  # encrypted with secrets.key
    assert stat.S_IMODE(secrets_path(data).stat().st_mode) == 0o600
    assert load_config(cfg).port == 9000  # the agent loads what init wrote
    pipeline = Store(data / "seamless.db").get_pipeline("shop")
    assert isinstance(pipeline.staging, DockerTargetConfig)
    assert isinstance(pipeline.production, NoTargetConfig)


def test_rerun_changes_only_the_given_key(cli: typer.Typer, tmp_path: Path) -> None:
    cfg, data = tmp_path / "agent.toml", tmp_path / "data"
    assert _run(cli, "--non-interactive", "--config", str(cfg), "--data-dir", str(data),
                "--executor", "auto", "--host", "0.0.0.0").exit_code == 0
    # A key init has no flag for, edited by hand: a re-run must keep it too.
    cfg.write_text(cfg.read_text() + 'log_level = "debug"\n')
    before = _toml(cfg)
    result = _run(cli, "--non-interactive", "--config", str(cfg), "--port", "9100")
    assert result.exit_code == 0, result.output
    assert "changed port" in result.output
    assert _toml(cfg) == {**before, "port": 9100}


def test_rerun_with_a_new_target_keeps_the_other_environment(
        cli: typer.Typer, tmp_path: Path, moto_url: str) -> None:
    cfg, data = tmp_path / "agent.toml", tmp_path / "data"
    base = ["--non-interactive", "--config", str(cfg), "--data-dir", str(data),
            "--executor", "auto", "--pipeline", "shop"]
    assert _run(cli, *base, "--production-target", "none").exit_code == 0
    result = _run(cli, *base, "--staging-target", "ecs", "--staging-cluster", "shop-stg")
    assert result.exit_code == 0, result.output
    pipeline = Store(data / "seamless.db").get_pipeline("shop")
    assert isinstance(pipeline.staging, EcsTargetConfig)
    assert pipeline.staging.cluster == "shop-stg"
    assert isinstance(pipeline.production, NoTargetConfig)


def test_interactive_wrong_token_gets_a_clear_message_and_a_second_chance(
        cli: typer.Typer, tmp_path: Path, github: FakeGitHub) -> None:
    cfg, data = tmp_path / "agent.toml", tmp_path / "data"
    answers = [str(data), "", "", "", "auto", github.url, "ghp_wrong", GOOD_TOKEN,
               "", "", "shop", "docker", "docker"]
    result = _run(cli, "--config", str(cfg), input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert "GitHub token rejected" in result.output and "Bad credentials" in result.output
    assert "fix: create a token at https://github.com/settings/tokens" in result.output
    assert "✓ GitHub token of octocat" in result.output
    assert read_secrets(data) == {"github_token": GOOD_TOKEN}
    assert "ghp_wrong" not in result.output and GOOD_TOKEN not in result.output
    assert Store(data / "seamless.db").get_pipeline("shop").name == "shop"


def test_token_without_hook_scope_fails_non_interactive_init(
        cli: typer.Typer, tmp_path: Path, github: FakeGitHub) -> None:
    result = _run(cli, "--non-interactive", "--config", str(tmp_path / "a.toml"),
                  "--data-dir", str(tmp_path / "d"), "--executor", "auto",
                  "--github-token", READONLY_TOKEN, "--github-api-url", github.url)
    assert result.exit_code == 1
    assert "cannot create webhooks" in result.output and "admin:repo_hook" in result.output
    assert not (tmp_path / "a.toml").exists()  # nothing half-written


def test_unreachable_docker_engine_is_explained(cli: typer.Typer, tmp_path: Path) -> None:
    result = _run(cli, "--non-interactive", "--config", str(tmp_path / "a.toml"),
                  "--data-dir", str(tmp_path / "d"), "--executor", "docker",
                  "--docker-host", "tcp://127.0.0.1:1")
    assert result.exit_code == 1
    assert "Docker engine not reachable at tcp://127.0.0.1:1" in result.output
    assert "fix: check --docker-host" in result.output


def test_reachable_docker_engine_is_confirmed(cli: typer.Typer, tmp_path: Path,
                                              requires_docker: None) -> None:
    result = _run(cli, "--non-interactive", "--config", str(tmp_path / "a.toml"),
                  "--data-dir", str(tmp_path / "d"), "--executor", "docker")
    assert result.exit_code == 0, result.output
    assert "✓ Docker engine" in result.output


def test_aws_credentials_are_checked_with_sts(cli: typer.Typer, tmp_path: Path,
                                              aws: str) -> None:
    result = _run(cli, "--non-interactive", "--config", str(tmp_path / "a.toml"),
                  "--data-dir", str(tmp_path / "d"), "--executor", "auto",
                  "--aws-region", "eu-west-1", "--aws-endpoint-url", aws)
    assert result.exit_code == 0, result.output
    assert "✓ AWS account 123456789012" in result.output
    assert _toml(tmp_path / "a.toml")["aws_region"] == "eu-west-1"


def test_unknown_aws_profile_is_explained(cli: typer.Typer, tmp_path: Path, aws: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    result = _run(cli, "--non-interactive", "--config", str(tmp_path / "a.toml"),
                  "--data-dir", str(tmp_path / "d"), "--executor", "auto",
                  "--aws-profile", "nope", "--aws-endpoint-url", aws)
    assert result.exit_code == 1
    assert "AWS profile 'nope' not found" in result.output
    assert "aws configure --profile nope" in result.output


def test_token_found_in_an_old_config_moves_to_the_secrets_file(
        cli: typer.Typer, tmp_path: Path) -> None:
    cfg, data = tmp_path / "agent.toml", tmp_path / "data"
    cfg.write_text(f'data_dir = "{data}"\nexecutor = "local"\ngithub_token = "ghp_old"\n')
    result = _run(cli, "--non-interactive", "--config", str(cfg))
    assert result.exit_code == 0, result.output
    assert "github_token" not in _toml(cfg)
    assert read_secrets(data) == {"github_token": "ghp_old"}
    # The host-wide local executor is gone: the old config is moved to "auto", saying so.
    assert _toml(cfg)["executor"] == "auto"
    assert 'executor = "local" is no longer an agent setting' in result.output


def test_init_refuses_the_local_executor_and_names_the_pipeline_setting(
        cli: typer.Typer, tmp_path: Path) -> None:
    result = _run(cli, "--non-interactive", "--config", str(tmp_path / "a.toml"),
                  "--data-dir", str(tmp_path / "d"), "--executor", "local")
    assert result.exit_code == 1
    assert 'executor = "local" is not an agent setting' in result.output
    assert '`executor = "local"` on the pipeline that needs it' in result.output
    assert not (tmp_path / "a.toml").exists()
