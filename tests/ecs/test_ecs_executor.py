"""The ECS executor against moto over HTTP: task definitions, logs, cancel, recovery.

moto runs no container: tests put the task's log lines into its CloudWatch stream
themselves and decide when the task stops (see conftest). Exit codes other than 0 and
ECS's stop reasons are covered with recorded responses in test_ecs_results.py.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from agent.executors.ecs import STOP_REASON_CANCEL, STOP_REASON_CLEANUP
from agent.executors.ecs_taskdef import WORKSPACES_MOUNT, log_stream_name
from agent.logs.writer import LogWriter
from store.models import LogStream
from store.store import Store
from tests.ecs.conftest import Moto, StateBox, in_thread, put_lines, spec
from tests.harness import wait_until


def texts(store: Store, run_id: int, stage: str, stream: LogStream | None = None) -> list[str]:
    lines = store.log_page(run_id, stage=stage, limit=100_000).lines
    return [ln.text for ln in lines if stream is None or ln.stream == stream]


def running_task(saved: StateBox) -> dict[str, Any]:
    return wait_until(lambda: saved.last, interval=0.02, what="the task ARN to be saved")


def test_stage_runs_as_a_task_with_image_command_efs_workspace_and_awslogs(
        moto: Moto, cluster: str, make_executor, writer: LogWriter, store: Store) -> None:
    executor = make_executor()
    saved = StateBox()
    stage = spec(run_id=41)
    thread, out = in_thread(lambda: executor.run(stage, writer.stage_log(41, stage.stage, []),
                                                 threading.Event(), saved))
    state = running_task(saved)
    ecs = moto.client("ecs")
    task = ecs.describe_tasks(cluster=cluster, tasks=[state["task_arn"]],
                              include=["TAGS"])["tasks"][0]
    moto.set_task_transition("immediate")
    thread.join(10)

    assert out["result"].ok and out["result"].exit_code == 0
    assert task["startedBy"] == "seamless-run41"
    assert {"key": "seamless:stage", "value": "Unit Test"} in task["tags"]
    assert task["launchType"] == "EC2"
    env = {e["name"]: e["value"]
           for e in task["overrides"]["containerOverrides"][0]["environment"]}
    assert env["FOO"] == "bar"
    assert env["SEAMLESS_WORKSPACE"] == f"{WORKSPACES_MOUNT}/payments/abc1234"

    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])[
        "taskDefinition"]
    assert definition["family"].startswith("seamless-stage-")
    container = definition["containerDefinitions"][0]
    assert container["image"] == "seamless/busybox:latest"
    assert container["entryPoint"] == ["sh", "-c"]
    assert container["command"] == ["sh test.sh"]
    assert container["workingDirectory"] == f"{WORKSPACES_MOUNT}/payments/abc1234"
    assert container["environment"] == []  # values (secrets too) travel as overrides only
    assert container["mountPoints"][0]["containerPath"] == WORKSPACES_MOUNT
    assert definition["volumes"][0]["efsVolumeConfiguration"] == {
        "fileSystemId": "fs-0123abcd", "rootDirectory": "/", "transitEncryption": "ENABLED",
        "authorizationConfig": {"accessPointId": "fsap-0123abcd", "iam": "DISABLED"}}
    assert container["logConfiguration"] == {"logDriver": "awslogs", "options": {
        "awslogs-group": f"/seamless/{cluster}", "awslogs-region": "us-east-1",
        "awslogs-stream-prefix": "run41"}}
    assert state["log_stream"] == log_stream_name(41, state["task_arn"])
    assert state["log_stream"].startswith("run41/stage/")


def test_a_second_run_of_the_same_stage_reuses_its_task_definition(
        moto: Moto, make_executor, writer: LogWriter) -> None:
    moto.set_task_transition("immediate")
    arns = []
    for executor in (make_executor(), make_executor()):  # the second one: a restarted agent
        saved = StateBox()
        executor.run(spec(run_id=7), writer.stage_log(7, "Unit Test", []), threading.Event(),
                     saved)
        arns.append(saved.states[0]["task_definition_arn"])
    assert arns[0] == arns[1] and arns[0].endswith(":1")


def test_cloudwatch_lines_are_stored_in_order_without_duplicates(
        moto: Moto, ecs_config, make_executor, writer: LogWriter, store: Store) -> None:
    logs = moto.client("logs")
    executor = make_executor()
    saved = StateBox()
    thread, out = in_thread(lambda: executor.run(spec(run_id=5), writer.stage_log(
        5, "Unit Test", []), threading.Event(), saved))
    stream = running_task(saved)["log_stream"]

    first = [f"compile {i}" for i in range(300)]
    put_lines(logs, ecs_config.log_group, stream, first)
    wait_until(lambda: saved.last["next_token"], what="the first lines to be read")
    second = [f"test {i} ok" for i in range(2500)] + ["multi\nline event"]
    put_lines(logs, ecs_config.log_group, stream, second)
    wait_until(lambda: len(texts(store, 5, "Unit Test", LogStream.stdout)) >= 2802,
             what="all lines to be stored")
    moto.set_task_transition("immediate")
    thread.join(10)

    assert out["result"].exit_code == 0
    assert texts(store, 5, "Unit Test", LogStream.stdout) == first + second[:-1] + [
        "multi", "line event"]


def test_cancel_stops_the_task_with_a_reason(
        moto: Moto, cluster: str, make_executor, writer: LogWriter, store: Store) -> None:
    executor = make_executor()
    saved, cancel = StateBox(), threading.Event()
    log = writer.stage_log(9, "Unit Test", [])
    thread, out = in_thread(lambda: executor.run(spec(run_id=9), log, cancel, saved))
    arn = running_task(saved)["task_arn"]
    cancel.set()
    thread.join(5)
    log.flush()  # as the runner does after every stage: its lines are stored

    assert out["result"].cancelled and not out["result"].ok
    task = moto.client("ecs").describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    assert task["lastStatus"] == "STOPPED"
    assert task["stoppedReason"] == STOP_REASON_CANCEL
    assert any("stopped the ECS task" in t for t in texts(store, 9, "Unit Test",
                                                           LogStream.system))


def test_timeout_stops_the_task(moto: Moto, cluster: str, make_executor,
                                writer: LogWriter) -> None:
    saved = StateBox()
    result = make_executor().run(spec(run_id=10, timeout_s=0.3),
                                 writer.stage_log(10, "Unit Test", []), threading.Event(), saved)
    assert result.timed_out and "timed out after 0.3 s" in (result.error or "")
    task = moto.client("ecs").describe_tasks(cluster=cluster,
                                             tasks=[saved.last["task_arn"]])["tasks"][0]
    assert task["lastStatus"] == "STOPPED" and "timed out" in task["stoppedReason"]


class AgentDied(Exception):
    """Raised from the state saver: the agent process ends mid-stage."""


def test_restart_reattaches_from_saved_state_without_duplicate_lines(
        moto: Moto, ecs_config, make_executor, writer: LogWriter, store: Store) -> None:
    logs = moto.client("logs")
    saved: list[dict[str, Any]] = []

    def save_then_die(state: dict[str, Any] | None) -> None:
        saved.append(dict(state or {}))
        if state and state["next_token"]:
            raise AgentDied  # the token of the first lines is stored, then the agent dies

    stage_log = writer.stage_log(11, "Unit Test", [])
    thread, out = in_thread(lambda: make_executor().run(spec(run_id=11), stage_log,
                                                        threading.Event(), save_then_die))
    stream = wait_until(lambda: saved and saved[-1]["log_stream"], what="task started")
    put_lines(logs, ecs_config.log_group, stream, ["before 1", "before 2"])
    thread.join(10)
    assert isinstance(out.get("error"), AgentDied)
    put_lines(logs, ecs_config.log_group, stream, ["while the agent was down"])

    fresh = make_executor()  # a new agent process
    later = StateBox()
    thread, out = in_thread(lambda: fresh.reattach(
        spec(run_id=11), writer.stage_log(11, "Unit Test", []), threading.Event(),
        saved[-1], None, later))
    wait_until(lambda: later.last, what="the re-attached stage to read on")
    put_lines(logs, ecs_config.log_group, stream, ["after"])
    wait_until(lambda: "after" in texts(store, 11, "Unit Test"), what="the last line")
    moto.set_task_transition("immediate")
    thread.join(10)

    assert out["result"].exit_code == 0
    assert texts(store, 11, "Unit Test", LogStream.stdout) == [
        "before 1", "before 2", "while the agent was down", "after"]


def test_reattach_without_saved_state_finds_the_task_by_started_by_and_tag(
        moto: Moto, ecs_config, make_executor, writer: LogWriter, store: Store) -> None:
    executor = make_executor()
    for stage in ("Code Quality", "Unit Test"):  # two tasks of the same run
        saved = StateBox()
        in_thread(functools.partial(executor.run, spec(run_id=12, stage=stage),
                                    writer.stage_log(12, stage, []), threading.Event(), saved))
        state = running_task(saved)
    put_lines(moto.client("logs"), ecs_config.log_group, state["log_stream"], ["unit line"])

    thread, out = in_thread(lambda: make_executor().reattach(
        spec(run_id=12), writer.stage_log(12, "Unit Test", []), threading.Event(), None, None))
    wait_until(lambda: "unit line" in texts(store, 12, "Unit Test"), what="the unit test line")
    moto.set_task_transition("immediate")
    thread.join(10)
    assert out["result"].exit_code == 0
    assert texts(store, 12, "Code Quality", LogStream.stdout) == []


def test_reattach_returns_none_when_the_run_has_no_task(make_executor,
                                                         writer: LogWriter) -> None:
    assert make_executor().reattach(spec(run_id=404), writer.stage_log(404, "Unit Test", []),
                                    threading.Event(), None, None) is None


def test_cleanup_stops_only_tasks_of_runs_not_kept(moto: Moto, cluster: str, make_executor,
                                                  writer: LogWriter) -> None:
    executor = make_executor()
    arns = {}
    for run_id in (21, 22):
        saved = StateBox()
        in_thread(functools.partial(executor.run, spec(run_id=run_id), writer.stage_log(
            run_id, "Unit Test", []), threading.Event(), saved))
        arns[run_id] = running_task(saved)["task_arn"]

    removed = executor.cleanup(keep_run_ids={22})

    assert removed == [arns[21].rsplit("/", 1)[-1]]
    ecs = moto.client("ecs")
    stopped = ecs.describe_tasks(cluster=cluster, tasks=[arns[21]])["tasks"][0]
    assert stopped["stoppedReason"] == STOP_REASON_CLEANUP
    ecs.stop_task(cluster=cluster, task=arns[22], reason="test over")


def test_parallel_bound_is_the_clusters_not_the_hosts(make_executor) -> None:
    assert make_executor().max_parallel == 7  # config.max_parallel_tasks


def test_a_full_cluster_makes_the_stage_wait_then_cancel_cleanly(
        ecs_config, make_executor, writer: LogWriter, store: Store) -> None:
    big = ecs_config.model_copy(update={"memory_mib": 100_000})  # never fits the instance
    from agent.executors.ecs import EcsExecutor
    from tests.ecs.conftest import session
    executor = EcsExecutor(big, session, poll_interval_s=0.05, capacity_retry_s=0.05,
                           settle_s=0)
    cancel = threading.Event()
    thread, out = in_thread(lambda: executor.run(spec(run_id=30), writer.stage_log(
        30, "Unit Test", []), cancel, StateBox()))
    wait_until(lambda: any("waiting for room" in t for t in texts(store, 30, "Unit Test")),
             what="the capacity message")
    cancel.set()
    thread.join(5)
    assert out["result"].cancelled
