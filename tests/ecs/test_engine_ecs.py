"""ECS stages through the whole engine: an in-process Agent, moto in server mode over HTTP.

What moto cannot emulate: it runs no container. A task stays RUNNING (the conftest holds
it there) until the test plays the container's part: it writes the task's output into
its CloudWatch stream with `put_log_events` and ends it with `stop_task` (moto then
reports exit code 0). Real exit codes and stop reasons are covered by
test_ecs_results.py with botocore's Stubber. Non-ECS stages (Prepare) use the local
executor on the agent's host, so no Docker engine is needed. With `executor: ecs` for the
whole pipeline, Prepare and Build are tasks too and the agent's host clones nothing.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.executors.ecs import STOP_REASON_CANCEL
from agent.executors.ecs_taskdef import log_stream_name, started_by
from agent.runtime import Agent
from store.models import (
    STAGE_BUILD,
    STAGE_CODE_QUALITY,
    STAGE_DEPLOY_STAGING,
    STAGE_INTEGRATION_TEST,
    STAGE_PREPARE,
    STAGE_UNIT_TEST,
    EcsExecutorConfig,
    NoTargetConfig,
    PipelineConfig,
    RunInfo,
    RunKind,
    RunStatus,
    Service,
    ServiceConfig,
    Trigger,
)
from store.models.repos import repo_key
from tests.ecs.conftest import Moto, put_lines
from tests.engine.conftest import FINAL, stage_statuses, wait_run
from tests.harness import agent_running
from tests.sample_repo import SampleRepo

ECS_STAGES = (STAGE_CODE_QUALITY, STAGE_UNIT_TEST)
COMMANDS = {STAGE_CODE_QUALITY: "sh lint.sh", STAGE_UNIT_TEST: "sh test.sh"}


@pytest.fixture
async def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Agent]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    async with agent_running(tmp_path / "data", port=0, executor="auto") as instance:
        instance.executors.ecs_options = dict(poll_interval_s=0.05, max_poll_interval_s=0.1,
                                              settle_s=0.1, capacity_retry_s=0.1)
        yield instance


def add_pipeline(agent: Agent, ecs_config: EcsExecutorConfig, **fields: Any) -> str:
    name = f"p{uuid.uuid4().hex[:8]}"
    agent.store.create_pipeline(PipelineConfig(
        name=name, staging=NoTargetConfig(), production=NoTargetConfig(),
        ecs_executor=ecs_config, **fields))
    return name


def add_service(agent: Agent, repo: SampleRepo, pipeline: str) -> Service:
    """Prepare, Code Quality and Unit Test; no Dockerfile, so Build and deploys skip."""
    return agent.store.create_service(ServiceConfig(
        name=repo.name, pipeline=pipeline, repo_url=repo.url, dockerfile=None,
        code_quality_command=COMMANDS[STAGE_CODE_QUALITY],
        unit_test_command=COMMANDS[STAGE_UNIT_TEST]))


def push(agent: Agent, service: Service, repo: SampleRepo) -> RunInfo:
    return agent.engine.submit(service, trigger=Trigger.push, kind=RunKind.full,
                               sha=repo.head_sha, branch=service.branch)


async def wait_task(moto: Moto, cluster: str, run_id: int, stage: str,
                    timeout: float = 30.0) -> dict[str, Any]:
    """The RUNNING task the agent started for this run's stage."""
    ecs = moto.client("ecs")
    for _ in range(int(timeout / 0.05)):
        arns = ecs.list_tasks(cluster=cluster, startedBy=started_by(run_id),
                              desiredStatus="RUNNING")["taskArns"]
        if arns:
            tasks = ecs.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])["tasks"]
            for task in tasks:
                if {"key": "seamless:stage", "value": stage} in task.get("tags", []):
                    return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"no ECS task for run {run_id} {stage}")


async def wait_log(agent: Agent, run_id: int, stage: str, text: str,
                   exact: bool = True) -> None:
    for _ in range(400):
        lines = stage_lines(agent, run_id, stage)
        if text in lines or (not exact and any(text in line for line in lines)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never reached the {stage} log: "
                         f"{stage_lines(agent, run_id, stage)}")


