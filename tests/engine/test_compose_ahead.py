"""Integration Test's compose check (`compose config` + the policy) runs while Build
builds the image, so the stage goes straight to `up`; what it checked is what `up` gets,
and a refusal found early fails Integration Test exactly as before."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from agent.executors import compose
from agent.executors.compose_ahead import ChecksAhead
from agent.runtime import Agent
from store.models import RunKind, RunStatus
from tests.engine.conftest import add_service, log_text, push, wait_run


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads compose files were checked on."""
    threads: list[str] = []
    real = compose.check_compose

    def counted(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(compose, "check_compose", counted)
    return threads


async def test_the_compose_file_is_checked_while_the_image_builds(
        agent: Agent, sample_repo, checks: list[str]) -> None:
    repo = sample_repo("svc")
    service = add_service(agent, repo, code_quality_command=None, unit_test_command=None)
    run = await wait_run(agent, push(agent, service, repo.head_sha, kind=RunKind.partial).id)

    text = log_text(agent, run.id, "Integration Test")
    assert run.status is RunStatus.success, text
    assert "integration: GET http://app:8080/health -> ok" in text
    # Once, during Build: not again on Integration Test's own path.
    assert checks == ["compose-check-ahead"]


async def test_a_compose_file_refused_during_build_fails_integration_test_with_its_reason(
        agent: Agent, sample_repo, checks: list[str]) -> None:
    repo = sample_repo("svc")
    sha = repo.commit("privileged app", {"compose.yaml": (
        "services:\n  app:\n    image: ${SEAMLESS_IMAGE}\n    privileged: true\n")})
    service = add_service(agent, repo, code_quality_command=None, unit_test_command=None)
    run = await wait_run(agent, push(agent, service, sha, kind=RunKind.partial).id)

    stage = next(s for s in run.stages if s.name == "Integration Test")
    assert run.status is RunStatus.failed
    assert stage.status.value == "failed"
    assert (stage.error or "").startswith(
        "compose file refused: service 'app': privileged: privileged containers reach the "
        "host"), stage.error
    assert checks == ["compose-check-ahead"]


def test_a_result_is_taken_once_and_only_for_the_same_inputs() -> None:
    ahead: ChecksAhead[str] = ChecksAhead()
    ahead.start(("run1", "env A"), lambda: "checked early")
    assert ahead.take(("run1", "env B"), lambda: "checked now") == "checked now"
    assert ahead.take(("run1", "env A"), lambda: "checked now") == "checked early"
    assert ahead.take(("run1", "env A"), lambda: "checked now") == "checked now"

    def refuse() -> str:
        raise ValueError("refused early")

    ahead.start("run2", refuse)
    with pytest.raises(ValueError, match="refused early"):
        ahead.take("run2", lambda: "checked now")
