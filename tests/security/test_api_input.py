"""Input the API must refuse: image references that are shell or docker-CLI tricks, PR
branch names that are not git refs, oversized strings, and webhook deliveries whose
fields have the wrong type — each answered 4xx naming the field, never 500.
Against a real agent served over HTTP (stages need no engine here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store.models import Role
from tests.api.conftest import LiveApi, add_service, serve_agent
from tests.api.test_webhooks import REPO, SECRET, payload, post, push_to


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    with serve_agent(tmp_path) as api:
        yield api


@pytest.fixture
def hooked(live: LiveApi) -> LiveApi:
    add_service(live.agent.store, "hello", repo_url=REPO, branch="main", webhook_secret=SECRET)
    return live


def pr(**changes: Any) -> dict[str, Any]:
    base = {"pull_request.base.ref": "main",
            "pull_request.head.repo.full_name": "Codertocat/Hello-World",
            "pull_request.base.repo.full_name": "Codertocat/Hello-World",
            "pull_request.head.sha": "c" * 40, "repository.clone_url": REPO}
    return payload("pull_request", "opened.payload.json", **{**base, **changes})


@pytest.mark.parametrize("image", ["busybox;id", "busybox$(touch /tmp/x)", "-v/:/host",
                                   "busybox -v /:/host", "BUSYBOX", "busybox:"])
def test_a_stage_image_that_is_not_an_image_reference_is_refused_at_config_time(
        live: LiveApi, image: str) -> None:
    with live.client(Role.admin) as c:
        pipeline = c.post("/api/v1/pipelines", json={"name": "shop", "stage_image": image})
        assert c.post("/api/v1/pipelines", json={"name": "shop"}).status_code == 201
        service = c.post("/api/v1/services", json={
            "name": "pay", "pipeline": "shop", "repo_url": REPO, "stage_image": image})
        repository = c.post("/api/v1/services", json={
            "name": "pay2", "pipeline": "shop", "repo_url": REPO, "image_repository": image})
    for answer in (pipeline, service, repository):
        assert answer.status_code == 422, answer.text
        assert "image" in answer.text and "reference" in answer.text or (
            "repository" in answer.text), answer.text


def test_ordinary_image_references_are_accepted(live: LiveApi) -> None:
    with live.client(Role.admin) as c:
        for n, image in enumerate(["busybox", "seamless/busybox:latest",
                                   "127.0.0.1:5000/team/app:1.2-rc1",
                                   "registry.example.com/a/b@sha256:" + "0" * 64]):
            answer = c.post("/api/v1/pipelines", json={"name": f"p{n}", "stage_image": image})
            assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("ref", ["../../x\n$(touch /tmp/pwned)", "a b", "-rf", "x..y",
                                 "refs/../../etc", "x" * 400])
def test_a_pull_request_branch_that_is_not_a_git_ref_is_refused_and_runs_nothing(
        hooked: LiveApi, ref: str) -> None:
    answer = post(hooked, "pull_request", pr(**{"pull_request.head.ref": ref}))
    assert answer.status_code == 400, answer.text
    assert "pull_request.head.ref" in answer.json()["detail"]
    assert hooked.runs() == []
    # the delivery was not remembered: a corrected redelivery is not a "duplicate"
    assert post(hooked, "pull_request", pr()).json()["status"] == "queued"


def test_a_five_megabyte_pull_request_title_is_stored_capped(hooked: LiveApi) -> None:
    answer = post(hooked, "pull_request", pr(**{"pull_request.title": "T" * 5_000_000}))
    assert answer.status_code == 200, answer.text
    [run] = hooked.runs()
    assert 0 < len(run["message"]) <= 2000


@pytest.mark.parametrize("event, body, field", [
    ("push", push_to("main", "b" * 40, head_commit="a string"), "head_commit"),
    ("push", push_to("main", "b" * 40, head_commit={"message": ["x"]}), "head_commit.message"),
    ("push", {**push_to("main", "b" * 40), "ref": 7}, "ref"),
    ("pull_request", pr(pull_request="a string"), "pull_request"),
    ("pull_request", pr(**{"pull_request.head": 5}), "pull_request.head"),
    ("pull_request", pr(number="12"), "number"),
])
def test_a_signed_delivery_with_a_field_of_the_wrong_type_is_a_400_naming_it(
        hooked: LiveApi, event: str, body: dict[str, Any], field: str) -> None:
    answer = post(hooked, event, body)
    assert answer.status_code == 400, answer.text
    assert repr(field) in answer.json()["detail"], answer.text
    assert hooked.runs() == []


def test_a_delivery_nested_a_hundred_thousand_deep_is_a_400(hooked: LiveApi) -> None:
    deep = b'{"repository": {"clone_url": "' + REPO.encode() + b'"}, "x": ' + (
        b"[" * 100_000) + (b"]" * 100_000) + b"}"
    answer = post(hooked, "push", deep)
    assert answer.status_code == 400, answer.text
    assert "nested" in answer.json()["detail"]


@pytest.mark.parametrize("repository, field", [("x", "repository"),
                                               ({"clone_url": 5}, "repository.clone_url")])
def test_an_unsigned_delivery_with_a_malformed_repository_is_a_400(
        hooked: LiveApi, repository: Any, field: str) -> None:
    answer = post(hooked, "push", {"repository": repository}, secret=None)
    assert answer.status_code == 400, answer.text
    assert repr(field) in answer.json()["detail"]
    with hooked.client(Role.viewer) as c:
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("branch", ["../../x\n$(touch /tmp/pwned)", "-rf", "a b"])
def test_a_manual_trigger_with_a_branch_that_is_not_a_git_ref_is_refused(
        hooked: LiveApi, branch: str) -> None:
    with hooked.client(Role.deployer) as c:
        answer = c.post("/api/v1/services/hello/trigger",
                        json={"branch": branch, "sha": "d" * 40})
    assert answer.status_code == 422, answer.text
    assert "branch" in answer.text
    assert hooked.runs() == []


def test_an_oversized_delivery_id_is_refused_not_stored(hooked: LiveApi) -> None:
    answer = post(hooked, "push", push_to("main", "b" * 40), delivery="d" * 5000)
    assert answer.status_code == 400, answer.text
    assert "X-GitHub-Delivery" in answer.json()["detail"]
    assert hooked.runs() == []
