"""Services sharing one repository (#18): change detection against real git repositories
made here, on the fake executor (runs take no time): which services a push runs and why,
against the last successful run (not the push's `before`), renames and deletes on both
paths, a pull request against its merge base, deploy order and a failed dependency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.runtime import Agent
from agent.triggers.changes import ChangeRequest, matching
from store.configs import InvalidDependencies
from store.models import (
    STAGE_DEPLOY_STAGING,
    ChangeDecision,
    DockerTargetConfig,
    PipelineConfig,
    RunKind,
    RunStatus,
    Service,
    ServiceConfig,
    StageStatus,
    Trigger,
)
from tests.harness import Fakes, agent_running, wait_run
from tests.mono_repo import MonoRepo
from tests.sample_repo import git


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
async def agent(tmp_path: Path, fakes: Fakes) -> AsyncIterator[Agent]:
    async with agent_running(tmp_path / "data", fakes=fakes) as running:
        running.store.create_pipeline(PipelineConfig(
            name="shop", auto_deploy=True, staging=DockerTargetConfig(),
            production=DockerTargetConfig()))
        yield running


@pytest.fixture
def repo(tmp_path: Path) -> MonoRepo:
    return MonoRepo(tmp_path / "shop")


def add(agent: Agent, repo: MonoRepo, name: str, **fields: object) -> Service:
    config: dict[str, object] = dict(
        name=name, pipeline="shop", repo_url=str(repo.path), root=f"services/{name}",
        paths=[f"services/{name}/**"], depends_on_paths=["libs/common/**"],
        unit_test_command="lines=1")
    config.update(fields)
    return agent.store.create_service(ServiceConfig(**config))  # type: ignore[arg-type]


async def push(agent: Agent, sha: str, *names: str, batch: str | None = None
               ) -> dict[str, ChangeDecision]:
    """The services of the repo decided for a push of `sha`; each run waited for."""
    services = [agent.store.get_service(n) for n in names]
    requests = [ChangeRequest(service=s, trigger=Trigger.push, kind=RunKind.full, sha=sha,
                              branch="main") for s in services]
    decisions = await asyncio.to_thread(agent.changes.decide, requests, batch or f"push:{sha}")
    for decision in decisions:
        if decision.run_id is not None:
            await wait_run(agent, decision.run_id)
    return {d.service: d for d in decisions}


def ran(decisions: dict[str, ChangeDecision]) -> set[str]:
    return {name for name, d in decisions.items() if d.ran}


async def test_a_push_runs_only_the_services_its_commits_touch(agent: Agent,
                                                               repo: MonoRepo) -> None:
    add(agent, repo, "api")
    add(agent, repo, "web")
    first = await push(agent, repo.head(), "api", "web")
    assert ran(first) == {"api", "web"}  # no earlier success: both run
    assert "no earlier successful run of api on main" in first["api"].reason
    api_only = repo.commit("api change", {"services/api/app.py": "api 2\n"})
    second = await push(agent, api_only, "api", "web")
    assert ran(second) == {"api"}
    assert second["api"].matched == ["services/api/app.py"]
    assert second["api"].base_sha == first["api"].sha
    assert second["web"].reason.startswith(f"no changes for web since {first['web'].sha[:12]}")
    assert second["web"].run_id is None and second["web"].matched == []
    # Three commits in one push: only the first touches web; every commit counts.
    repo.commit("web change", {"services/web/app.py": "web 2\n"})
    repo.commit("docs", {"README.md": "more\n"})
    head = repo.commit("api again", {"services/api/app.py": "api 3\n"})
    third = await push(agent, head, "api", "web")
    assert ran(third) == {"api", "web"}
    assert third["web"].matched == ["services/web/app.py"]
    assert third["web"].base_sha == first["web"].sha  # its last success, not api's
    # The shared library runs both; REST-visible reason names the path.
    lib = repo.commit("lib", {"libs/common/util.py": "util 2\n"})
    fourth = await push(agent, lib, "api", "web")
    assert ran(fourth) == {"api", "web"}
    assert "libs/common/util.py" in fourth["web"].reason
    assert agent.store.decision_for_run(fourth["web"].run_id or 0) == fourth["web"]


async def test_a_failed_run_is_not_forgotten_by_the_next_push(agent: Agent,
                                                              repo: MonoRepo) -> None:
    api = add(agent, repo, "api")
    add(agent, repo, "web")
    await push(agent, repo.head(), "api", "web")
    agent.store.update_service("api", ServiceConfig(**{
        **api.model_dump(include=set(ServiceConfig.model_fields)), "unit_test_command": "exit=1"}))
    broken = repo.commit("api bug", {"services/api/app.py": "api bug\n"})
    failed = await push(agent, broken, "api", "web")
    assert ran(failed) == {"api"}
    assert agent.store.get_run(failed["api"].run_id or 0).status is RunStatus.failed
    agent.store.update_service("api", ServiceConfig(**{
        **api.model_dump(include=set(ServiceConfig.model_fields))}))
    # An unrelated push (web only): api's failed change still runs, against its last
    # success, not the push's `before`.
    unrelated = repo.commit("web", {"services/web/app.py": "web 2\n"})
    after = await push(agent, unrelated, "api", "web")
    assert ran(after) == {"api", "web"}
    assert after["api"].matched == ["services/api/app.py"]
    assert after["api"].base_sha != broken


async def test_renames_and_deletes_count_on_both_paths(agent: Agent, repo: MonoRepo) -> None:
    add(agent, repo, "api")
    add(agent, repo, "web")
    await push(agent, repo.head(), "api", "web")
    moved = repo.rename("services/api/app.py", "services/web/from_api.py")
    decided = await push(agent, moved, "api", "web")
    assert ran(decided) == {"api", "web"}
    assert decided["api"].matched == ["services/api/app.py"]
    assert decided["web"].matched == ["services/web/from_api.py"]
    gone = repo.commit("delete", {"services/web/app.py": None})
    deleted = await push(agent, gone, "api", "web")
    assert ran(deleted) == {"web"}
    assert deleted["web"].matched == ["services/web/app.py"]


async def test_a_pull_request_compares_with_its_merge_base(agent: Agent,
                                                           repo: MonoRepo) -> None:
    add(agent, repo, "api")
    add(agent, repo, "web")
    fork_point = repo.head()
    git(repo.path, "checkout", "-q", "-b", "feature")
    head = repo.commit("api feature", {"services/api/app.py": "feature\n"})
    git(repo.path, "checkout", "-q", "main")
    main_head = repo.commit("web on main", {"services/web/app.py": "web 2\n"})
    requests = [ChangeRequest(service=agent.store.get_service(n), trigger=Trigger.pull_request,
                              kind=RunKind.partial, sha=head, branch="feature", pr_number=7,
                              pr_base_sha=main_head) for n in ("api", "web")]
    decisions = {d.service: d for d in await asyncio.to_thread(
        agent.changes.decide, requests, "pr:7")}
    assert ran(decisions) == {"api"}  # main's own web change is not the PR's
    assert decisions["api"].base_sha == fork_point
    assert decisions["api"].base_kind == "merge_base"
    assert decisions["web"].reason.startswith(f"no changes for web since {fork_point[:12]}")


async def test_a_service_deploys_after_its_dependency(agent: Agent, repo: MonoRepo,
                                                      fakes: Fakes) -> None:
    add(agent, repo, "api", unit_test_command="duration=0.6")
    add(agent, repo, "web", depends_on_services=["api"])
    decisions = await push(agent, repo.head(), "web", "api")
    api_run = agent.store.get_run(decisions["api"].run_id or 0)
    web_run = agent.store.get_run(decisions["web"].run_id or 0)
    assert api_run.status is web_run.status is RunStatus.success
    api_deploy = agent.store.get_stage(api_run.id, STAGE_DEPLOY_STAGING)
    web_deploy = agent.store.get_stage(web_run.id, STAGE_DEPLOY_STAGING)
    assert api_deploy.finished_at and web_deploy.started_at
    assert web_deploy.started_at >= api_deploy.finished_at
    lines = [ln.text for ln in agent.store.log_page(web_run.id, stage=STAGE_DEPLOY_STAGING).lines]
    assert any("waiting for api" in ln for ln in lines), lines


async def test_a_failed_dependency_holds_its_dependents_back(agent: Agent,
                                                             repo: MonoRepo) -> None:
    add(agent, repo, "api", unit_test_command="exit=1 duration=0.3")
    add(agent, repo, "web", depends_on_services=["api"])
    decisions = await push(agent, repo.head(), "api", "web")
    web_run = agent.store.get_run(decisions["web"].run_id or 0)
    assert web_run.status is RunStatus.failed
    held = agent.store.get_stage(web_run.id, STAGE_DEPLOY_STAGING)
    assert held.status is StageStatus.failed
    assert held.error and held.error.startswith("held back: api did not deploy to staging")
    assert "failed" in held.error


async def test_a_rerun_of_a_dependent_waits_for_its_dependency_in_that_push(
        agent: Agent, repo: MonoRepo) -> None:
    add(agent, repo, "api", unit_test_command="exit=1 duration=0.3")
    add(agent, repo, "web", depends_on_services=["api"])
    decisions = await push(agent, repo.head(), "api", "web")
    api_first, web_first = decisions["api"].run_id or 0, decisions["web"].run_id or 0

    # api still failed: a rerun of web alone is held back, naming api's run.
    web_again = await wait_run(agent, agent.engine.rerun(web_first, None, "alice").id)
    assert web_again.status is RunStatus.failed
    held = agent.store.get_stage(web_again.id, STAGE_DEPLOY_STAGING)
    api_number = agent.store.get_run(api_first).number
    assert held.error and held.error.startswith(
        f"held back: api did not deploy to staging in this push (run #{api_number} failed")

    # api fixed and rerun, web rerun at once: web's deploy waits for api's rerun.
    api = agent.store.get_service("api")
    agent.store.update_service("api", ServiceConfig(**{
        **api.model_dump(include=set(ServiceConfig.model_fields)),
        "unit_test_command": "duration=0.6"}))
    api_rerun = agent.engine.rerun(api_first, None, "alice")
    web_rerun = agent.engine.rerun(web_again.id, None, "alice")
    api_done, web_done = await wait_run(agent, api_rerun.id), await wait_run(agent,
                                                                          web_rerun.id)
    assert api_done.status is web_done.status is RunStatus.success, web_done.error
    api_deploy = agent.store.get_stage(api_done.id, STAGE_DEPLOY_STAGING)
    web_deploy = agent.store.get_stage(web_done.id, STAGE_DEPLOY_STAGING)
    assert api_deploy.finished_at and web_deploy.started_at
    assert web_deploy.started_at >= api_deploy.finished_at
    lines = [ln.text for ln in agent.store.log_page(web_done.id,
                                                    stage=STAGE_DEPLOY_STAGING).lines]
    assert any(f"waiting for api (run #{api_done.number})" in ln for ln in lines), lines


async def test_deliveries_answered_but_never_decided_are_forgotten_at_start(
        tmp_path: Path) -> None:
    from store.changes import DecisionRow
    from store.store import Store

    data = tmp_path / "again"
    store = Store(data / "seamless.db")
    store.create_pipeline(PipelineConfig(name="shop"))
    service = store.create_service(ServiceConfig(name="api", pipeline="shop",
                                                 repo_url="https://example.invalid/x.git"))
    store.record_delivery("killed-before-deciding", "push", "deciding", service.id)
    store.record_delivery("decided", "push", "deciding", service.id)
    store.record_decisions([DecisionRow(
        batch="delivery:decided", service_id=service.id, trigger="push", sha="a" * 40,
        branch="main", base_sha=None, base_kind="none", ran=False, reason="no changes")])
    store.record_delivery("queued", "push", "queued", service.id)
    store.close()
    async with agent_running(data, fakes=Fakes()) as agent:
        assert sorted(d.delivery_id for d in agent.store.list_deliveries()) == [
            "decided", "queued"]
        # Redelivered now, the forgotten one is recorded (and decided) anew.
        assert agent.store.record_delivery("killed-before-deciding", "push", "deciding")


async def test_dependency_cycles_and_strangers_are_refused_at_config_time(
        agent: Agent, repo: MonoRepo, tmp_path: Path) -> None:
    add(agent, repo, "api")
    add(agent, repo, "web", depends_on_services=["api"])
    api = agent.store.get_service("api")
    with pytest.raises(InvalidDependencies, match="cycle: api -> web -> api"):
        agent.store.update_service("api", ServiceConfig(**{
            **api.model_dump(include=set(ServiceConfig.model_fields)),
            "depends_on_services": ["web"]}))
    with pytest.raises(InvalidDependencies, match="no service named 'nope'"):
        add(agent, repo, "admin", depends_on_services=["nope"])
    with pytest.raises(InvalidDependencies, match="another repository"):
        add(agent, repo, "other", repo_url=str(tmp_path / "elsewhere"),
            depends_on_services=["api"])


def test_globs_match_by_literal_prefix_and_globstar() -> None:
    changed = sorted(["README.md", "libs/common/a.py", "services/api/x/y.py",
                      "services/apix/z.py", "services/api/.env", "docs/api.md"])
    assert matching(["services/api/**"], changed) == ["services/api/.env",
                                                      "services/api/x/y.py"]
    assert matching(["**/*.md"], changed) == ["README.md", "docs/api.md"]
    assert matching(["**"], changed) == changed
    assert matching(["libs/*/a.py", "nothing/**"], changed) == ["libs/common/a.py"]


async def test_a_last_success_off_the_branch_line_is_compared_by_diff(agent: Agent,
                                                                     repo: MonoRepo) -> None:
    add(agent, repo, "api")
    add(agent, repo, "web")
    start = repo.head()
    await push(agent, start, "api", "web")
    api_change = repo.commit("api", {"services/api/app.py": "api 2\n"})
    assert ran(await push(agent, api_change, "api", "web")) == {"api"}
    # A force-push drops api's change: api's last success is no longer on the branch's
    # line, and the code it tested differs from the new head's: it runs again.
    git(repo.path, "reset", "-q", "--hard", start)
    forced = repo.commit("web only", {"services/web/app.py": "web 2\n"})
    decided = await push(agent, forced, "api", "web")
    assert ran(decided) == {"api", "web"}
    assert decided["api"].base_sha == api_change
    assert decided["api"].matched == ["services/api/app.py"]


async def test_a_folder_missing_at_the_commit_fails_prepare_naming_it(tmp_path: Path,
                                                                      repo: MonoRepo) -> None:
    from dataclasses import replace

    from agent.engine.workspace import Workspaces
    from store.models import STAGE_PREPARE
    from tests.harness import agent_config

    fakes = Fakes()
    settings = agent_config(tmp_path / "real-git")
    parts = replace(fakes.parts(settings), workspaces=Workspaces(settings.mirrors_dir,
                                                                 settings.workspaces_dir))
    real = Agent(settings, parts)  # real checkouts, fake stages
    await real.start()
    try:
        real.store.create_pipeline(PipelineConfig(name="shop", auto_deploy=True))
        add(real, repo, "apx", root="services/apx")
        [decision] = (await push(real, repo.head(), "apx")).values()
        run = real.store.get_run(decision.run_id or 0)
        prepare = real.store.get_stage(run.id, STAGE_PREPARE)
        assert run.status is RunStatus.failed
        assert prepare.error == "root: no apx/ in services/; found api/"
    finally:
        await real.stop()
        real.close()
