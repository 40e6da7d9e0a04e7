"""LocalExecutor: subprocess stages on the host."""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil

from agent.engine.executors import ExecutorSet
from agent.executors.base import StageSpec
from agent.executors.local import LocalExecutor
from tests.executors.conftest import stored
from tests.harness import agent_config, wait_until
from tests.harness.fakes import FakeExecutor


def no_state(state: dict[str, Any] | None) -> None:
    """The StateSaver of a stage nobody re-attaches to."""


def spec_for(workspace, command: str, run_id: int, **kw) -> StageSpec:
    return StageSpec(run_id=run_id, stage="Unit Test", service="svc", image="unused",
                     command=command, workspace=workspace, **kw)


def test_local_stage_runs_in_the_workspace_and_says_it_is_not_isolated(
        workspace, writer, store) -> None:
    (workspace / "marker").write_text("here\n")
    log = writer.stage_log(1, "Unit Test", [])
    result = LocalExecutor().run(spec_for(workspace, "cat marker; echo bad >&2; exit 5", 1,
                                          env={"X": "1"}), log, threading.Event(), no_state)
    log.flush()
    assert result.exit_code == 5
    lines = stored(store, 1)
    assert lines[0][0] == "system" and "directly on this host" in lines[0][1]
    assert ("stdout", "here") in lines and ("stderr", "bad") in lines


def test_cancel_kills_the_whole_process_group(workspace, writer, tmp_path) -> None:
    pidfile = tmp_path / "child.pid"
    log = writer.stage_log(2, "Unit Test", [])
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    result = LocalExecutor().run(spec_for(workspace, f"sleep 60 & echo $! > {pidfile}; wait",
                                          2), log, cancel, no_state)
    assert result.cancelled
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    time.sleep(0.2)
    try:  # a killed orphan may linger as a zombie until init reaps it: that is dead too
        alive = psutil.Process(child).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    assert not alive, "the background child must die with its group"


def test_timeout_kills_the_command(workspace, writer) -> None:
    log = writer.stage_log(3, "Unit Test", [])
    result = LocalExecutor().run(spec_for(workspace, "sleep 30", 3, timeout_s=0.5), log,
                                 threading.Event(), no_state)
    assert result.timed_out and "timed out after 0.5 s" in (result.error or "")
    assert LocalExecutor().reattach(spec_for(workspace, "true", 3), log, threading.Event(),
                                    None, None) is None


def test_agent_shutdown_ends_a_streaming_local_stage_before_the_store_closes(
        workspace, writer, store, tmp_path, monkeypatch) -> None:
    """A local stage cannot be re-attached: the agent's shutdown (ExecutorSet.drain, before
    the log writer stops and the store closes) kills it and waits until its output is read,
    so no pump thread writes to a closed database afterwards."""
    crashes: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(args.exc_value))
    # Docker stages go to the harness's fake: this test is about the local executor only.
    executors = ExecutorSet(agent_config(tmp_path / "agent"), docker=FakeExecutor())
    pidfile = tmp_path / "stage.pid"
    log = writer.stage_log(4, "Unit Test", [])
    results: list[Any] = []
    command = f"echo $$ > {pidfile}; while true; do echo streaming a line; sleep 0.001; done"
    stage = threading.Thread(target=lambda: results.append(executors.local.run(
        spec_for(workspace, command, 4), log, threading.Event(), no_state)))
    stage.start()
    wait_until(lambda: pidfile.exists() and stored(store, 4)[1:], timeout=30,
               what="the stage streaming")
    executors.drain(timeout=10)
    assert results and "agent is stopping" in (results[0].error or "")
    writer.stop()
    store.close()
    time.sleep(0.5)  # a pump still running would write now, into the closed store
    assert crashes == []
    assert not psutil.pid_exists(int(pidfile.read_text())) or psutil.Process(
        int(pidfile.read_text())).status() == psutil.STATUS_ZOMBIE
    stage.join(5)
