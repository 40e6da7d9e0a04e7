"""Whole runs of repositories shaped like real ones (tests/repo_patterns.py): what the
user sees — run and stage status, the stage's words — when the config is right, and
when it names something the repository does not have."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.runtime import Agent
from store.models import PipelineConfig, RunKind, RunStatus, ServiceConfig
from tests.engine.conftest import add_service, log_text, push, stage_statuses, wait_run
from tests.repo_patterns import env_example_repo, subfolder_dockerfile_repo


async def test_a_misnamed_dockerfile_fails_build_naming_the_close_matches(
        agent: Agent, tmp_path: Path) -> None:
    repo = subfolder_dockerfile_repo(tmp_path / "api")
    service = add_service(agent, repo, build_context="project",
                          dockerfile="Dockerfile.production", compose_file=None,
                          integration_test_command=None, unit_test_command=None,
                          code_quality_command=None)
    run = await wait_run(agent, push(agent, service, repo.head_sha).id)

    expected = "no Dockerfile.production in project/; found Dockerfile, Dockerfile.prod"
    build = run.stages[3]
    assert (build.name, build.status.value, build.error) == ("Build", "failed", expected)
    assert expected in log_text(agent, run.id, "Build")
    # Nothing was deployed, and the run does not pretend otherwise.
    assert run.status is RunStatus.failed and run.error == expected
    assert stage_statuses(run)["Deploy to Staging"] == "skipped"


async def test_a_misnamed_build_context_and_compose_file_fail_their_stages(
        agent: Agent, tmp_path: Path) -> None:
    repo = subfolder_dockerfile_repo(tmp_path / "api")
    wrong_context = add_service(agent, repo, name="ctx", build_context="projects",
                                compose_file=None, integration_test_command=None,
                                unit_test_command=None, code_quality_command=None)
    wrong_compose = add_service(agent, repo, name="compose", build_context="project",
                                dockerfile="Dockerfile.prod", compose_file="project/compose.yml",
                                unit_test_command=None, code_quality_command=None)
    ctx = push(agent, wrong_context, repo.head_sha)
    compose = push(agent, wrong_compose, repo.head_sha, kind=RunKind.partial)
    ctx, compose = await wait_run(agent, ctx.id), await wait_run(agent, compose.id)

    assert ctx.status is RunStatus.failed
    assert ctx.error == "no projects/ in ./; found project/"
    assert compose.status is RunStatus.failed
    assert compose.error == ("compose file: no compose.yml in project/; "
                             "nothing with a similar name there")


@pytest.mark.parametrize("secrets_as", ["env", "files"])
async def test_env_example_interpolates_ports_and_the_service_env_wins(
        agent: Agent, tmp_path: Path, docker_client, secrets_as: str) -> None:
    repo = env_example_repo(tmp_path / "web")
    # Files or env for the stages: compose's interpolation sees the secret either way.
    service = add_service(agent, repo, env_files={".env": ".env.example"},
                          env={"GREETING": "hello-from-service"},
                          secrets={"API_KEY": "s3cr3t-k3y-42"}, secrets_as=secrets_as,
                          code_quality_command=None, unit_test_command=None)
    run = await wait_run(agent, push(agent, service, repo.head_sha, kind=RunKind.partial).id)

    text = log_text(agent, run.id, "Integration Test")
    assert run.status is RunStatus.success, text
    assert "env_files: .env made from .env.example" in log_text(agent, run.id, "Prepare")
    # WEB_PORT came from the .env made from .env.example; the fixed port is made loopback.
    assert "compose: web: published ports 127.0.0.1::8080/tcp" in text
    assert "http://web:8080/greeting -> hello-from-service" in text
    # The secret reached compose's interpolation and stays masked in the log.
    assert "http://web:8080/key -> ********" in text
    assert "s3cr3t-k3y-42" not in text


async def test_a_rerun_says_what_it_reused_and_that_it_runs_the_current_config(
        agent: Agent, sample_repo) -> None:
    repo = sample_repo("flaky", unit_test_passes=False)
    service = add_service(agent, repo, code_quality_command=None, compose_file=None,
                          integration_test_command=None, dockerfile=None)
    failed = await wait_run(agent, push(agent, service, repo.head_sha, kind=RunKind.partial).id)
    assert failed.status is RunStatus.failed
    skipped = "no Code Quality command configured for flaky"

    agent.store.update_service(service.name, service.model_copy(
        update={"unit_test_command": "echo fixed"}))
    rerun = await wait_run(agent, agent.engine.rerun(failed.id, "Unit Test", "tester").id)

    assert rerun.status is RunStatus.success
    quality = rerun.stages[1]
    assert (quality.status.value, quality.error) == ("skipped", skipped)
    text = log_text(agent, rerun.id, "Unit Test")
    assert (f"rerun of run #{failed.number} from Unit Test: reused Prepare (success), "
            f"Code Quality (skipped: {skipped})") in text
    assert (f"the service's config changed since run #{failed.number} (its settings or its "
            "pipeline's; secret values are not compared): this rerun uses the current config"
            in text)
    assert "fixed" in text.splitlines()


async def test_a_rerun_with_the_same_config_says_so(agent: Agent, sample_repo) -> None:
    repo = sample_repo("same", unit_test_passes=False)
    service = add_service(agent, repo, compose_file=None, integration_test_command=None,
                          dockerfile=None)
    failed = await wait_run(agent, push(agent, service, repo.head_sha, kind=RunKind.partial).id)
    # Saved again unchanged (a form saved without edits): newer timestamp, same content.
    agent.store.update_service(service.name, ServiceConfig.model_validate(
        service.model_dump(include=set(ServiceConfig.model_fields))))
    assert agent.store.get_service(service.name).updated_at > failed.created_at
    rerun = await wait_run(agent, agent.engine.rerun(failed.id, None, "tester").id)

    assert rerun.status is RunStatus.failed
    assert (f"the service's config is as it was for run #{failed.number}"
            in log_text(agent, rerun.id, "Prepare"))

    # A change to its pipeline is a change to what the rerun runs with.
    pipeline = agent.store.get_pipeline(service.pipeline)
    agent.store.update_pipeline(pipeline.name, PipelineConfig.model_validate(
        pipeline.model_dump(include=set(PipelineConfig.model_fields))
        | {"stage_timeout_s": 999}))
    again = await wait_run(agent, agent.engine.rerun(failed.id, None, "tester").id)
    assert (f"the service's config changed since run #{failed.number}"
            in log_text(agent, again.id, "Prepare"))
