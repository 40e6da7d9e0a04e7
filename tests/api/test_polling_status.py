"""Git polling against a real repository served by git daemon; GitHub commit statuses
against a local HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agent.triggers.polling import Poller
from agent.triggers.status import StatusReporter
from store.db import now
from store.models import Event, RunKind, RunStatus, Trigger, Triggers
from tests.api.conftest import add_service, local_agent
from tests.harness import wait_until
from tests.helpers import free_port


def test_poller_runs_a_new_commit_exactly_once_across_restarts(
        tmp_path: Path, sample_repo: Any, git_daemon: Any) -> None:
    repo = sample_repo("polled")
    url = git_daemon.publish(repo, name=f"polled-{tmp_path.name}.git")
    # Not started: the engine's submit queues in the store; nothing launches the run.
    agent = local_agent(tmp_path / "data")
    service = add_service(agent.store, "polled", repo_url=url, branch=repo.current_branch,
                          triggers=Triggers(poll_interval_s=10))
    poller = Poller(agent)
    assert poller.poll_service(service) == []  # first sight: only remembered
    sha = repo.commit("feature", {"feature.txt": "x\n"})
    repo.push("daemon")
    [run] = poller.poll_service(service)
    assert (run.sha, run.trigger, run.kind) == (sha, Trigger.poll, RunKind.full)
    assert poller.poll_service(service) == []
    # A restarted agent (new poller, same database) does not run it again.
    restarted = local_agent(tmp_path / "data")
    assert Poller(restarted).poll_service(service) == []
    [queued] = restarted.store.list_runs(service="polled")
    assert (queued.id, queued.sha, queued.trigger, queued.branch) == (
        run.id, sha, Trigger.poll, repo.current_branch)
    assert queued.status is RunStatus.queued
    restarted.close()
    agent.close()


async def test_poller_task_polls_on_its_interval_and_stops(tmp_path: Path, sample_repo: Any,
                                                           git_daemon: Any) -> None:
    repo = sample_repo("looped")
    url = git_daemon.publish(repo, name=f"looped-{tmp_path.name}.git")
    agent = local_agent(tmp_path / "data")
    store = agent.store
    add_service(store, "looped", repo_url=url, branch=repo.current_branch,
                triggers=Triggers(poll_interval_s=10))
    poller = Poller(agent, tick_s=0.05)
    await poller.start()
    ref = f"refs/heads/{repo.current_branch}"
    for _ in range(100):
        if store.get_poll_sha(1, ref):
            break
        await asyncio.sleep(0.05)
    await poller.stop()
    assert store.get_poll_sha(1, ref) == repo.head_sha
    assert store.list_runs(service="looped") == []  # first sight only remembers the head
    agent.close()


class _Recorder(BaseHTTPRequestHandler):
    posts: list[tuple[str, dict[str, Any], str]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.posts.append((self.path, body, self.headers.get("Authorization", "")))
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


async def test_commit_statuses_follow_the_run(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", free_port()), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.posts = []
    agent = local_agent(tmp_path / "data", github_token="ghp_test",
                        github_api_url=f"http://127.0.0.1:{server.server_port}",
                        public_url="https://ci.example.com")
    store = agent.store
    # The API URL's host stands for GitHub (as with GitHub Enterprise): repos live there.
    service = add_service(store, "web", repo_url="https://127.0.0.1/acme/web.git")
    add_service(store, "elsewhere", repo_url="https://gitlab.example/acme/web.git")
    reporter = StatusReporter(agent)
    await reporter.start()
    sha = "c" * 40
    run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full, sha=sha)
    other = store.create_run(2, trigger=Trigger.push, kind=RunKind.full, sha="d" * 40)
    agent.bus.publish_event(Event(type="run", ts=now(), run=other))  # not on GitHub: no post
    for status in (RunStatus.queued, RunStatus.running, RunStatus.running, RunStatus.failed):
        agent.bus.publish_event(Event(type="run", ts=now(),
                                      run=run.model_copy(update={"status": status})))
    wait_until(lambda: len(_Recorder.posts) >= 2, timeout=10, what="statuses")
    await reporter.stop()
    server.shutdown()
    agent.close()
    paths = {p for p, _, _ in _Recorder.posts}
    states = [b["state"] for _, b, _ in _Recorder.posts]
    assert paths == {f"/repos/acme/web/statuses/{sha}"}
    assert states == ["pending", "failure"]
    # "Details" opens the run's page by a signed link (the JSON API would need a token).
    target = urlsplit(_Recorder.posts[0][1]["target_url"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == \
        f"https://ci.example.com/runs/{run.id}"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert agent.links.check(run.id, query["exp"], query["sig"])
    assert _Recorder.posts[0][1]["context"] == "seamless/web"
    assert _Recorder.posts[0][2] == "Bearer ghp_test"
