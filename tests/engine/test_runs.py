"""End to end through the engine: real git repos, real containers, the loopback registry."""

from __future__ import annotations

import time

from agent.runtime import Agent
from store.models import RunKind, RunStatus
from tests.engine.conftest import add_service, log_text, push, stage_statuses, wait_run


async def test_push_runs_through_integration_and_pushes_the_sha_tagged_image(
        agent: Agent, sample_repo, registry) -> None:
    repo = sample_repo("payments")
    service = add_service(agent, repo, image_repository=f"{registry.host}/payments")
    run = push(agent, service, repo.head_sha)

    run = await wait_run(agent, run.id)

    statuses = stage_statuses(run)
    assert [statuses[s] for s in ("Prepare", "Code Quality", "Unit Test", "Build",
                                  "Integration Test")] == ["success"] * 5
    assert repo.head_sha in registry.tags("payments")
    assert "0 problems" in log_text(agent, run.id, "Code Quality")
    assert "integration: GET" in log_text(agent, run.id, "Integration Test")
    # No deploy target: a clear failure, never a fake success.
    assert statuses["Deploy to Staging"] == "failed"
    assert run.status is RunStatus.failed
    assert "no deploy target configured" in (run.error or "")


async def test_failing_unit_test_stops_the_run_at_that_stage_with_its_log(
        agent: Agent, sample_repo) -> None:
    repo = sample_repo("inventory", unit_test_passes=False)
    service = add_service(agent, repo)
    run = await wait_run(agent, push(agent, service, repo.head_sha).id)

    statuses = stage_statuses(run)
    assert run.status is RunStatus.failed
    assert statuses["Unit Test"] == "failed"
    assert statuses["Build"] == statuses["Integration Test"] == "skipped"
    assert "test_version ... FAILED" in log_text(agent, run.id, "Unit Test")
    assert run.stages[2].exit_code == 1


async def test_pull_request_run_stops_after_integration_and_pushes_nothing(
        agent: Agent, sample_repo, registry) -> None:
    repo = sample_repo("search")
    service = add_service(agent, repo, image_repository=f"{registry.host}/search")
    run = push(agent, service, repo.head_sha, kind=RunKind.partial, pr_number=7)
    run = await wait_run(agent, run.id)

    assert run.status is RunStatus.success
    assert [s.name for s in run.stages][-1] == "Integration Test"
    assert registry.tags("search") == []


async def test_cancel_stops_the_running_container_within_two_seconds(
        agent: Agent, sample_repo, docker_client) -> None:
    repo = sample_repo("slow")
    service = add_service(agent, repo, unit_test_command="echo started; sleep 300")
    run = push(agent, service, repo.head_sha, kind=RunKind.partial)
    await wait_run(agent, run.id, lambda r: "started" in log_text(agent, r.id, "Unit Test"))

    began = time.monotonic()
    agent.engine.cancel(run.id, actor="tester")
    run = await wait_run(agent, run.id)
    elapsed = time.monotonic() - began

    assert run.status is RunStatus.cancelled
    assert stage_statuses(run)["Unit Test"] == "cancelled"
    assert elapsed < 2.5
    mine = [f"io.seamless.run={run.id}", f"io.seamless.agent={agent.instance}"]
    assert not docker_client.containers.list(filters={"label": mine})


async def test_a_failed_stage_leaves_no_container_behind_not_even_the_next_ones(
        agent: Agent, sample_repo, docker_client) -> None:
    repo = sample_repo("lint-fails")
    service = add_service(agent, repo, code_quality_command="echo 'style: 3 problems'; exit 3")
    run = await wait_run(agent, push(agent, service, repo.head_sha, kind=RunKind.partial).id)

    assert run.status is RunStatus.failed
    assert stage_statuses(run)["Unit Test"] == "skipped"
    # Unit Test's container was created ahead while Code Quality ran: it goes too.
    mine = [f"io.seamless.run={run.id}", f"io.seamless.agent={agent.instance}"]
    deadline = time.monotonic() + 10
    while docker_client.api.containers(all=True, filters={"label": mine}):
        assert time.monotonic() < deadline, docker_client.api.containers(
            all=True, filters={"label": mine})
        time.sleep(0.1)


async def test_stage_timeout_kills_the_container_and_says_timed_out_not_failed(
        agent: Agent, sample_repo) -> None:
    repo = sample_repo("hangs")
    service = add_service(agent, repo, unit_test_command="sleep 300", stage_timeout_s=2)
    run = await wait_run(agent, push(agent, service, repo.head_sha, kind=RunKind.partial).id)

    unit = run.stages[2]
    assert run.status is RunStatus.failed and unit.status.value == "timed_out"
    assert "timed out" in (unit.error or "") and "timed out" in (run.error or "")


async def test_missing_stage_image_fails_with_a_clear_reason_and_the_agent_carries_on(
        agent: Agent, sample_repo) -> None:
    repo = sample_repo("noimage")
    broken = add_service(agent, repo, name="broken", stage_image="seamless/does-not-exist:1",
                         compose_file=None, integration_test_command=None, dockerfile=None)
    fine = add_service(agent, repo, name="fine", compose_file=None,
                       integration_test_command=None, dockerfile=None)
    bad = push(agent, broken, repo.head_sha, kind=RunKind.partial)
    good = push(agent, fine, repo.head_sha, kind=RunKind.partial)

    bad, good = await wait_run(agent, bad.id), await wait_run(agent, good.id)
    assert bad.status is RunStatus.failed
    assert "seamless/does-not-exist:1" in log_text(agent, bad.id, "Code Quality")
    assert good.status is RunStatus.success
