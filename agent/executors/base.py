"""The executor seam: how one stage command runs somewhere (docker, local, ecs).

The engine builds a `StageSpec`, hands it to an executor with a `StageLog` and a
cancel flag, and gets a `StageResult`. Executors are blocking (the engine runs
them in a worker thread) and never touch the store except through `StageLog`
and `StateSaver`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agent.logs import StageLog
from agent.stage_result import StageResult


@dataclass
class StageSpec:
    run_id: int
    stage: str
    service: str
    image: str
    command: str
    workspace: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 1800.0
    # Deterministic name and labels, so a restarted agent finds its own containers.
    container_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    mount_docker_socket: bool = False
    network: str | None = None  # e.g. the compose project's network for Integration Test
    extra_networks: tuple[str, ...] = ()  # joined too (a compose file's own networks)
    workdir: str = "/workspace"
    # Secrets the stage gets as files (/run/secrets/<NAME>) rather than env (secrets_as).
    secret_files: dict[str, str] = field(default_factory=dict)
    # A pull request's run: it may read what trusted runs kept, never keep anything.
    pull_request: bool = False


@dataclass
class BuildSpec:
    context_dir: Path
    dockerfile: str
    image: str  # full reference, tagged with the commit sha
    push: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class IntegrationSpec:
    run_id: int
    workspace: Path
    compose_file: str  # relative to the workspace
    image: str  # the image built from this commit, given to compose as SEAMLESS_IMAGE
    test: StageSpec  # the test container (or, with `test_service`, its command and timeout)
    instance: str = ""  # the agent's instance id (see run_prefix)
    # compose service -> keys an admin allowed it past its project (compose_policy)
    opt_ins: dict[str, list[str]] = field(default_factory=dict)
    # The Dockerfile Build used (absolute): the compose service built from it runs `image`.
    build_dockerfile: Path | None = None
    test_service: str | None = None  # run the test as this compose service (`compose run`)


class StateSaver(Protocol):
    def __call__(self, state: dict[str, Any] | None) -> None:
        """Persist what is needed to re-attach after a restart (e.g. container id)."""


class Executor(Protocol):
    name: str

    def run(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
            save_state: StateSaver) -> StageResult:
        """Run the command to completion, a timeout, or cancel (honoured within 2 s)."""

    def reattach(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
                 state: dict[str, Any] | None, since: datetime | None,
                 save_state: StateSaver | None = None) -> StageResult | None:
        """After a restart: follow a stage still running (logs after `since`), or
        return its result if it finished meanwhile; None if its work is gone.
        `save_state` keeps progress (e.g. a log token) for a second restart."""

    def cleanup(self, keep_run_ids: set[int]) -> list[str]:
        """Remove this executor's leftovers of runs not in `keep_run_ids`; names removed."""


@runtime_checkable
class BuildsImages(Protocol):
    """An executor that can also build a service's image (the Build stage)."""

    def build(self, spec: BuildSpec, log: StageLog, cancel: threading.Event) -> StageResult:
        """Build (and push when asked) the image; a clear error when it fails."""


@runtime_checkable
class RunsComposeTests(Protocol):
    """An executor that can run the Integration Test of a compose project."""

    def integration(self, spec: IntegrationSpec, log: StageLog, cancel: threading.Event
                    ) -> StageResult:
        """Project up, the test in a stage container on its networks (or as one of its
        services), project down."""


@runtime_checkable
class ChecksComposeAhead(Protocol):
    """An executor that can start an Integration Test's compose check early."""

    def compose_ahead(self, spec: IntegrationSpec) -> None:
        """Start it in the background (while Build runs); `integration` of the same
        spec takes its result."""


@runtime_checkable
class MakesContainersAhead(Protocol):
    """An executor that can create a stage's container before the stage starts."""

    def precreate(self, spec: StageSpec) -> None:
        """Create it in the background; `run` of the same spec takes it."""

    def discard_ready(self, run_id: int) -> None:
        """Drop what was made ahead for a run that no longer needs it."""


def stage_slug(stage: str) -> str:
    return stage.lower().replace(" ", "-")


def run_prefix(instance: str, run_id: int) -> str:
    """`seamless-<agent>-run<id>`: the agent's instance id keeps two agents sharing one
    engine (or two test sessions) from touching each other's containers."""
    return f"seamless-{instance}-run{run_id}" if instance else f"seamless-run{run_id}"


def container_name(run_id: int, stage: str, instance: str = "") -> str:
    return f"{run_prefix(instance, run_id)}-{stage_slug(stage)}"


def agent_label(instance: str) -> str:
    return f"io.seamless.agent={instance}"


def stage_labels(run_id: int, stage: str, service: str, instance: str = "") -> dict[str, str]:
    return {
        "io.seamless.managed": "1",
        "io.seamless.agent": instance,
        "io.seamless.run": str(run_id),
        "io.seamless.stage": stage,
        "io.seamless.service": service,
    }
