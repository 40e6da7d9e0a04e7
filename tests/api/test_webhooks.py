"""GitHub webhooks over real HTTP with GitHub's own payloads, signed for real."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.triggers.github import normalize_repo_url, signature, verify_signature
from store.models import RunKind, Trigger
from tests.api.conftest import LiveApi, add_service

FIXTURES = Path("/work/shared/fixtures/github-webhooks")
SECRET = "It's a Secret to Everybody"
REPO = "https://github.com/Codertocat/Hello-World.git"


def test_signature_matches_githubs_test_vector() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature(SECRET, b"Hello, World!") == expected
    assert verify_signature(SECRET, b"Hello, World!", expected)
    assert not verify_signature(SECRET, b"Hello, World?", expected)
    assert not verify_signature(SECRET, b"Hello, World!", None)


@pytest.mark.parametrize("url", [
    "https://github.com/Codertocat/Hello-World.git", "git@github.com:codertocat/hello-world",
    "ssh://git@github.com/Codertocat/Hello-World.git", "git://github.com/Codertocat/Hello-World",
    "https://github.com/Codertocat/Hello-World/"])
def test_repo_urls_normalise_to_one_spelling(url: str) -> None:
    assert normalize_repo_url(url) == "github.com/codertocat/hello-world"


def payload(kind: str, name: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((FIXTURES / kind / name).read_text())
    for dotted, value in changes.items():
        target = data
        *path, last = dotted.split(".")
        for key in path:
            target = target[key]
        target[last] = value
    return data


def post(api: LiveApi, event: str, body: dict[str, Any] | bytes, *, secret: str | None = SECRET,
         delivery: str | None = None, content_type: str = "application/json") -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type, "X-GitHub-Event": event,
               "X-GitHub-Delivery": delivery or str(uuid.uuid4())}
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(secret, raw)
    return httpx.post(f"{api.url}/webhooks/github", content=raw, headers=headers, timeout=10)


def push_to(branch: str, sha: str = "a" * 40, **changes: Any) -> dict[str, Any]:
    changes.setdefault("deleted", False)
    return payload("push", "payload.json", ref=f"refs/heads/{branch}", after=sha, **changes)


@pytest.fixture
def service(api: LiveApi) -> Any:
    return add_service(api.agent.store, "hello", repo_url=REPO, branch="main",
                       webhook_secret=SECRET)


def test_push_to_service_branch_queues_a_full_run(api: LiveApi, service: Any) -> None:
    head = {"message": "Fix the rounding bug", "author": {"name": "Codertocat"}}
    r = post(api, "push", push_to("main", "b" * 40, head_commit=head))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued"
    [queued] = r.json()["runs"]
    [run] = api.runs("hello")
    assert run["id"] == queued["id"]
    assert (run["trigger"], run["kind"], run["sha"], run["branch"]) == (
        Trigger.push, RunKind.full, "b" * 40, "main")
    assert (run["author"], run["message"]) == ("Codertocat", "Fix the rounding bug")


def test_bad_or_missing_signature_is_401_and_runs_nothing(api: LiveApi, service: Any) -> None:
    assert post(api, "push", push_to("main"), secret="wrong").status_code == 401
    assert post(api, "push", push_to("main"), secret=None).status_code == 401
    assert api.runs() == []


def test_service_without_secret_refuses_webhooks(api: LiveApi) -> None:
    add_service(api.agent.store, "hello", repo_url=REPO, branch="main")
    r = post(api, "push", push_to("main"))
    assert r.status_code == 401 and r.json()["error"] == "no_webhook_secret"
    assert api.runs() == []


def test_redelivery_is_not_run_twice(api: LiveApi, service: Any) -> None:
    delivery = str(uuid.uuid4())
    first = post(api, "push", push_to("main"), delivery=delivery)
    second = post(api, "push", push_to("main"), delivery=delivery)
    assert first.json()["status"] == "queued" and second.json()["status"] == "duplicate"
    assert len(api.runs("hello")) == 1


def test_ping_is_answered(api: LiveApi, service: Any) -> None:
    body = payload("ping", "payload.json", **{"repository.clone_url": REPO,
                                              "repository.html_url": REPO[:-4]})
    r = post(api, "ping", body)
    assert r.status_code == 200 and r.json()["status"] == "pong"


def test_branch_delete_other_branches_tags_and_events_are_ignored(api: LiveApi,
                                                                   service: Any) -> None:
    deleted = push_to("main", "0" * 40, deleted=True, head_commit=None)
    answers = [post(api, "push", deleted), post(api, "push", push_to("feature")),
               post(api, "push", payload("push", "payload.json")),  # a tag
               post(api, "issues", {"repository": {"clone_url": REPO}})]
    assert [a.status_code for a in answers] == [202, 202, 202, 202]
    assert "deleted" in answers[0].json()["reason"]
    assert api.runs() == []


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened"])
def test_pull_request_runs_partial_at_head_sha(api: LiveApi, action: str) -> None:
    add_service(api.agent.store, "hello", repo_url=REPO, branch="master",
                webhook_secret=SECRET)
    body = payload("pull_request", f"{action}.payload.json")
    r = post(api, "pull_request", body)
    assert r.status_code == 200, r.text
    [run] = api.agent.store.list_runs(service="hello")
    assert run.kind is RunKind.partial and run.trigger is Trigger.pull_request
    assert run.sha == body["pull_request"]["head"]["sha"]
    assert run.pr_number == body["number"]
    assert [s.name for s in run.stages][-1] == "Integration Test"


def test_closed_pull_request_is_ignored(api: LiveApi) -> None:
    add_service(api.agent.store, "hello", repo_url=REPO, branch="master",
                webhook_secret=SECRET)
    r = post(api, "pull_request", payload("pull_request", "closed.payload.json"))
    assert r.status_code == 202 and api.runs() == []


def test_bad_payloads_get_clear_errors(api: LiveApi, service: Any) -> None:
    assert post(api, "push", b"{nope").status_code == 400
    form = post(api, "push", b"payload=%7B%7D", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415
    unknown = post(api, "push", push_to("main", repository={"clone_url": "https://x.org/a/b"}))
    assert unknown.status_code == 404
    assert api.runs() == []


def test_payload_over_25_mb_is_413(api: LiveApi, service: Any) -> None:
    big = b'{"pad":"' + b"x" * (25 * 1024 * 1024) + b'"}'
    r = post(api, "push", big)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

    def chunks():  # no Content-Length: the streamed size is what counts
        yield b'{"pad":"'
        for _ in range(26):
            yield b"x" * (1024 * 1024)
        yield b'"}'
    streamed = httpx.post(f"{api.url}/webhooks/github", content=chunks(), timeout=30,
                          headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                                   "X-GitHub-Delivery": "d"})
    assert streamed.status_code == 413