async def wait_any_log(agent: Agent, run_ids: list[int], stage: str, text: str) -> int:
    """The run whose stage log shows the line first."""
    for _ in range(400):
        for run_id in run_ids:
            if text in stage_lines(agent, run_id, stage):
                return run_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never reached a {stage} log")


def finished(run: RunInfo, stage: str) -> bool:
    return next(s for s in run.stages if s.name == stage).status.finished


def stage_lines(agent: Agent, run_id: int, stage: str) -> list[str]:
    page = agent.store.log_page(run_id, stage=stage, limit=100_000)
    return [line.text for line in page.lines]


def ecs_output(agent: Agent, run_id: int, stage: str) -> list[str]:
    """The stage's log without the agent's own (system) lines."""
    page = agent.store.log_page(run_id, stage=stage, limit=100_000)
    return [line.text for line in page.lines if line.stream.value != "system"]


async def play_container(moto: Moto, cluster: str, run_id: int, stage: str,
                         lines: list[str], config: EcsExecutorConfig) -> dict[str, Any]:
    """Be the stage's container: print the lines into its stream, then exit."""
    task = await wait_task(moto, cluster, run_id, stage)
    put_lines(moto.client("logs"), config.log_group,
              log_stream_name(run_id, task["taskArn"]), lines)
    moto.client("ecs").stop_task(cluster=cluster, task=task["taskArn"],
                                 reason="test: the container exited")
    return task


async def test_mixed_mode_runs_heavy_stages_as_ecs_tasks_and_ingests_their_logs(
        agent: Agent, moto: Moto, cluster: str, ecs_config: EcsExecutorConfig,
        sample_repo) -> None:
    repo = sample_repo("payments")
    pipeline = add_pipeline(agent, ecs_config, executor="docker",
                            stage_executors={s: "ecs" for s in ECS_STAGES})
    service = add_service(agent, repo, pipeline)
    run = push(agent, service, repo)
    logs = moto.client("logs")

    for stage in ECS_STAGES:
        task = await wait_task(moto, cluster, run.id, stage)
        stream = log_stream_name(run.id, task["taskArn"])
        first = [f"{stage} line {i}" for i in range(5)]
        put_lines(logs, ecs_config.log_group, stream, first)
        await wait_log(agent, run.id, stage, first[-1])  # read while the task runs
        rest = [f"{stage} line {i}" for i in range(5, 12)]
        put_lines(logs, ecs_config.log_group, stream, rest)
        moto.client("ecs").stop_task(cluster=cluster, task=task["taskArn"],
                                     reason="test: the container exited")
        assert agent.store.get_stage(run.id, stage).status.value == "in_progress"
        await wait_run(agent, run.id, functools.partial(finished, stage=stage), timeout=30)
        assert ecs_output(agent, run.id, stage) == first + rest  # in order, once each

        definition = moto.client("ecs").describe_task_definition(
            taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        container = definition["containerDefinitions"][0]
        assert container["image"] == "seamless/busybox:latest"
        assert container["entryPoint"] == ["sh", "-c"]
        assert container["command"] == [COMMANDS[stage]]
        tags = {t["key"]: t["value"] for t in task["tags"]}
        assert tags == {"seamless:run": str(run.id), "seamless:stage": stage,
                        "seamless:service": service.name}
        assert task["startedBy"] == started_by(run.id)

    done = await wait_run(agent, run.id, timeout=30)
    assert done.status is RunStatus.success, stage_statuses(done)
    assert stage_statuses(done)[STAGE_PREPARE] == "success"
    # Prepare ran on the agent's host: no task was started for it.
    all_tasks = moto.client("ecs").list_tasks(cluster=cluster, startedBy=started_by(run.id),
                                              desiredStatus="STOPPED")["taskArns"]
    assert len(all_tasks) == len(ECS_STAGES)
    prepare_log = "\n".join(stage_lines(agent, run.id, STAGE_PREPARE))
    assert "ecs executor" not in prepare_log
    assert "(ecs executor)" in "\n".join(stage_lines(agent, run.id, STAGE_UNIT_TEST))


async def test_cancel_stops_the_ecs_task_of_the_stage_in_progress(
        agent: Agent, moto: Moto, cluster: str, ecs_config: EcsExecutorConfig,
        sample_repo) -> None:
    repo = sample_repo("orders")
    pipeline = add_pipeline(agent, ecs_config, executor="docker",
                            stage_executors={s: "ecs" for s in ECS_STAGES})
    run = push(agent, add_service(agent, repo, pipeline), repo)
    task = await wait_task(moto, cluster, run.id, STAGE_CODE_QUALITY)

    agent.engine.cancel(run.id, "alice")
    done = await wait_run(agent, run.id, timeout=30)

    assert done.status is RunStatus.cancelled
    assert stage_statuses(done)[STAGE_CODE_QUALITY] == "cancelled"
    assert stage_statuses(done)[STAGE_UNIT_TEST] == "skipped"
    stopped = moto.client("ecs").describe_tasks(cluster=cluster,
                                                tasks=[task["taskArn"]])["tasks"][0]
    assert stopped["lastStatus"] == "STOPPED"
    assert stopped["stoppedReason"] == STOP_REASON_CANCEL
    # Nothing else was started for the run after the cancel.
    assert moto.client("ecs").list_tasks(cluster=cluster, startedBy=started_by(run.id),
                                         desiredStatus="RUNNING")["taskArns"] == []


async def finish_tasks(agent: Agent, moto: Moto, cluster: str, run_ids: list[int],
                       hold_s: float = 0.3) -> int:
    """Play every stage container: each task runs `hold_s`, then exits. Returns the most
    tasks seen RUNNING at once."""
    ecs = moto.client("ecs")
    seen: dict[str, float] = {}
    most = 0
    loop = asyncio.get_running_loop()
    while not all(agent.store.get_run(r).status in FINAL for r in run_ids):
        running = ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]
        most = max(most, len(running))
        for arn in running:
            first = seen.setdefault(arn, loop.time())
            if loop.time() - first >= hold_s:
                ecs.stop_task(cluster=cluster, task=arn, reason="test: the container exited")
        await asyncio.sleep(0.05)
    return most


