"""Services sharing one repository over real HTTP (#18): a signed push webhook is answered
before any git runs, the change decides which services run, the skipped ones get a
`success` commit status on the fake GitHub (a required check never hangs), REST says why;
the poller decides the same way. Real git (served by git daemon), fake executor."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.api.app import create_app
from agent.runtime import Agent
from agent.triggers.github import signature
from agent.triggers.polling import Poller
from store.models import PipelineConfig, Role, ServiceConfig, Triggers
from tests.api.conftest import add_tokens
from tests.harness import Fakes, agent_config, wait_until
from tests.harness.server import ServerThread
from tests.mono_repo import MonoRepo
from tests.onboarding.fake_github import FakeGitHub

FIXTURES = Path("/work/shared/fixtures/github-webhooks")
SECRET = "monorepo-secret"
TOKEN = "ghp_monorepo"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tokens={TOKEN: ["repo"]}).start()
    yield fake
    fake.stop()


@pytest.fixture
def shop(tmp_path: Path, git_daemon: Any, github: FakeGitHub) -> tuple[MonoRepo, str]:
    repo = MonoRepo(tmp_path / "shop")
    owner = f"acme-{uuid.uuid4().hex[:8]}"  # the daemon is shared by the session's tests
    github.repos.add((owner, "shop"))
    name = f"{owner}/shop.git"
    repo.publish(git_daemon.base_path / name)
    return repo, f"{git_daemon}{name}"


def served(tmp_path: Path, github: FakeGitHub) -> tuple[Agent, ServerThread, dict[Role, str]]:
    settings = agent_config(tmp_path / "data", github_token=TOKEN, github_api_url=github.url,
                            public_url="https://ci.example.com")
    agent = Agent(settings, Fakes().parts(settings))
    tokens = add_tokens(agent.store)
    agent.store.create_pipeline(PipelineConfig(name="shop", auto_deploy=True))
    return agent, ServerThread(create_app(agent)).start(), tokens


def add(agent: Agent, url: str, name: str, **fields: Any) -> None:
    agent.store.create_service(ServiceConfig(
        name=name, pipeline="shop", repo_url=url, root=f"services/{name}",
        paths=[f"services/{name}/**"], depends_on_paths=["libs/common/**"],
        unit_test_command="lines=1", webhook_secret=SECRET, **fields))


def push_webhook(server: ServerThread, url: str, before: str, after: str,
                 delivery: str | None = None) -> httpx.Response:
    body = json.loads((FIXTURES / "push" / "payload.json").read_text())
    body.update(ref="refs/heads/main", before=before, after=after, deleted=False)
    body["repository"]["clone_url"] = url
    raw = json.dumps(body).encode()
    return httpx.post(f"{server.url}/webhooks/github", content=raw, timeout=10, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature(SECRET, raw)})


def statuses(github: FakeGitHub, sha: str, context: str) -> list[dict[str, Any]]:
    return [s for s in github.statuses if s["sha"] == sha and s["context"] == context]


def test_a_push_runs_the_touched_service_and_the_other_gets_a_success_status(
        tmp_path: Path, github: FakeGitHub, shop: tuple[MonoRepo, str]) -> None:
    repo, url = shop
    agent, server, tokens = served(tmp_path, github)
    try:
        add(agent, url, "api")
        add(agent, url, "web")
        first = repo.head()
        answer = push_webhook(server, url, "0" * 40, first)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "deciding"
        assert sorted(answer.json()["deciding"]) == ["api", "web"]
        wait_until(lambda: [s["state"] for s in statuses(github, first, "seamless/api")][-1:]
                   == ["success"] and [s["state"] for s in statuses(
                       github, first, "seamless/web")][-1:] == ["success"],
                   timeout=60, what="both first runs green on GitHub")
        repo.commit("api change", {"services/api/app.py": "api 2\n"})
        second = repo.push()
        assert push_webhook(server, url, first, second).status_code == 202
        wait_until(lambda: statuses(github, second, "seamless/web"), timeout=60,
                   what="web's status for the api-only push")
        [web_status] = statuses(github, second, "seamless/web")
        assert web_status["state"] == "success"
        assert web_status["description"] == f"no changes for web since {first[:12]}"
        wait_until(lambda: [s["state"] for s in statuses(github, second, "seamless/api")][-1:]
                   == ["success"], timeout=60, what="api's run green on GitHub")
        with httpx.Client(base_url=server.url, timeout=10, headers={
                "Authorization": f"Bearer {tokens[Role.viewer]}"}) as client:
            found = {d["service"]: d for d in client.get(
                "/api/v1/decisions", params={"sha": second}).json()}
            api_runs = client.get("/api/v1/runs", params={"service": "api"}).json()["items"]
            web_runs = client.get("/api/v1/runs", params={"service": "web"}).json()["items"]
        assert found["api"]["ran"] and found["api"]["matched"] == ["services/api/app.py"]
        assert not found["web"]["ran"] and found["web"]["base_sha"] == first
        assert found["web"]["reason"].startswith(f"no changes for web since {first[:12]}")
        assert [r["sha"] for r in api_runs] == [second, first]
        assert [r["sha"] for r in web_runs] == [first]
    finally:
        server.stop()
        agent.close()


async def test_the_poller_decides_every_service_of_the_repository_at_once(
        tmp_path: Path, shop: tuple[MonoRepo, str]) -> None:
    repo, url = shop
    settings = agent_config(tmp_path / "data")
    agent = Agent(settings, Fakes().parts(settings))  # not started: runs stay queued
    try:
        agent.store.create_pipeline(PipelineConfig(name="shop"))
        for name in ("api", "web"):
            add(agent, url, name, triggers=Triggers(poll_interval_s=10))
        api, web = agent.store.get_service("api"), agent.store.get_service("web")
        poller = Poller(agent)
        assert poller.poll_service(api) == [] and poller.poll_service(web) == []
        repo.commit("web change", {"services/web/app.py": "web 2\n"})
        head = repo.push()
        runs = poller.poll_service(api)
        # No earlier success for either: both run; decided together, web's sha remembered.
        assert sorted(r.service for r in runs) == ["api", "web"]
        assert poller.poll_service(web) == []
        decisions = agent.store.list_decisions(sha=head)
        assert {d.batch for d in decisions} == {decisions[0].batch}
        assert decisions[0].batch.startswith("poll:")
    finally:
        agent.close()


def test_trigger_all_runs_every_service_of_the_repository_dependencies_first(
        tmp_path: Path, github: FakeGitHub, shop: tuple[MonoRepo, str]) -> None:
    repo, url = shop
    agent, server, tokens = served(tmp_path, github)
    try:
        add(agent, url, "api")
        add(agent, url, "web", depends_on_services=["api"])
        add(agent, url, "admin", depends_on_services=["web"])
        with httpx.Client(base_url=server.url, timeout=30, headers={
                "Authorization": f"Bearer {tokens[Role.deployer]}"}) as client:
            answer = client.post("/api/v1/services/web/trigger-all",
                                 json={"sha": repo.head()})
            assert answer.status_code == 201, answer.text
            runs = answer.json()
            found = client.get("/api/v1/decisions", params={"sha": repo.head()}).json()
        assert [r["service"] for r in runs] == ["api", "web", "admin"]  # queued in this order
        assert [r["id"] for r in runs] == sorted(r["id"] for r in runs)
        assert {d["base_kind"] for d in found} == {"forced"}
        assert {d["reason"] for d in found} == {"manual: trigger --all by deployer-token"}
        assert len({d["batch"] for d in found}) == 1
    finally:
        server.stop()
        agent.close()


def test_cli_trigger_all_watches_every_run_and_decisions_say_why(tmp_path: Path) -> None:
    from tests.api.test_cli_runs import SHA, Cli

    settings = agent_config(tmp_path / "data")
    agent = Agent(settings, Fakes().parts(settings))
    agent.store.create_pipeline(PipelineConfig(name="shop", auto_deploy=True))
    for name, unit_test in (("api", "lines=1"), ("web", "exit=1")):
        agent.store.create_service(ServiceConfig(
            name=name, pipeline="shop", repo_url="https://example.invalid/shop.git",
            root=f"services/{name}", paths=[f"services/{name}/**"],
            unit_test_command=unit_test))
    token, _ = agent.store.create_token("ci-bot", Role.deployer)
    server = ServerThread(create_app(agent)).start()
    try:
        cli = Cli(server.url, token)
        result = cli("trigger", "api", "--all", "--sha", SHA, "--partial", "--watch")
        assert result.returncode == 1, result.stdout + result.stderr  # web's tests fail
        lines = result.stdout.splitlines()
        assert [ln.split(" (")[1].split(" #")[0] for ln in lines if "queued at" in ln] == [
            "api", "web"]
        assert any(ln.startswith("==> ") and "(api #1) succeeded" in ln for ln in lines)
        assert any(ln.startswith("==> ") and "(web #1) failed" in ln for ln in lines)
        why = cli("decisions", "--service", "web")
        assert why.returncode == 0, why.stderr
        assert f"{SHA[:12]} web: ran (run " in why.stdout
        assert "manual: trigger --all by ci-bot" in why.stdout
    finally:
        server.stop()
        agent.close()


def _fail_once(agent: Agent, where: str) -> list[object]:
    """Make the first decision fail: before anything is stored (`verdicts`), or part way,
    when api's run is made and web's is not (`create_run`). The calls, as they come."""
    owner = agent.changes if where == "verdicts" else agent.store
    real = getattr(owner, where)
    calls: list[object] = []
    failing_call = 1 if where == "verdicts" else 2

    def fails(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == failing_call:
            raise OSError("disk I/O error: the disk went away")
        return real(*args, **kwargs)

    setattr(owner, where, fails)
    return calls


@pytest.mark.parametrize("where", ["verdicts", "create_run"])
def test_a_delivery_whose_decision_failed_leaves_nothing_and_is_decided_when_redelivered(
        tmp_path: Path, github: FakeGitHub, shop: tuple[MonoRepo, str], where: str) -> None:
    repo, url = shop
    agent, server, _ = served(tmp_path, github)
    try:
        add(agent, url, "api")
        add(agent, url, "web")
        calls = _fail_once(agent, where)
        delivery = str(uuid.uuid4())
        assert push_webhook(server, url, "0" * 40, repo.head(), delivery).status_code == 202
        wait_until(lambda: len(calls) >= (1 if where == "verdicts" else 2) and not any(
            d.delivery_id == delivery for d in agent.store.list_deliveries()),
            timeout=30, what="the delivery forgotten after its decision failed")
        assert agent.store.list_decisions(sha=repo.head()) == []  # nothing half done
        again = push_webhook(server, url, "0" * 40, repo.head(), delivery)
        assert again.status_code == 202 and again.json()["status"] == "deciding", again.text
        done = ["decided: ran api, web; not run none"]
        wait_until(lambda: [d.outcome for d in agent.store.list_deliveries()
                            if d.delivery_id == delivery] == done,
                   timeout=30, what="the redelivery decided")
        decisions = agent.store.list_decisions(sha=repo.head())
        assert sorted(d.service for d in decisions) == ["api", "web"]
        assert all(d.run_id for d in decisions)
        # One run each: a run made before the failure went with its transaction.
        for name in ("api", "web"):
            assert len(agent.store.list_runs(service=name)) == 1
    finally:
        server.stop()
        agent.close()


def test_a_pull_request_runs_what_it_changed_since_its_merge_base_and_reports_the_rest(
        tmp_path: Path, github: FakeGitHub, shop: tuple[MonoRepo, str]) -> None:
    from tests.sample_repo import git

    repo, url = shop
    agent, server, _ = served(tmp_path, github)
    try:
        add(agent, url, "api")
        add(agent, url, "web")
        fork_point = repo.head()
        git(repo.path, "checkout", "-q", "-b", "feature")
        head = repo.commit("api feature", {"services/api/app.py": "feature\n"})
        git(repo.path, "push", "-q", str(repo.bare), "feature")
        git(repo.path, "checkout", "-q", "main")
        main_head = repo.commit("web on main", {"services/web/app.py": "web 2\n"})
        repo.push()
        body = json.loads((FIXTURES / "pull_request" / "opened.payload.json").read_text())
        pr = body["pull_request"]
        pr["head"].update(sha=head, ref="feature")
        pr["base"].update(sha=main_head, ref="main")
        body["repository"]["clone_url"] = url
        raw = json.dumps(body).encode()
        answer = httpx.post(f"{server.url}/webhooks/github", content=raw, timeout=10, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature(SECRET, raw)})
        assert answer.status_code == 202 and answer.json()["status"] == "deciding", answer.text
        wait_until(lambda: statuses(github, head, "seamless/web"), timeout=60,
                   what="web's status on the pull request's head")
        [web_status] = statuses(github, head, "seamless/web")
        assert web_status["state"] == "success"
        assert web_status["description"] == f"no changes for web since {fork_point[:12]}"
        found = {d.service: d for d in agent.store.list_decisions(sha=head)}
        assert found["api"].ran and found["api"].base_kind == "merge_base"
        assert found["api"].base_sha == fork_point
        run = agent.store.get_run(found["api"].run_id or 0)
        assert (run.kind.value, run.pr_number, run.branch) == ("partial", body["number"],
                                                               "feature")
    finally:
        server.stop()
        agent.close()
