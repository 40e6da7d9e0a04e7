"""Containers made ahead of time serve exactly the stage they were made for."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from agent.executors.base import StageSpec
from agent.executors.docker_prepared import ReadyContainers, Reaper


def spec(run_id: int = 7, command: str = "make test") -> StageSpec:
    return StageSpec(run_id=run_id, stage="Unit Test", service="svc", image="img",
                     command=command, workspace=Path("/ws"),
                     container_name=f"seamless-run{run_id}-unit-test")


class Engine:
    """Stands in for dockerd: numbered containers, and a record of removals."""

    def __init__(self) -> None:
        self.made = 0
        self.removed: list[str] = []
        self.lock = threading.Lock()

    def create(self, spec: StageSpec) -> str:
        with self.lock:
            self.made += 1
            return f"run{spec.run_id}-c{self.made}"

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)


def test_the_ready_container_is_used_for_the_same_spec_and_dropped_for_another() -> None:
    engine = Engine()
    ready = ReadyContainers(engine.create, engine.remove)
    ready.prepare(spec())
    assert ready.take(spec()) == "run7-c1"
    assert ready.take(spec()) is None, "used once"
    ready.prepare(spec())
    assert ready.take(spec(command="make test-all")) is None  # the config changed meanwhile
    assert engine.removed == ["run7-c2"]


def test_a_run_that_ends_early_leaves_nothing_made_for_it() -> None:
    engine = Engine()
    reaper = Reaper(engine.remove)
    ready = ReadyContainers(engine.create, reaper.submit)
    ready.prepare(spec(run_id=7))
    ready.prepare(spec(run_id=8))
    ready.discard_run(7)
    assert reaper.drain(5)
    assert [c.split("-")[0] for c in engine.removed] == ["run7"]
    assert (ready.take(spec(run_id=8)) or "").startswith("run8-")


def test_a_failed_create_ahead_is_left_to_the_stage_to_report() -> None:
    def refuse(spec: StageSpec) -> str:
        raise RuntimeError("no such image")

    ready = ReadyContainers(refuse, lambda container_id: None)
    ready.prepare(spec())
    assert ready.take(replace(spec())) is None