async def test_whole_pipeline_on_ecs_runs_no_more_runs_than_max_parallel_tasks(
        agent: Agent, moto: Moto, cluster: str, ecs_config: EcsExecutorConfig,
        sample_repo) -> None:
    one = ecs_config.model_copy(update={"max_parallel_tasks": 1})
    pipeline = add_pipeline(agent, one, executor="ecs", max_parallel_runs=4)
    repos = [sample_repo("alpha"), sample_repo("beta")]
    runs = [push(agent, add_service(agent, repo, pipeline), repo) for repo in repos]

    most = await asyncio.wait_for(finish_tasks(agent, moto, cluster, [r.id for r in runs]),
                                  timeout=60)

    done = [agent.store.get_run(r.id) for r in runs]
    assert [r.status for r in done] == [RunStatus.success, RunStatus.success]
    assert most == 1
    first, second = sorted(done, key=lambda r: r.stages[0].started_at or datetime.min)
    ecs_spans = [(next(s for s in r.stages if s.name == STAGE_CODE_QUALITY).started_at,
                  next(s for s in r.stages if s.name == STAGE_UNIT_TEST).finished_at)
                 for r in (first, second)]
    assert ecs_spans[0][1] is not None and ecs_spans[1][0] is not None
    assert ecs_spans[0][1] <= ecs_spans[1][0]  # the second run's tasks began after the first's
    # Prepare was a task as well (the pipeline's executor is ecs), bounded the same way.
    for run in done:
        assert "(ecs executor)" in "\n".join(stage_lines(agent, run.id, STAGE_PREPARE))


