"""Fakes for the parts of an agent that reach outside it (Docker, git, deploy targets),
so the real run engine is tested without them, in milliseconds.

A stage's command says what the fake does: `exit=1 lines=3 duration=0.5` prints three
lines, takes half a second (cancellable, bounded by the stage timeout) and exits 1. An
empty word list is a stage that prints nothing, takes no time and succeeds.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.deploy.base import DeployOutcome, DeployRequest, DeployTarget
from agent.engine.workspace import Workspaces
from agent.executors.base import BuildSpec, IntegrationSpec, StageSpec, StateSaver
from agent.logs import Frame, StageLog, write_frames_by_chunk
from agent.logs.timestamps import iso_ts
from agent.stage_result import StageResult
from store.models import (
    STAGE_BUILD,
    CommitSummary,
    DeployTargetConfig,
    LogStream,
    NoTargetConfig,
    Service,
)


class ListLog:
    """A StageLog that keeps lines in memory, for tests of one executor or workspace."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, LogStream]] = []

    @property
    def lines(self) -> list[str]:
        return [text for text, _ in self.entries]

    def stdout(self) -> list[str]:
        return [text for text, stream in self.entries if stream is LogStream.stdout]

    def write(self, text: str, stream: LogStream = LogStream.stdout,
              ts: datetime | None = None) -> None:
        self.entries.append((text, stream))

    def write_chunk(self, data: bytes, stream: LogStream = LogStream.stdout,
                    ts: datetime | None = None) -> None:
        self.write(data.decode(), stream, ts)

    def write_frames(self, frames: Iterable[Frame]) -> None:
        write_frames_by_chunk(self, frames)

    def system(self, text: str) -> None:
        self.write(text, LogStream.system)

    def flush(self) -> None:
        pass

    def rewind(self) -> None:
        pass


@dataclass(frozen=True)
class FakeOutcome:
    exit_code: int = 0
    lines: int = 0
    duration_s: float = 0.0

    @classmethod
    def parse(cls, command: str) -> FakeOutcome:
        """`exit=N lines=N duration=S` in any order, each optional (`only=…`, the tests a
        retry selects, is taken and ignored)."""
        values: dict[str, str] = {}
        command = re.sub(r"^cd -- \S+ && ", "", command)  # a service's folder (`root`)
        for word in command.split():
            key, sep, value = word.partition("=")
            if not sep or key not in ("exit", "lines", "duration", "only"):
                raise ValueError(f"fake stage command: {word!r} is not exit=N, lines=N or "
                                 "duration=SECONDS")
            values[key] = value
        return cls(exit_code=int(values.get("exit", 0)), lines=int(values.get("lines", 0)),
                   duration_s=float(values.get("duration", 0)))


