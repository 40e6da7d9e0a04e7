"""What moto cannot emulate, covered against our own code with recorded responses.

moto always reports exit code 0, never fills `stopCode`, container `reason` or a
MISSING failure, and its log tokens are plain indices. Here botocore's Stubber feeds
the shapes real ECS and CloudWatch return, through the same executor code paths.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import ANY, Stubber

from agent.executors.cloudwatch import LogFollower
from agent.executors.ecs import EcsExecutor, task_result
from store.models import EcsExecutorConfig
from tests.ecs.conftest import StateBox, spec
from tests.harness.fakes import ListLog

ARN = "arn:aws:ecs:us-east-1:123456789012:task/c/0f1e2d3c"
DEF_ARN = "arn:aws:ecs:us-east-1:123456789012:task-definition/seamless-stage-x:1"


def stopped(exit_code: int | None, *, reason: str = "Essential container in task exited",
            stop_code: str = "EssentialContainerExited",
            container_reason: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "stage", "lastStatus": "STOPPED"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = container_reason
    return {"taskArn": ARN, "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
            "stoppedReason": reason, "stopCode": stop_code, "containers": [container]}


def test_a_failing_command_returns_its_exit_code() -> None:
    result = task_result(stopped(3))
    assert result.exit_code == 3 and result.error is None and not result.ok


def test_out_of_memory_names_the_container_reason() -> None:
    result = task_result(stopped(137, container_reason="OutOfMemoryError: Container killed "
                                 "due to memory usage"))
    assert result.exit_code == 137 and "OutOfMemoryError" in (result.error or "")


def test_a_task_that_never_ran_reports_why_instead_of_an_exit_code() -> None:
    result = task_result(stopped(None, stop_code="TaskFailedToStart",
                                 reason="CannotPullContainerError: pull image manifest "
                                        "has been retried 5 time(s)"))
    assert result.exit_code is None and "CannotPullContainerError" in (result.error or "")


def executor_with_stubs() -> tuple[EcsExecutor, Stubber, Stubber]:
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x",
                                    region_name="us-east-1")
    config = EcsExecutorConfig(cluster="c", efs_file_system_id="fs-1", log_group="/g")
    executor = EcsExecutor(config, lambda: session, workspaces_root=Path("/data/workspaces"),
                           poll_interval_s=0.01, settle_s=0)
    return executor, Stubber(executor.ecs), Stubber(executor.logs)


def test_exit_code_and_last_lines_of_a_real_task_reach_the_stage() -> None:
    executor, ecs, logs = executor_with_stubs()
    ecs.add_response("describe_task_definition", {"taskDefinition": {
        "taskDefinitionArn": DEF_ARN}}, {"taskDefinition": ANY})
    ecs.add_response("run_task", {"tasks": [{"taskArn": ARN}], "failures": []}, None)
    ecs.add_response("describe_tasks", {"tasks": [stopped(2)], "failures": []}, None)
    page = {"events": [{"timestamp": 1_700_000_000_000, "message": "FAILED test_x",
                        "ingestionTime": 1}], "nextForwardToken": "f/opaque-1",
            "nextBackwardToken": "b/1"}
    logs.add_response("get_log_events", page, None)
    logs.add_response("get_log_events", {"events": [], "nextForwardToken": "f/opaque-1",
                                         "nextBackwardToken": "b/1"}, None)
    logs.add_response("get_log_events", {"events": [], "nextForwardToken": "f/opaque-1",
                                         "nextBackwardToken": "b/1"}, None)
    log, saved = ListLog(), StateBox()
    with ecs, logs:
        result = executor.run(spec(run_id=3), log, threading.Event(), saved)
    assert result.exit_code == 2 and not result.ok
    assert log.stdout() == ["FAILED test_x"]
    assert saved.last["next_token"] == "f/opaque-1"


def test_ecs_refusing_the_task_is_a_clear_error() -> None:
    executor, ecs, _ = executor_with_stubs()
    ecs.add_response("describe_task_definition", {"taskDefinition": {
        "taskDefinitionArn": DEF_ARN}}, None)
    ecs.add_response("run_task", {"tasks": [], "failures": [
        {"arn": "x", "reason": "MISSING", "detail": "no such capacity provider"}]}, None)
    with ecs:
        result = executor.run(spec(), ListLog(), threading.Event(), StateBox())
    assert result.exit_code is None and "MISSING" in (result.error or "")


def test_reattach_to_a_task_ecs_forgot_keeps_its_logs_and_reports_the_work_gone() -> None:
    executor, ecs, logs = executor_with_stubs()
    ecs.add_response("describe_tasks", {"tasks": [], "failures": [
        {"arn": ARN, "reason": "MISSING"}]}, None)
    logs.add_response("get_log_events", {"events": [{"timestamp": 1, "message": "late",
                                                     "ingestionTime": 1}],
                                         "nextForwardToken": "f/2", "nextBackwardToken": "b"},
                      {"logGroupName": "/g", "logStreamName": "run3/stage/0f1e2d3c",
                       "startFromHead": True, "nextToken": "f/1"})
    logs.add_response("get_log_events", {"events": [], "nextForwardToken": "f/2",
                                         "nextBackwardToken": "b"}, None)
    log = ListLog()
    state = {"task_arn": ARN, "log_stream": "run3/stage/0f1e2d3c", "next_token": "f/1"}
    with ecs, logs:
        assert executor.reattach(spec(run_id=3), log, threading.Event(), state, None) is None
    assert log.stdout() == ["late"]


def test_follower_reads_nothing_until_the_stream_exists() -> None:
    _, _, logs = executor_with_stubs()
    follower = LogFollower(logs.client, "/g", "run1/stage/abc")
    logs.add_client_error("get_log_events", "ResourceNotFoundException")
    log = ListLog()
    with logs:
        assert follower.poll(log) is False
    assert follower.token is None and log.entries == []


def test_follower_keeps_paging_until_the_token_repeats() -> None:
    _, _, logs = executor_with_stubs()
    follower = LogFollower(logs.client, "/g", "s")
    ts = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    for n in range(3):
        logs.add_response("get_log_events", {"events": [
            {"timestamp": ts + n, "message": f"page {n}", "ingestionTime": 1}],
            "nextForwardToken": f"f/{n}", "nextBackwardToken": "b"}, None)
    logs.add_response("get_log_events", {"events": [], "nextForwardToken": "f/2",
                                         "nextBackwardToken": "b"}, None)
    log = ListLog()
    with logs:
        assert follower.poll(log) is True
    assert log.stdout() == ["page 0", "page 1", "page 2"] and follower.token == "f/2"