async def test_mixed_mode_ecs_stages_of_parallel_runs_share_the_clusters_bound(
        agent: Agent, moto: Moto, cluster: str, ecs_config: EcsExecutorConfig,
        sample_repo) -> None:
    one = ecs_config.model_copy(update={"max_parallel_tasks": 1})
    # Runs of a docker pipeline are bounded by the host (4 here), its ECS stages by ECS.
    pipeline = add_pipeline(agent, one, executor="docker", max_parallel_runs=4,
                            stage_executors={STAGE_UNIT_TEST: "ecs"})
    repos = [sample_repo("gamma"), sample_repo("delta")]
    runs = [push(agent, add_service(agent, repo, pipeline), repo) for repo in repos]
    both_in_unit_test = [
        wait_run(agent, r.id, lambda x: stage_statuses(x)[STAGE_UNIT_TEST] == "in_progress",
                 timeout=30) for r in runs]
    await asyncio.gather(*both_in_unit_test)
    waiting = await wait_any_log(agent, [r.id for r in runs], STAGE_UNIT_TEST,
                                 "waiting for a free ecs slot (at most 1 stages at once)")
    other = next(r.id for r in runs if r.id != waiting)
    await wait_log(agent, other, STAGE_UNIT_TEST, "started on cluster", exact=False)
    await asyncio.sleep(0.3)  # room for a second task to start, were the bound missing

    running = moto.client("ecs").list_tasks(cluster=cluster,
                                            desiredStatus="RUNNING")["taskArns"]
    assert len(running) == 1

    most = await asyncio.wait_for(finish_tasks(agent, moto, cluster, [r.id for r in runs]),
                                  timeout=60)
    assert most == 1
    assert [agent.store.get_run(r.id).status for r in runs] == [RunStatus.success] * 2


ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
PRIVATE_REPO = "https://git.example.com:8443/acme/ledger.git"
SHA = "0123456789abcdef0123456789abcdef01234567"


