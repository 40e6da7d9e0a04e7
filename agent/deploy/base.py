"""The deploy-target seam: put an image live in one environment of one service.

A target streams progress into the stage log, health-checks the new version,
and returns what it did. The engine records the deployment row around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agent.logs import StageLog
from store.models import CanaryMeasurement, CommitSummary, Pipeline, Service

if TYPE_CHECKING:
    import threading

    from agent.bus import Bus
    from agent.deploy.canary import CanaryControl
    from store.models import Deployment
    from store.store import Store


class DeployError(RuntimeError):
    """The deploy did not go live; the message is shown in the stage log and the API."""


@dataclass
class DeployRequest:
    service: Service
    pipeline: Pipeline
    environment: str  # "staging" | "production"
    image: str  # full reference, tagged with the commit sha
    sha: str
    previous_state: dict[str, Any] | None = None  # target_state of the current deployment
    control: CanaryControl | None = None  # promote/abort of a canary from the API
    record: Callable[[CanaryMeasurement], None] | None = None  # stores canary figures
    # A rollback to an image that served before: switched at once, never through canary
    # steps (a rollback is the way out of trouble, it must not bake for minutes).
    rollback: bool = False


@dataclass
class DeployOutcome:
    healthy: bool
    health_detail: str  # e.g. "GET /health → 200 in 0.4 s"
    address: str | None = None  # where the environment serves, e.g. http://127.0.0.1:18001
    state: dict[str, Any] = field(default_factory=dict)  # stored as the deployment's target_state


class CommitHistory(Protocol):
    """The commits behind a deploy (a service's git mirror): for DORA lead times and
    the approval's list of what goes to production."""

    def commit_info(self, service: Service, sha: str) -> CommitSummary | None: ...

    def commits_between(self, service: Service, old_sha: str | None, new_sha: str,
                        limit: int = 50) -> list[CommitSummary]: ...


class DeployTarget(Protocol):
    kind: str

    def deploy(self, request: DeployRequest, log: StageLog) -> DeployOutcome:
        """Blocking. Raise DeployError with a clear reason when the new version is not live;
        the old version must still be serving then."""

    def current(self, service: Service, environment: str) -> dict[str, Any] | None:
        """What the target says is live now (image, address…), or None."""

    def image_exists(self, image: str) -> bool:
        """Whether an earlier image can still be deployed (rollback picker)."""


class DeployerCore(Protocol):
    """What the Deployer's parts (agent/deploy/history.py, restarts.py) use of it."""

    store: Store
    bus: Bus
    workspaces: CommitHistory | None
    unserved: dict[tuple[str, str], str]

    def target_for(self, service: Service, pipeline: Pipeline,
                   environment: str) -> DeployTarget | None: ...

    def lock(self, service: Service, environment: str) -> threading.Lock: ...

    def _publish(self, deployment: Deployment) -> None: ...
