"""The default stages, one declaration each: what the stage runs, when it is skipped
and why, how it re-attaches after an agent restart, whether its container can be made
ahead while the stage before it runs. Which executor runs it is `executor_for`
(agent/engine/executors.py); deploys run on the environment's deploy target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.engine.stage_work import StageWork, StageWorker
from agent.engine.stages import stage_command
from agent.stage_result import StageResult
from store.models import (
    STAGE_BUILD,
    STAGE_CODE_QUALITY,
    STAGE_DEPLOY_PRODUCTION,
    STAGE_DEPLOY_STAGING,
    STAGE_INTEGRATION_TEST,
    STAGE_PREPARE,
    STAGE_UNIT_TEST,
    Service,
    StageStatus,
)

StatusOf = Callable[[str], StageStatus]  # another stage of the same run → its status now
Work = Callable[[StageWorker, StageWork], StageResult]
# After a restart: the stage's result (followed to its end, or refused), or None to run
# the stage again from the start.
Reattach = Callable[[StageWorker, StageWork, dict[str, Any] | None], StageResult | None]


@dataclass(frozen=True)
class StageDecl:
    name: str
    run: Work
    skip_reason: Callable[[Service, StatusOf], str | None]  # None: the stage has work
    reattach: Reattach
    made_ahead: Callable[[Service], bool]  # its container can be created before it starts
    environment: str | None = None  # the deploy stages' environment


# -- when a stage is skipped ------------------------------------------------------------
def _needs_command(name: str) -> Callable[[Service, StatusOf], str | None]:
    def reason(service: Service, status_of: StatusOf) -> str | None:
        if stage_command(service, name) is None:
            return f"no {name} command configured for {service.name}"
        return None

    return reason


def _needs_test(service: Service, status_of: StatusOf) -> str | None:
    if service.integration_test_service:  # the compose service is the test
        return None
    return _needs_command(STAGE_INTEGRATION_TEST)(service, status_of)


def _never(service: Service, status_of: StatusOf) -> str | None:
    return None


def _needs_dockerfile(service: Service, status_of: StatusOf) -> str | None:
    return None if service.dockerfile else f"no Dockerfile configured for {service.name}"


def _needs_image(service: Service, status_of: StatusOf) -> str | None:
    if status_of(STAGE_BUILD) is StageStatus.skipped:
        return "nothing to deploy: the Build stage was skipped"
    return None


# -- how a stage re-attaches -----------------------------------------------------------------
def _run_again(worker: StageWorker, work: StageWork, state: dict[str, Any] | None) -> None:
    """Idempotent work (a checkout, a build with the host's cache, a compose project
    under the run's name): do it again."""
    return None


def _follow_container(worker: StageWorker, work: StageWork, state: dict[str, Any] | None
                      ) -> StageResult | None:
    return worker.follow(work, state)


def _follow_ecs_build(worker: StageWorker, work: StageWork, state: dict[str, Any] | None
                      ) -> StageResult | None:
    if work.executor_name != "ecs":
        return None
    return worker.follow_ecs_build(work, state)


def _follow_tested(worker: StageWorker, work: StageWork, state: dict[str, Any] | None
                   ) -> StageResult | None:
    return worker.follow_tested(work, state)


def _integration_reattach(worker: StageWorker, work: StageWork,
                          state: dict[str, Any] | None) -> StageResult | None:
    if work.service.compose_file:
        return None  # the project is torn down and brought up again
    return worker.follow_tested(work, state)


def _deploy_reattach(environment: str) -> Reattach:
    def reattach(worker: StageWorker, work: StageWork, state: dict[str, Any] | None
                 ) -> StageResult:
        return worker.deployer.restart_outcome(work.run, environment, work.name, work.log)

    return reattach


def _always(service: Service) -> bool:
    return True


def _no(service: Service) -> bool:
    return False


def _deploy_to(environment: str) -> Work:
    def deploy(worker: StageWorker, work: StageWork) -> StageResult:
        return worker.deploy(work, environment)

    return deploy


STAGES: dict[str, StageDecl] = {decl.name: decl for decl in (
    StageDecl(STAGE_PREPARE, run=StageWorker.prepare, skip_reason=_never,
              reattach=_run_again, made_ahead=_no),
    StageDecl(STAGE_CODE_QUALITY, run=StageWorker.command,
              skip_reason=_needs_command(STAGE_CODE_QUALITY),
              reattach=_follow_container, made_ahead=_always),
    StageDecl(STAGE_UNIT_TEST, run=StageWorker.unit_test,
              skip_reason=_needs_command(STAGE_UNIT_TEST),
              reattach=_follow_tested, made_ahead=_always),
    StageDecl(STAGE_BUILD, run=StageWorker.build, skip_reason=_needs_dockerfile,
              reattach=_follow_ecs_build, made_ahead=_no),
    StageDecl(STAGE_INTEGRATION_TEST, run=StageWorker.integration_test,
              skip_reason=_needs_test,
              reattach=_integration_reattach,
              made_ahead=lambda service: not service.compose_file),
    StageDecl(STAGE_DEPLOY_STAGING, run=_deploy_to("staging"), skip_reason=_needs_image,
              reattach=_deploy_reattach("staging"), made_ahead=_no,
              environment="staging"),
    StageDecl(STAGE_DEPLOY_PRODUCTION, run=_deploy_to("production"),
              skip_reason=_needs_image, reattach=_deploy_reattach("production"), made_ahead=_no,
              environment="production"),
)}
