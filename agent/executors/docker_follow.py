"""A stage container's output into its log until the container exits, the stage is
cancelled or times out (cancel and timeout kill the container at once); then its exit
code. The wait for the reader after the container exits is bounded."""

from __future__ import annotations

import logging
import threading
import time

import docker

from agent.executors.base import StageResult, StageSpec
from agent.executors.docker_logs import ContainerLogStream, LogPump, open_log_stream
from agent.executors.engine_errors import EngineErrors, EngineGone, engine_error
from agent.logs import StageLog

log = logging.getLogger(__name__)

EXIT_GRACE_S = 5.0  # how long a log stream may lag behind its exited container
POLL_S = 0.2


def _seconds(value: float) -> str:
    return f"{value:g} s"


class ContainerOutput:
    def __init__(self, api: docker.APIClient) -> None:
        self.api = api

    def follow(self, container_id: str, spec: StageSpec, log: StageLog,
               cancel: threading.Event, stream: ContainerLogStream, timestamps: bool = True,
               deadline: float | None = None) -> StageResult:
        pump = LogPump(stream, log, timestamps)
        pump.start()
        deadline = deadline or time.monotonic() + spec.timeout_s
        exited_at: float | None = None
        hung = False
        next_check = time.monotonic() + 1.0
        try:
            while pump.is_alive():
                if cancel.is_set():
                    self.kill(container_id)
                    log.system("cancelled: container killed")
                    return StageResult(exit_code=None, cancelled=True, error="cancelled")
                if time.monotonic() > deadline:
                    self.kill(container_id)
                    message = f"timed out after {_seconds(spec.timeout_s)}: container killed"
                    log.system(message)
                    return StageResult(exit_code=None, timed_out=True, error=message)
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 1.0
                    if exited_at is None and not self.running(container_id):
                        exited_at = now
                    if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                        hung = True  # the stream hangs after exit: finish from a fresh read
                        break
                pump.join(POLL_S)
        finally:
            if pump.is_alive():
                pump.close()
            pump.join(2.0)
        if pump.error is not None and not self.exists(container_id):
            raise EngineGone(engine_error(pump.error))
        # A followed log may end before its last lines once the container stops (the
        # engine's follower gives up early): read it once more, whole. An attach ends
        # only after the container's pipes are drained.
        if hung or pump.error is not None or timestamps:
            self.read_all(container_id, log)
        return self.exit_result(container_id, log)

    def read_all(self, container_id: str, log: StageLog) -> None:
        """An exited container's whole log, minus the lines already stored."""
        log.rewind()
        LogPump(open_log_stream(self.api, container_id, follow=False), log).run()

    def exit_result(self, container_id: str, log: StageLog) -> StageResult:
        status = self.api.wait(container_id, timeout=30)
        code = int(status.get("StatusCode", -1))
        error = (status.get("Error") or {}).get("Message") if status.get("Error") else None
        if code != 0:
            log.system(f"exit code {code}")
        return StageResult(exit_code=code, error=error or None)

    def running(self, container_id: str) -> bool:
        try:
            return bool(self.api.inspect_container(container_id)["State"].get("Running"))
        except docker.errors.NotFound:
            return False

    def exists(self, container_id: str) -> bool:
        try:
            self.api.inspect_container(container_id)
            return True
        except docker.errors.NotFound:
            return False
        except EngineErrors:
            return False

    def kill(self, container_id: str) -> None:
        try:
            self.api.kill(container_id)
        except docker.errors.APIError as exc:  # already exited: nothing to kill
            log.debug("kill %s: %s", container_id[:12], exc)
