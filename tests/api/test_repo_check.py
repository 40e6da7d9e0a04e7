"""Mistakes caught at the door: creating a service runs `git ls-remote` on its repository
and says which of three things is wrong — no such repository, no such branch, or the
remote unreachable / refusing access — and `check=false` (`--no-check`) skips it.
Validation messages read as sentences."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store.models import Role, ServiceConfig
from tests.api.conftest import LiveApi
from tests.helpers import free_port
from tests.sample_repo import make_sample_service_repo

BIN = Path(sys.executable).parent / "seamless-agent"


class AskForPassword(http.server.BaseHTTPRequestHandler):
    """A git host on loopback that wants credentials for everything (a private repo)."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def private_host() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AskForPassword)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/acme/private.git"
    finally:
        server.shutdown()


def create(api: LiveApi, repo_url: str, branch: str = "main", **params: str) -> Any:
    with api.client(Role.admin) as c:
        c.post("/api/v1/pipelines", json={"name": "shop"})
        return c.post("/api/v1/services", params=params, json={
            "name": "web", "pipeline": "shop", "repo_url": repo_url, "branch": branch})


def problem(answer: Any) -> tuple[str, str, str]:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    (detail,) = body["detail"]
    return body["error"], detail["field"], detail["message"]


def test_a_reachable_repository_with_the_branch_is_created(api: LiveApi, tmp_path: Path
                                                           ) -> None:
    repo = make_sample_service_repo(tmp_path / "web", "web")
    assert create(api, repo.url).status_code == 201


def test_each_failure_is_named(api: LiveApi, tmp_path: Path, private_host: str) -> None:
    repo = make_sample_service_repo(tmp_path / "web", "web")
    error, field, message = problem(create(api, repo.url, branch="release"))
    assert (error, field) == ("repository_check_no_branch", "branch")
    assert message == f"{repo.url} has no branch 'release'"

    missing = str(tmp_path / "nothing-here.git")
    error, field, message = problem(create(api, missing))
    assert (error, field) == ("repository_check_no_repository", "repo_url")
    assert message.startswith(f"there is no git repository at {missing}")

    closed = f"https://127.0.0.1:{free_port()}/acme/web.git"
    error, field, message = problem(create(api, closed))
    assert (error, field) == ("repository_check_unreachable", "repo_url")
    assert message.startswith(f"cannot reach {closed}") and "branch" not in message

    error, field, message = problem(create(api, private_host))
    assert (error, field) == ("repository_check_unreachable", "repo_url")
    assert "refused access" in message and "github_token" in message


def test_check_false_skips_it(api: LiveApi) -> None:
    closed = f"https://127.0.0.1:{free_port()}/acme/web.git"
    assert create(api, closed, check="false").status_code == 201


def test_the_cli_says_which_failed_and_no_check_skips(api: LiveApi) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
    env.update(SEAMLESS_AGENT_URL=api.url, SEAMLESS_TOKEN=api.tokens[Role.admin])
    with api.client(Role.admin) as c:
        c.post("/api/v1/pipelines", json={"name": "shop"})
    closed = f"https://127.0.0.1:{free_port()}/acme/web.git"
    args = [str(BIN), "service", "add", "--name", "web", "--pipeline", "shop", "--repo", closed]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode == 1
    assert f"repo_url: cannot reach {closed}" in refused.stderr
    skipped = subprocess.run([*args, "--no-check"], capture_output=True, text=True,
                             timeout=60, env=env)
    assert skipped.returncode == 0, skipped.stderr


def test_validation_messages_read_as_sentences(api: LiveApi) -> None:
    with api.client(Role.admin) as c:
        answer = c.post("/api/v1/services", json={"name": "Bad Name", "pipeline": "shop",
                                                  "repo_url": "x"})
    assert answer.status_code == 422
    messages = {d["field"]: d["message"] for d in answer.json()["detail"]}
    assert messages["name"].startswith("must be a lowercase slug")
    assert all("Value error" not in m for m in messages.values()), messages


def test_changing_the_repository_or_branch_is_checked_again(api: LiveApi, tmp_path: Path
                                                              ) -> None:
    repo = make_sample_service_repo(tmp_path / "web", "web")
    assert create(api, repo.url).status_code == 201
    with api.client(Role.admin) as c:
        service = {k: v for k, v in c.get("/api/v1/services/web").json().items()
                   if k in ServiceConfig.model_fields}

        def put(**fields: str) -> Any:
            return c.put("/api/v1/services/web", json={**service, **fields})

        assert problem(put(branch="release")) == (
            "repository_check_no_branch", "branch", f"{repo.url} has no branch 'release'")
        missing = str(tmp_path / "nothing-here.git")
        error, field, message = problem(put(repo_url=missing))
        assert (error, field) == ("repository_check_no_repository", "repo_url")
        assert message.startswith(f"there is no git repository at {missing}")
        assert c.get("/api/v1/services/web").json()["repo_url"] == repo.url  # unchanged
        # Other changes are not checked again; check=false skips it.
        assert put(unit_test_command="true").status_code == 200
        skipped = c.put("/api/v1/services/web", params={"check": "false"},
                        json={**service, "branch": "later"})
        assert skipped.status_code == 200 and skipped.json()["branch"] == "later"
