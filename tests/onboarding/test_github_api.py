"""GitHubClient against a fake GitHub over real HTTP, in GitHub's documented shapes."""

from __future__ import annotations

import pytest

from agent.github_api import (
    GitHubAuthError,
    GitHubClient,
    GitHubNotFound,
    GitHubPermissionError,
    parse_github_repo,
    web_host,
)
from tests.onboarding.conftest import FINE_GRAINED_TOKEN, GOOD_TOKEN, READONLY_TOKEN
from tests.onboarding.fake_github import FakeGitHub

HOOK_URL = "https://ci.example.com/webhooks/github"


@pytest.mark.parametrize("url", [
    "https://github.com/acme/payments.git", "https://github.com/acme/payments",
    "git@github.com:acme/payments.git", "ssh://git@github.com/acme/payments.git",
    "https://github.com/acme/payments/",
])
def test_github_urls_in_every_form_give_owner_and_repo(url: str) -> None:
    assert parse_github_repo(url) == ("acme", "payments")


@pytest.mark.parametrize("url", [
    "https://gitlab.com/acme/payments.git", "git://127.0.0.1:9418/payments.git",
    "/srv/git/payments.git", "https://github.com/acme", "file:///tmp/x.git",
])
def test_non_github_urls_are_not_github_repos(url: str) -> None:
    assert parse_github_repo(url) is None


def test_enterprise_host_is_derived_from_the_api_url() -> None:
    assert web_host("https://api.github.com") == "github.com"
    assert web_host("https://ghe.example/api/v3") == "ghe.example"
    assert parse_github_repo("git@ghe.example:acme/payments.git", "ghe.example") == (
        "acme", "payments")


def test_token_check_reads_scopes_from_the_header(fake_github: FakeGitHub) -> None:
    with GitHubClient(GOOD_TOKEN, fake_github.url) as gh:
        check = gh.check_token()
    assert check.login == "octocat"
    assert check.scopes == ["admin:repo_hook", "repo:status"]
    assert check.can_manage_hooks is True


def test_token_without_hook_scope_is_flagged_with_advice(fake_github: FakeGitHub) -> None:
    with GitHubClient(READONLY_TOKEN, fake_github.url) as gh:
        check = gh.check_token()
    assert check.can_manage_hooks is False
    assert "admin:repo_hook" in check.advice and "read:user" in check.advice


def test_fine_grained_token_has_no_scopes_and_says_so(fake_github: FakeGitHub) -> None:
    with GitHubClient(FINE_GRAINED_TOKEN, fake_github.url) as gh:
        check = gh.check_token()
    assert check.scopes is None and check.kind == "fine-grained"
    assert check.can_manage_hooks is None
    assert "Webhooks" in check.advice


def test_bad_token_raises_auth_error_with_githubs_message(fake_github: FakeGitHub) -> None:
    with GitHubClient("ghp_wrong", fake_github.url) as gh, pytest.raises(GitHubAuthError) as exc:
        gh.check_token()
    assert exc.value.status == 401
    assert "Bad credentials" in str(exc.value)


def test_create_hook_sends_json_push_and_pull_request(fake_github: FakeGitHub) -> None:
    with GitHubClient(GOOD_TOKEN, fake_github.url) as gh:
        hook_id = gh.create_hook("acme", "payments", HOOK_URL, "s3cret")
    hook = fake_github.hooks[hook_id]
    assert hook["events"] == ["push", "pull_request"]
    assert hook["config"]["content_type"] == "json"
    assert hook["config"]["secret"] == "s3cret"
    assert hook["active"] is True


def test_existing_hook_is_updated_instead_of_failing(fake_github: FakeGitHub) -> None:
    with GitHubClient(GOOD_TOKEN, fake_github.url) as gh:
        first = gh.create_hook("acme", "payments", HOOK_URL, "old")
        second = gh.create_hook("acme", "payments", HOOK_URL, "new")
    assert first == second
    assert len(fake_github.hooks) == 1
    assert fake_github.hooks[first]["config"]["secret"] == "new"
    assert [r.method for r in fake_github.requests if "/hooks" in r.path] == [
        "POST", "POST", "GET", "PATCH"]


def test_missing_scope_error_names_the_scope(fake_github: FakeGitHub) -> None:
    with GitHubClient(READONLY_TOKEN, fake_github.url) as gh:
        with pytest.raises(GitHubPermissionError) as exc:
            gh.create_hook("acme", "payments", HOOK_URL, "s")
    assert exc.value.status == 403
    assert "admin:repo_hook" in exc.value.missing_scopes
    assert "Must have admin rights" in str(exc.value) and "admin:repo_hook" in str(exc.value)


def test_unknown_repo_is_not_found(fake_github: FakeGitHub) -> None:
    with GitHubClient(GOOD_TOKEN, fake_github.url) as gh, pytest.raises(GitHubNotFound) as exc:
        gh.create_hook("acme", "nope", HOOK_URL, "s")
    assert "Not Found" in str(exc.value)


def test_delete_hook_removes_it_and_a_second_delete_is_not_found(
        fake_github: FakeGitHub) -> None:
    with GitHubClient(GOOD_TOKEN, fake_github.url) as gh:
        hook_id = gh.create_hook("acme", "payments", HOOK_URL, "s")
        gh.delete_hook("acme", "payments", hook_id)
        assert fake_github.hooks == {}
        with pytest.raises(GitHubNotFound):
            gh.delete_hook("acme", "payments", hook_id)


def test_deliveries_list_and_detail_carry_status_and_response(fake_github: FakeGitHub) -> None:
    with GitHubClient(GOOD_TOKEN, fake_github.url) as gh:
        hook_id = gh.create_hook("acme", "payments", HOOK_URL, "s")
        fake_github.add_delivery(hook_id, 200, "{}")
        bad = fake_github.add_delivery(hook_id, 401, '{"error":"bad signature"}')
        listed = gh.list_deliveries("acme", "payments", hook_id)
        detail = gh.get_delivery("acme", "payments", hook_id, bad["id"])
    assert [d.status_code for d in listed] == [401, 200]
    assert listed[0].failed and not listed[1].failed
    assert detail.response["payload"] == '{"error":"bad signature"}'
    assert detail.status == "Invalid HTTP Response: 401"


def test_commit_status_posts_state_and_stable_context(fake_github: FakeGitHub) -> None:
    with GitHubClient(GOOD_TOKEN, fake_github.url) as gh:
        gh.create_commit_status("acme", "payments", "a" * 40, "success",
                                "http://ci/runs/1", "All stages passed")
    assert fake_github.statuses == [{"sha": "a" * 40, "state": "success",
                                     "description": "All stages passed", "context": "seamless",
                                     "target_url": "http://ci/runs/1"}]