def task_definition(moto: Moto, task: dict[str, Any]) -> dict[str, Any]:
    definition = moto.client("ecs").describe_task_definition(
        taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    return definition["containerDefinitions"][0]


def task_env(task: dict[str, Any]) -> dict[str, str]:
    override = task["overrides"]["containerOverrides"][0]
    return {e["name"]: e["value"] for e in override.get("environment", [])}


@pytest.mark.parametrize("build_mode", ["docker", "kaniko"])
async def test_whole_pipeline_on_ecs_clones_and_builds_on_the_cluster_not_on_the_host(
        agent: Agent, moto: Moto, cluster: str, ecs_config: EcsExecutorConfig,
        build_mode: str) -> None:
    config = ecs_config.model_copy(update={"build_mode": build_mode})
    pipeline = add_pipeline(agent, config, executor="ecs")
    name = f"ledger-{uuid.uuid4().hex[:6]}"
    service = agent.store.create_service(ServiceConfig(
        name=name, pipeline=pipeline, repo_url=PRIVATE_REPO, dockerfile="Dockerfile",
        build_context="app", image_repository=f"{ECR}/{name}",
        code_quality_command=COMMANDS[STAGE_CODE_QUALITY],
        unit_test_command=COMMANDS[STAGE_UNIT_TEST]))
    agent.workspaces.github_token = "ghs_not-in-any-definition"
    run = agent.engine.submit(service, trigger=Trigger.push, kind=RunKind.full, sha=SHA,
                              branch=service.branch)

    tasks = {}
    for stage in (STAGE_PREPARE, STAGE_CODE_QUALITY, STAGE_UNIT_TEST, STAGE_BUILD):
        tasks[stage] = await play_container(moto, cluster, run.id, stage,
                                            [f"{stage} output"], config)
        await wait_run(agent, run.id, functools.partial(finished, stage=stage), timeout=30)
        assert ecs_output(agent, run.id, stage) == [f"{stage} output"]
    done = await wait_run(agent, run.id, timeout=30)

    statuses = stage_statuses(done)
    assert [statuses[s] for s in (STAGE_PREPARE, STAGE_CODE_QUALITY, STAGE_UNIT_TEST,
                                  STAGE_BUILD)] == ["success"] * 4
    assert statuses[STAGE_INTEGRATION_TEST] == "skipped"  # no command configured
    # The run went on to deploy the built image; this pipeline has no staging target.
    staging = agent.store.get_stage(run.id, STAGE_DEPLOY_STAGING)
    assert staging.status.value == "failed"
    assert staging.error == "no deploy target configured for staging"

    prepare = task_definition(moto, tasks[STAGE_PREPARE])
    assert prepare["image"].startswith("alpine/git")
    assert prepare["entryPoint"] == ["sh", "-c"]
    assert f"git fetch -q --depth 1 {PRIVATE_REPO} {SHA}" in prepare["command"][0]
    assert f"git checkout -q --detach {SHA}" in prepare["command"][0]
    assert prepare["workingDirectory"] == f"/workspaces/{repo_key(PRIVATE_REPO)}/{SHA}"
    # The private-repo token reaches git only through the task's environment override.
    env = task_env(tasks[STAGE_PREPARE])
    assert env["GIT_CONFIG_KEY_0"] == "http.https://git.example.com:8443/.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
    assert "ghs_not-in-any-definition" not in str(prepare)
    assert "GIT_CONFIG_VALUE_0" not in task_env(tasks[STAGE_BUILD])

    build = task_definition(moto, tasks[STAGE_BUILD])
    target = f"{ECR}/{name}:{SHA}"
    if build_mode == "docker":
        assert build["image"].startswith("docker:")
        assert build["command"] == [f"set -eu; docker build --pull -t {target} "
                                    f"-f app/Dockerfile app; docker push {target}"]
    else:
        assert "kaniko" in build["image"]
        assert f"--destination {target}" in build["command"][0]
        assert "--no-push" not in build["command"][0]

    # The agent's host cloned nothing: no mirror, no workspace.
    assert not (agent.config.workspaces_dir / repo_key(PRIVATE_REPO)).exists()
    assert not (agent.config.mirrors_dir / f"{repo_key(PRIVATE_REPO)}.git").exists()
    assert "(ecs executor)" in "\n".join(stage_lines(agent, run.id, STAGE_BUILD))


async def test_ecs_build_without_a_registry_repository_fails_clearly(
        agent: Agent, moto: Moto, cluster: str, ecs_config: EcsExecutorConfig) -> None:
    pipeline = add_pipeline(agent, ecs_config, executor="ecs")
    name = f"ledger-{uuid.uuid4().hex[:6]}"
    service = agent.store.create_service(ServiceConfig(
        name=name, pipeline=pipeline, repo_url=PRIVATE_REPO, dockerfile="Dockerfile"))
    run = agent.engine.submit(service, trigger=Trigger.push, kind=RunKind.full, sha=SHA,
                              branch=service.branch)
    await play_container(moto, cluster, run.id, STAGE_PREPARE, ["cloned"], ecs_config)

    done = await wait_run(agent, run.id, timeout=30)

    assert done.status is RunStatus.failed
    build = agent.store.get_stage(run.id, STAGE_BUILD)
    assert build.status.value == "failed"
    assert "has no image_repository on a registry" in (build.error or "")
    # Build refused before asking ECS: Prepare's is the only task of the run.
    stopped = moto.client("ecs").list_tasks(cluster=cluster, startedBy=started_by(run.id),
                                            desiredStatus="STOPPED")["taskArns"]
    assert len(stopped) == 1


async def test_ecs_pipeline_runs_are_not_held_back_by_the_build_hosts_bound(
        agent: Agent, moto: Moto, cluster: str, ecs_config: EcsExecutorConfig,
        sample_repo) -> None:
    """The host may run one run at a time; a run of an ECS pipeline still starts, because
    its capacity is the cluster's."""
    agent.engine.max_parallel_runs = 1
    host_pipeline = add_pipeline(agent, ecs_config, executor="local")
    busy = sample_repo("busy")
    host_service = agent.store.create_service(ServiceConfig(
        name=busy.name, pipeline=host_pipeline, repo_url=busy.url, dockerfile=None,
        code_quality_command="sleep 30"))
    host_run = push(agent, host_service, busy)
    await wait_run(agent, host_run.id, lambda r: r.status is RunStatus.running)

    cluster_repo = sample_repo("cloudy")
    cluster_pipeline = add_pipeline(agent, ecs_config, executor="ecs")
    cluster_run = push(agent, add_service(agent, cluster_repo, cluster_pipeline), cluster_repo)
    await wait_task(moto, cluster, cluster_run.id, STAGE_PREPARE)

    second_host_run = push(agent, agent.store.create_service(ServiceConfig(
        name="waits", pipeline=host_pipeline, repo_url=busy.url, dockerfile=None,
        code_quality_command="true")), busy)
    await asyncio.sleep(0.5)
    assert agent.store.get_run(second_host_run.id).status is RunStatus.queued
    agent.engine.cancel(host_run.id, "tester")
    agent.engine.cancel(cluster_run.id, "tester")
    await wait_run(agent, second_host_run.id, timeout=30)