class FakeExecutor:
    """An `Executor` (and image builder, compose runner, maker of containers ahead) that
    runs nothing: each stage does what its command says (see `FakeOutcome`)."""

    name = "docker"

    def __init__(self, build: FakeOutcome | None = None) -> None:
        self.build_outcome = build or FakeOutcome()
        self.started: list[tuple[int, str]] = []  # (run id, stage), in start order
        self.built: list[str] = []  # images
        self.made_ahead: list[tuple[int, str]] = []
        self.discarded: list[int] = []
        # Called as a stage "runs", e.g. to write the JUnit reports a real test run would.
        self.on_run: Callable[[StageSpec], None] | None = None
        self._lock = threading.Lock()

    # -- Executor -----------------------------------------------------------------------
    def run(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
            save_state: StateSaver) -> StageResult:
        outcome = FakeOutcome.parse(spec.command)
        started = time.time()
        with self._lock:
            self.started.append((spec.run_id, spec.stage))
        if self.on_run is not None:
            self.on_run(spec)
        save_state({"started": started, "command": spec.command})
        return self._play(spec.stage, outcome, started, spec.timeout_s, log, cancel)

    def reattach(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
                 state: dict[str, Any] | None, since: Any,
                 save_state: StateSaver | None = None) -> StageResult | None:
        """The "container" is still there when its state was saved: it ends on time."""
        if not state or "started" not in state:
            return None
        outcome = FakeOutcome.parse(str(state.get("command", spec.command)))
        return self._play(spec.stage, outcome, float(state["started"]), spec.timeout_s, log,
                          cancel, lines=False)

    def cleanup(self, keep_run_ids: set[int]) -> list[str]:
        return []

    # -- BuildsImages, RunsComposeTests, MakesContainersAhead --------------------------------
    def build(self, spec: BuildSpec, log: StageLog, cancel: threading.Event) -> StageResult:
        with self._lock:
            self.built.append(spec.image)
        return self._play(STAGE_BUILD, self.build_outcome, time.time(), 1800.0, log, cancel)

    def integration(self, spec: IntegrationSpec, log: StageLog, cancel: threading.Event
                    ) -> StageResult:
        return self.run(spec.test, log, cancel, lambda state: None)

    def precreate(self, spec: StageSpec) -> None:
        with self._lock:
            self.made_ahead.append((spec.run_id, spec.stage))

    def discard_ready(self, run_id: int) -> None:
        with self._lock:
            self.discarded.append(run_id)

    # -- playing an outcome -----------------------------------------------------------------
    def _play(self, stage: str, outcome: FakeOutcome, started: float, timeout_s: float,
              log: StageLog, cancel: threading.Event, lines: bool = True) -> StageResult:
        if lines and outcome.lines:
            stamp = iso_ts()
            frames: list[Frame] = [("stdout", stamp, f"{stage} line {i + 1}\n".encode())
                                   for i in range(outcome.lines)]
            log.write_frames(frames)
        end = started + min(outcome.duration_s, timeout_s)
        while (left := end - time.time()) > 0:
            if cancel.wait(min(left, 0.05)):
                return StageResult(exit_code=None, cancelled=True, error="cancelled")
        if outcome.duration_s > timeout_s:
            return StageResult(exit_code=None, timed_out=True,
                               error=f"timed out after {timeout_s:g} s")
        return StageResult(exit_code=outcome.exit_code)


class FakeWorkspaces(Workspaces):
    """Checkouts without git: an empty directory per (service, sha) holding the files the
    service's config names (Dockerfile, compose file), so no stage skips for want of them."""

    def prepare(self, service: Service, sha: str, log: StageLog,
                cancel: threading.Event | None = None) -> Path:
        path = self.path_for(service, sha)
        context = path / service.build_context
        context.mkdir(parents=True, exist_ok=True)
        for name in (service.dockerfile, service.compose_file):
            if name:
                (context / name).touch()
        return path

    def commit_info(self, service: Service, sha: str) -> CommitSummary | None:
        return None

    def commits_between(self, service: Service, old_sha: str | None, new_sha: str,
                        limit: int = 50) -> list[CommitSummary]:
        return []


@dataclass
class FakeTarget:
    """A deploy target that is live at once and healthy."""

    kind: str = "fake"
    live: dict[tuple[str, str], str] = field(default_factory=dict)  # (service, env) → image

    def deploy(self, request: DeployRequest, log: StageLog) -> DeployOutcome:
        self.live[(request.service.name, request.environment)] = request.image
        log.system(f"fake target: {request.image} live in {request.environment}")
        return DeployOutcome(healthy=True, health_detail="fake: healthy at once")

    def current(self, service: Service, environment: str) -> dict[str, Any] | None:
        image = self.live.get((service.name, environment))
        return {"image": image} if image else None

    def image_exists(self, image: str) -> bool:
        return True


def fake_targets(target: FakeTarget) -> Any:
    """`Parts.make_target`: every configured environment deploys to `target`."""

    def make(config: DeployTargetConfig) -> DeployTarget | None:
        return None if isinstance(config, NoTargetConfig) else target

    return make
