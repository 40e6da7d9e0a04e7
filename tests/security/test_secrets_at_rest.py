"""Secrets at rest and in sight: the data dir and database are the agent's alone,
secrets are stored encrypted (old plaintext too, once the agent starts), the key
rotates while the agent runs, and a viewer sees no credential (#21 item 5)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from agent.config import AgentConfig
from agent.onboarding.secrets import github_token, read_secrets
from agent.runtime import Agent
from store.models import PipelineConfig, ServiceConfig
from store.store import Store
from tests.reliability.conftest import serve, svc_name  # noqa: F401  (the fixture)
from tests.reliability.served import ServedAgent, summary

SECRET = "Vault-Only-7731-Kilo"
BIN = Path(sys.executable).parent / "seamless-agent"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _raw_bytes(data_dir: Path) -> bytes:
    """Everything SQLite wrote: the database, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in data_dir.glob("seamless.db*"))


def _old_plaintext_database(data_dir: Path, repo_url: str) -> str:
    """A database as an agent before encryption left it: the secret in plain text."""
    data_dir.mkdir(parents=True)
    store = Store(data_dir / "seamless.db")
    store.create_pipeline(PipelineConfig(name="shop"))
    name = svc_name("atrest")
    store.create_service(ServiceConfig(
        name=name, pipeline="shop", repo_url=repo_url, dockerfile=None,
        secrets={"API_KEY": SECRET}, webhook_secret=SECRET + "-hook",
        # The stage checks it got the secret without the command holding it.
        unit_test_command=f'test "${{#API_KEY}}" = {len(SECRET)}'
                          ' && test "${API_KEY%%-*}" = Vault'))
    store.close()
    assert SECRET.encode() in _raw_bytes(data_dir)
    return name


@pytest.mark.docker
def test_secrets_rest_encrypted_in_a_private_data_dir_and_the_key_rotates(
        serve, sample_repo, tmp_path) -> None:  # noqa: F811
    repo = sample_repo("atrest")
    name = _old_plaintext_database(tmp_path / "data0", repo.url)
    agent: ServedAgent = serve()
    assert agent.data_dir == tmp_path / "data0"

    assert _mode(agent.data_dir) == 0o700
    for path in agent.data_dir.glob("seamless.db*"):
        assert _mode(path) == 0o600, path
    key = agent.data_dir / "secrets.key"
    assert _mode(key) == 0o600
    assert SECRET.encode() not in _raw_bytes(agent.data_dir)  # encrypted on start

    run = agent.wait_run(agent.trigger(name, repo.head_sha, kind="partial")["id"])
    assert run["status"] == "success", summary(run)  # the stage still gets the secret

    old_key = key.read_text()
    rotated = subprocess.run([str(BIN), "secrets", "rotate-key", "--data-dir",
                              str(agent.data_dir)], capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    assert key.read_text() != old_key and _mode(key) == 0o600
    run = agent.wait_run(agent.trigger(name, repo.head_sha, kind="partial")["id"])
    assert run["status"] == "success", summary(run)  # the running agent reads the new key
    assert SECRET.encode() not in _raw_bytes(agent.data_dir)


@pytest.mark.docker
def test_a_viewer_sees_no_credential_in_env_values_or_webhook_urls(serve) -> None:  # noqa: F811
    agent: ServedAgent = serve()
    hook = "https://hooks.slack.com/services/T000/B000/XyZsecretpart123"
    agent.add_pipeline("shop", notify_slack_webhook_url=hook)
    name = svc_name("sight")
    agent.add_service(name, "shop", "https://ci:repo-pass-991@git.example.com/app.git",
                      env={"DATABASE_URL": "postgres://app:db-pass-4471@db:5432/app",
                           "STRIPE_API_TOKEN": "tok-live-5521", "REGION": "eu-west-1"})
    made = agent.call("POST", "/api/v1/tokens", 201, json={"name": "v", "role": "viewer"})
    with httpx.Client(base_url=agent.url, timeout=10,
                      headers={"Authorization": f"Bearer {made['token']}"}) as viewer:
        seen = "\n".join(viewer.get(path).text for path in (
            "/api/v1/services", f"/api/v1/services/{name}", "/api/v1/pipelines",
            "/api/v1/pipelines/shop", "/api/v1/overview"))
    for credential in ("db-pass-4471", "tok-live-5521", "XyZsecretpart123", "repo-pass-991"):
        assert credential not in seen, credential
    assert "eu-west-1" in seen and "postgres://app:" in seen  # the rest stays readable
    admin = agent.call("GET", f"/api/v1/services/{name}", 200)
    assert admin["env"]["STRIPE_API_TOKEN"] == "tok-live-5521"


def test_the_github_token_rests_encrypted_with_the_secrets_key_and_rotates_with_it(
        tmp_path: Path) -> None:
    """An older install left the token in plain text in secrets.toml: the agent encrypts it
    with the key of the other secrets when it starts, still uses it, and `secrets
    rotate-key` re-encrypts it with the new key."""
    token = "ghp_AtRestToken0000000000000000000042"
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    secrets_file = data / "secrets.toml"
    secrets_file.write_text(f'github_token = "{token}"\n')
    os.chmod(secrets_file, 0o600)

    agent = Agent(AgentConfig(data_dir=data, poll_enabled=False, executor="auto"))
    try:
        assert agent.workspaces.github_token == token  # the agent still uses it
    finally:
        agent.close()
    stored = secrets_file.read_text()
    assert token not in stored and "enc:v1:" in stored
    assert _mode(secrets_file) == 0o600
    key = data / "secrets.key"
    assert Fernet(key.read_text().strip()).decrypt(
        tomllib.loads(stored)["github_token"].removeprefix("enc:v1:").encode()
    ).decode() == token  # the key of the database's secrets, not another one

    rotated = subprocess.run([str(BIN), "secrets", "rotate-key", "--data-dir", str(data)],
                             capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    again = secrets_file.read_text()
    assert again != stored and token not in again
    assert read_secrets(data) == {"github_token": token}  # opens with the new key alone
    assert github_token(AgentConfig(data_dir=data)) == token
