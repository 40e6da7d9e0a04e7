"""DockerExecutor against the real engine: logs, exit codes, cancel, timeout, re-attach."""

from __future__ import annotations

import re
import threading
import time
import uuid

import docker
import pytest

from agent.executors.docker import DockerExecutor
from agent.executors.docker_logs import LogPump, open_log_stream
from agent.logs.logger import LoggingStageLog
from tests.executors.conftest import stored


@pytest.fixture
def executor(docker_client: docker.DockerClient) -> DockerExecutor:
    return DockerExecutor(docker_client)


def gone(client: docker.DockerClient, name: str, within_s: float = 10.0) -> bool:
    """Removed, now or within a few seconds (finished containers go in the background)."""
    deadline = time.monotonic() + within_s
    while client.api.containers(all=True, filters={"name": f"^/{name}$"}):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_stage_exit_code_and_both_streams_in_order(executor, make_spec, writer, store,
                                                   docker_client) -> None:
    spec = make_spec("i=0; while [ $i -lt 300 ]; do echo out$i; i=$((i+1)); done;"
                     " echo oops >&2; pwd; exit 3")
    saved: list[dict] = []
    log = writer.stage_log(spec.run_id, spec.stage, [])
    result = executor.run(spec, log, threading.Event(), saved.append)
    log.flush()
    assert result.exit_code == 3 and not result.ok
    lines = stored(store, spec.run_id)
    stdout = [t for s, t in lines if s == "stdout"]
    assert stdout == [f"out{i}" for i in range(300)] + ["/workspace"]
    assert ("stderr", "oops") in lines
    assert lines[-1] == ("system", "exit code 3")
    assert saved and saved[0]["container_id"]
    assert gone(docker_client, spec.container_name)


def test_secrets_in_env_are_masked_in_output(executor, make_spec, writer, store) -> None:
    spec = make_spec('echo "token is $TOKEN"; printf %s "$TOKEN" | base64',
                     env={"TOKEN": "tok-123456789"})
    log = writer.stage_log(spec.run_id, spec.stage, ["tok-123456789"])
    assert executor.run(spec, log, threading.Event(), lambda s: None).ok
    log.flush()
    texts = [t for _, t in stored(store, spec.run_id)]
    assert texts[0] == "token is ********"
    assert "123456789" not in "".join(texts) and "dG9rLTEyMzQ1Njc4OQ" not in "".join(texts)


def test_cancel_kills_the_container_promptly(executor, make_spec, writer,
                                             docker_client) -> None:
    spec = make_spec("echo started; sleep 60")
    log = writer.stage_log(spec.run_id, spec.stage, [])
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    result = executor.run(spec, log, cancel, lambda s: None)
    assert result.cancelled and not result.ok
    assert time.monotonic() - started < 15  # far below the 60 s the command wanted
    assert gone(docker_client, spec.container_name)


def test_timeout_kills_the_container_with_a_clear_error(executor, make_spec, writer,
                                                         store, docker_client) -> None:
    spec = make_spec("sleep 60", timeout_s=1)
    log = writer.stage_log(spec.run_id, spec.stage, [])
    result = executor.run(spec, log, threading.Event(), lambda s: None)
    log.flush()
    assert result.timed_out
    assert result.error == "timed out after 1 s: container killed"
    assert ("system", result.error) in stored(store, spec.run_id)
    assert gone(docker_client, spec.container_name)


def test_a_stage_that_closes_its_output_and_goes_on_is_still_waited_for_and_timed(
        executor, make_spec, writer, store) -> None:
    # e.g. a script that sends the rest of its output to a file: `exec >test.log 2>&1`
    quiet = make_spec("echo starting; exec >/dev/null 2>&1; sleep 1; exit 5")
    log = writer.stage_log(quiet.run_id, quiet.stage, [])
    assert executor.run(quiet, log, threading.Event(), lambda s: None).exit_code == 5
    hangs = make_spec("exec >/dev/null 2>&1; sleep 60", timeout_s=2)
    log = writer.stage_log(hangs.run_id, hangs.stage, [])
    started = time.monotonic()
    assert executor.run(hangs, log, threading.Event(), lambda s: None).timed_out
    assert time.monotonic() - started < 10


def test_missing_image_is_reported_clearly(executor, make_spec, writer, store) -> None:
    spec = make_spec("true", image="seamless/no-such-image:abc")
    log = writer.stage_log(spec.run_id, spec.stage, [])
    result = executor.run(spec, log, threading.Event(), lambda s: None)
    log.flush()
    expected = ("image 'seamless/no-such-image:abc' is not on this engine and cannot be "
                "pulled here: build it or load it")
    assert result.error == expected
    assert ("system", expected) in stored(store, spec.run_id)


