"""A private repo's token is used for clone/fetch and shows up nowhere else.

The repo sits behind a real HTTPS git server that refuses requests without the token.
While the workspace is prepared we watch every process's argv; afterwards we search every
file the agent wrote (mirror and workspace .git, SQLite with the stage log) and the API.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.api.app import create_app
from agent.config import AgentConfig
from agent.runtime import Agent
from store.models import PipelineConfig, Role, RunKind, ServiceConfig, Trigger
from tests.onboarding.private_git import PrivateGitServer, make_certificate
from tests.sample_repo import git

TOKEN = "ghp_L3akCanaryL3akCanaryL3akCanary0001"
FORMS = [TOKEN, base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()]


def _leaks(data: bytes | str) -> list[str]:
    text = data if isinstance(data, str) else data.decode("latin-1")
    return [form for form in FORMS if form in text]


class ArgvWatcher(threading.Thread):
    """Reads /proc/*/cmdline every few ms: the argv any process had while we watched."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop_event = threading.Event()
        self.seen: set[str] = set()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    self.seen.add(cmdline.read_bytes().replace(b"\0", b" ").decode("latin-1"))
                except OSError:
                    continue
            self.stop_event.wait(0.005)


@pytest.fixture
def private_repo(tmp_path: Path, sample_repo, monkeypatch: pytest.MonkeyPatch):
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))  # trust our server, verify TLS
    repo = sample_repo("payments")
    root = tmp_path / "srv"
    root.mkdir()
    git(root, "clone", "-q", "--bare", str(repo.path), "payments.git")
    server = PrivateGitServer(root, TOKEN, cert, key, delay_s=0.3).start()
    yield server, f"{server.url}/payments.git", repo.head_sha
    server.stop()


def test_server_refuses_a_clone_without_the_token(private_repo, tmp_path: Path) -> None:
    server, url, _sha = private_repo
    with pytest.raises(RuntimeError):
        git(tmp_path, "-c", "credential.helper=", "clone", "-q", url, "anon")
    assert server.refused >= 1 and server.authorized == 0


def test_token_never_appears_in_logs_git_config_argv_or_api(private_repo,
                                                             tmp_path: Path) -> None:
    server, url, sha = private_repo
    config = AgentConfig(data_dir=tmp_path / "data", github_token=TOKEN, poll_enabled=False)
    agent = Agent(config)
    agent.logs.start()
    agent.store.create_pipeline(PipelineConfig(name="shop"))
    service = agent.store.create_service(ServiceConfig(name="payments", pipeline="shop",
                                                       repo_url=url))
    run = agent.store.create_run(service.id, trigger=Trigger.manual, kind=RunKind.full, sha=sha)
    log = agent.logs.stage_log(run.id, "Prepare", [])  # no masking: nothing may need it

    watcher = ArgvWatcher()
    watcher.start()
    try:
        workspace = agent.workspaces.prepare(service, sha, log, threading.Event())
    finally:
        watcher.stop_event.set()
        watcher.join()
        log.flush()
        agent.logs.stop()

    assert (workspace / "Dockerfile").is_file()  # the clone really went through the server
    assert server.authorized >= 2 and server.refused == 0
    git_argv = [c for c in watcher.seen if "git" in c and "127.0.0.1" in c]
    assert git_argv, "the watcher never saw git talking to the server"
    assert [c for c in watcher.seen if _leaks(c)] == []

    lines = agent.store.log_page(run.id).lines
    assert any("fetch" in line.text for line in lines)
    assert [line.text for line in lines if _leaks(line.text)] == []

    mirror = agent.workspaces.mirror_for(agent.store.get_service("payments"))
    for name in (mirror / "config", workspace / ".git/config"):
        assert name.is_file() and _leaks(name.read_bytes()) == [], name
    # Everything the agent wrote: git metadata, packs' refs, SQLite and its WAL.
    leaking = [p for p in config.data_dir.rglob("*") if p.is_file() and _leaks(p.read_bytes())]
    assert leaking == []

    admin = agent.store.create_token("leak-test", Role.admin)[0]
    with TestClient(create_app(agent, manage_agent=False)) as client:
        headers = {"Authorization": f"Bearer {admin}"}
        for path in ("/api/v1/services/payments", "/api/v1/services",
                     f"/api/v1/runs/{run.id}/logs", "/api/v1/overview"):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
            assert _leaks(response.text) == [], path
