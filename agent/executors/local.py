"""Stages as plain subprocesses, for hosts without a Docker engine.

The command runs with `sh -c` in the workspace, in its own process group so
cancel and timeout kill everything it started. There is no isolation: the
stage log says so in its first line. A subprocess cannot be re-attached: at
agent shutdown (`stop_all`) each running stage's group is killed and its output
read to the end before the agent closes the log store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import IO, Any

from agent.executors.base import StageResult, StageSpec, StateSaver
from agent.logs import StageLog
from store.models import LogStream

# The agent's own environment may hold tokens: a stage gets only these from it.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")
_STOPPING = "the agent is stopping (a local stage cannot outlive it)"


class LocalExecutor:
    name = "local"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._active = 0  # stages inside run()
        self._idle = threading.Condition()

    def stop_all(self, timeout: float = 10.0) -> bool:
        """Agent shutdown: kill every running stage's process group and wait (bounded) until
        each run() has read its output and returned, so nothing writes to the store after
        the agent closes it. False when a stage was still busy at the bound."""
        self._stopping.set()
        try:
            with self._idle:
                return self._idle.wait_for(lambda: self._active == 0, timeout)
        finally:
            self._stopping.clear()  # the same agent may start again

    def run(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
            save_state: StateSaver) -> StageResult:
        with self._idle:
            self._active += 1
        try:
            return self._run(spec, log, cancel, save_state)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _run(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
             save_state: StateSaver) -> StageResult:
        log.system("local executor: the command runs directly on this "
                   f"host in {spec.workspace}, not in a container (image {spec.image} unused)")
        env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
        env.update(spec.env)
        env["WORKSPACE"] = str(spec.workspace)
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", spec.command], cwd=spec.workspace,
                                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            message = f"could not start the command: {exc}"
            log.system(message)
            return StageResult(exit_code=None, error=message)
        save_state({"pid": proc.pid})
        readers = [threading.Thread(target=_pump, args=(pipe, log, stream), daemon=True)
                   for pipe, stream in ((proc.stdout, LogStream.stdout),
                                        (proc.stderr, LogStream.stderr))]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + spec.timeout_s
        result: StageResult | None = None
        while proc.poll() is None:
            if cancel.is_set():
                _kill_group(proc)
                log.system("cancelled: process group killed")
                result = StageResult(exit_code=None, cancelled=True, error="cancelled")
                break
            if self._stopping.is_set():
                _kill_group(proc)
                log.system(f"{_STOPPING}: process group killed")
                result = StageResult(exit_code=None, error=_STOPPING)
                break
            if time.monotonic() > deadline:
                _kill_group(proc)
                message = f"timed out after {spec.timeout_s:g} s: process group killed"
                log.system(message)
                result = StageResult(exit_code=None, timed_out=True, error=message)
                break
            try:
                proc.wait(0.1)
            except subprocess.TimeoutExpired:
                pass
        # A background child that escaped the group may hold the pipes open: bounded wait.
        for reader in readers:
            reader.join(2.0)
        if result is not None:
            return result
        if proc.returncode != 0:
            log.system(f"exit code {proc.returncode}")
        return StageResult(exit_code=proc.returncode)

    def reattach(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
                 state: dict[str, Any] | None, since: Any,
                 save_state: StateSaver | None = None) -> StageResult | None:
        return None  # a subprocess dies with the agent; the engine states why

    def cleanup(self, keep_run_ids: set[int]) -> list[str]:
        return []


def _pump(pipe: IO[bytes] | None, log: StageLog, stream: LogStream) -> None:
    if pipe is None:
        return
    with pipe:
        while True:
            data = pipe.read1(65536)  # type: ignore[attr-defined]
            if not data:
                return
            log.write_chunk(data, stream)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