def test_reattach_to_a_running_container_continues_without_gap_or_duplicate(
        executor, make_spec, writer, store, docker_client) -> None:
    spec = make_spec("i=0; while [ $i -lt 60 ]; do echo line$i; i=$((i+1)); sleep 0.05;"
                     " done; exit 4")
    first = writer.stage_log(spec.run_id, spec.stage, [])
    container_id = executor._create(spec, first)
    docker_client.api.start(container_id)
    # The "old agent": stored what it had read so far (and half a line), then died.
    time.sleep(1.0)
    pump = LogPump(open_log_stream(docker_client.api, container_id, follow=False), first)
    pump.run()
    first.write_chunk(b"line-half-rea")  # never stored: it had no newline yet
    first.writer.wait_committed()
    assert 0 < pump.lines < 60, "the container should still be printing"
    # The new agent re-reads the log and skips what is stored.
    second = writer.stage_log(spec.run_id, spec.stage, [])
    result = executor.reattach(spec, second, threading.Event(),
                               {"container_id": container_id}, None)
    second.flush()
    assert result is not None and result.exit_code == 4
    lines = [t for s, t in stored(store, spec.run_id) if s == "stdout"]
    assert lines == [f"line{i}" for i in range(60)]
    assert gone(docker_client, spec.container_name)


def run_to_the_end(executor, spec, log, docker_client) -> str:
    """A stage container that ran and exited while no agent was watching."""
    container_id = executor._create(spec, log)
    docker_client.api.start(container_id)
    docker_client.api.wait(container_id, timeout=30)
    return container_id


def test_reattach_to_a_finished_container_reads_the_rest_and_its_exit_code(
        executor, make_spec, writer, store, docker_client) -> None:
    spec = make_spec("echo one; echo two; exit 2")
    log = writer.stage_log(spec.run_id, spec.stage, [])
    run_to_the_end(executor, spec, log, docker_client)
    result = executor.reattach(spec, log, threading.Event(), None, None)  # found by name
    log.flush()
    assert result is not None and result.exit_code == 2
    assert [t for s, t in stored(store, spec.run_id) if s == "stdout"] == ["one", "two"]


def test_a_finished_container_read_again_gives_no_line_twice(
        executor, make_spec, writer, store, docker_client) -> None:
    spec = make_spec("echo one; echo err >&2; echo two; exit 0")
    log = writer.stage_log(spec.run_id, spec.stage, [])
    container_id = run_to_the_end(executor, spec, log, docker_client)
    log.write_chunk(b"one\n")  # what the agent stored before it died
    result = executor.reattach(spec, log, threading.Event(), {"container_id": container_id},
                               None)
    log.flush()
    assert result is not None and result.ok
    lines = stored(store, spec.run_id)  # (the engine keeps no order across streams)
    assert [t for s, t in lines if s == "stdout"] == ["one", "two"]
    assert [t for s, t in lines if s == "stderr"] == ["err"]


def test_a_big_output_arrives_whole_and_in_order(executor, make_spec, writer, store) -> None:
    spec = make_spec("i=0; while [ $i -lt 20000 ]; do echo \"line $i\"; i=$((i+1)); done;"
                     " printf 'no newline at the end'")
    log = writer.stage_log(spec.run_id, spec.stage, [])
    assert executor.run(spec, log, threading.Event(), lambda s: None).ok
    log.flush()
    assert [t for s, t in stored(store, spec.run_id) if s == "stdout"] == [
        f"line {i}" for i in range(20000)] + ["no newline at the end"]


def test_a_leftover_container_of_the_same_name_is_replaced(
        executor, make_spec, writer, store, docker_client) -> None:
    spec = make_spec("echo fresh")
    log = writer.stage_log(spec.run_id, spec.stage, [])
    leftover = executor._create(spec, log)  # an earlier attempt that never ran
    result = executor.run(spec, log, threading.Event(), lambda s: None)
    log.flush()
    assert result.ok
    assert [t for s, t in stored(store, spec.run_id) if s == "stdout"] == ["fresh"]
    assert not docker_client.api.containers(all=True, filters={"id": leftover})


def test_reattach_to_a_vanished_container_returns_none(executor, make_spec, writer) -> None:
    spec = make_spec("true")
    log = writer.stage_log(spec.run_id, spec.stage, [])
    assert executor.reattach(spec, log, threading.Event(), {"container_id": "0" * 64},
                             None) is None


def test_cleanup_removes_only_containers_of_runs_not_kept(make_spec, docker_client) -> None:
    # Other tests share the engine: scope this executor to a label of its own, and keep
    # every compose project that exists right now.
    scope = f"test-{uuid.uuid4().hex[:8]}"
    executor = DockerExecutor(docker_client, managed_label=f"io.seamless.managed={scope}")
    keep, drop = (make_spec("sleep 30"), make_spec("sleep 30"))
    for spec in (keep, drop):
        spec.labels["io.seamless.managed"] = scope
        docker_client.api.start(executor._create(spec, LoggingStageLog("test")))
    others = {int(m.group(1)) for c in docker_client.api.containers(all=True)
              if (m := re.match(r"^seamless-run(\d+)$",
                                c["Labels"].get("com.docker.compose.project", "")))}
    try:
        removed = executor.cleanup({keep.run_id} | others)
        assert drop.container_name in removed
        assert keep.container_name not in removed
        assert gone(docker_client, drop.container_name)
        assert not gone(docker_client, keep.container_name, within_s=0)
    finally:
        executor._remove_by_name(keep.container_name)
