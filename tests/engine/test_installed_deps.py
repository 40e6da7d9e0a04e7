"""Installed dependencies kept between runs: a warm run starts from what an earlier run
of the same requirements installed; changed requirements start from the stage image; a
pull request's run cannot change what main's next run starts from; clearing the service's
cache removes them. The stage's "pip" here is a few lines of shell (the busybox image has
no Python): it installs into site-packages and the bin beside it, as pip does."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from agent.executors.base import StageSpec
from agent.executors.caches import caches_of
from agent.executors.installed_deps import (
    LABEL,
    Choice,
    InstalledDeps,
    stage_key,
)
from agent.executors.installed_layer import installed_paths
from agent.runtime import Agent
from store.models import (
    NoTargetConfig,
    PipelineConfig,
    RunKind,
    RunStatus,
    Service,
    Trigger,
)
from tests.engine.conftest import add_service, log_text, wait_run

SITE = "/usr/local/lib/python3.11/site-packages"
# `pip install -r requirements.txt`, in a line: a requirement installed already is
# "satisfied"; else it is installed. ci.sh is the repo's: a pull request can change it.
PIP = (f'for want in $(cat requirements.txt); do if [ -e {SITE}/$want ]; then '
       'echo "Requirement already satisfied: $want"; else echo "Installing $want"; '
       f'mkdir -p {SITE}/$want /usr/local/bin; echo "$want" > {SITE}/$want/__init__.py; '
       'printf "#!/bin/sh\\n" > /usr/local/bin/$want-cli; fi; done; '
       f'echo "site-packages: $(ls {SITE} | tr "\\n" " ")"; '
       'for want in $(cat requirements.txt); do '
       f'echo "$want says: $(cat {SITE}/$want/__init__.py)"; done; sh ci.sh')


async def unit_test_log(agent: Agent, service: Service, sha: str,
                        trigger: Trigger = Trigger.manual, pr_number: int | None = None) -> str:
    """A partial run of `sha`: its Unit Test log, once what it installed is kept."""
    run = agent.engine.submit(service, trigger=trigger, kind=RunKind.partial, sha=sha,
                              branch=service.branch, pr_number=pr_number)
    run = await wait_run(agent, run.id)
    text = log_text(agent, run.id, "Unit Test")
    assert run.status is RunStatus.success, text
    installed = agent.executors.caches.installed
    assert installed is not None and installed.wait_saved(60)
    return text


async def test_a_warm_run_starts_from_what_the_last_run_installed(agent: Agent,
                                                                 sample_repo) -> None:
    repo = sample_repo("deps")
    repo.commit("requirements", {"requirements.txt": "alpha\n", "ci.sh": "true\n"})
    service = add_service(agent, repo, code_quality_command=None, unit_test_command=PIP,
                          compose_file=None, integration_test_command=None, dockerfile=None)
    kept = agent.executors.caches

    async def unit_test(sha: str, trigger: Trigger = Trigger.manual,
                        pr_number: int | None = None) -> str:
        return await unit_test_log(agent, service, sha, trigger, pr_number)

    engine = docker.from_env()
    try:
        first = await unit_test(repo.head_sha)
        assert "none kept for these requirements yet" in first
        assert "Installing alpha" in first

        warm = await unit_test(repo.commit("app change", {"app.txt": "v2\n"}))
        assert "installed dependencies: starting from seamless-deps:" in warm
        assert "Requirement already satisfied: alpha" in warm
        assert "Installing alpha" not in warm

        # A pull request with the same requirements starts from main's, and tampers with it.
        repo.branch("evil")
        evil = repo.commit("poison", {"ci.sh": f"echo pwned > {SITE}/alpha/__init__.py; "
                                               f"mkdir -p {SITE}/backdoor\n"})
        pr = await unit_test(evil, Trigger.pull_request, pr_number=7)
        assert "Requirement already satisfied: alpha" in pr
        repo.checkout("main")
        after_pr = await unit_test(repo.commit("next", {"app.txt": "v3\n"}))
        assert "alpha says: alpha" in after_pr
        assert "backdoor" not in after_pr

        # New requirements: from the stage image, not from what alpha's runs installed.
        changed = await unit_test(repo.commit("deps", {"requirements.txt": "beta\n"}))
        assert "none kept for these requirements yet" in changed
        assert "Installing beta" in changed
        assert changed.rsplit("site-packages: ", 1)[1].splitlines()[0].split() == ["beta"]

        images = engine.images.list(filters={"label": f"{LABEL}={service.name}"})
        assert len(images) == 2  # alpha's and beta's; none from the pull request
        shown = caches_of(agent.config).size(service.name)  # GET /services/{name}/cache
        assert shown > 0
        assert kept.clear(service.name) == shown  # what DELETE /services/{name}/cache does
        assert caches_of(agent.config).size(service.name) == 0
        assert engine.images.list(filters={"label": f"{LABEL}={service.name}"}) == []
        assert "Installing beta" in await unit_test(repo.head_sha)
    finally:
        kept.clear(service.name)
        engine.close()


def test_the_key_follows_what_the_install_reads_and_no_symlink_out(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "requirements.txt").write_text("alpha\n")
    spec = StageSpec(run_id=1, stage="Unit Test", service="svc", image="img",
                     command="pip install -r requirements.txt", workspace=workspace,
                     env={"PIP_INDEX_URL": "http://mirror", "SEAMLESS_SHA": "a" * 40})
    key = stage_key(spec, "sha256:1")
    assert stage_key(replace(spec, env={**spec.env, "SEAMLESS_SHA": "b" * 40,
                                        "COMPOSE_PROJECT_NAME": "seamless-run2-unit-test"}),
                     "sha256:1") == key  # per-run variables do not count
    assert stage_key(spec, "sha256:2") != key  # another stage image
    assert stage_key(replace(spec, env={"PIP_INDEX_URL": "http://other"}), "sha256:1") != key
    (workspace / "poetry.lock").write_text("lock\n")
    assert stage_key(spec, "sha256:1") != key
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    before = stage_key(spec, "sha256:1")
    (workspace / "requirements-dev.txt").symlink_to(secret)
    assert stage_key(spec, "sha256:1") == before  # a symlink out of the checkout: not read


def test_only_python_install_dirs_are_kept_and_removals_are_listed() -> None:
    roots, wanted, removed = installed_paths([
        {"Path": "/usr/local/lib/python3.11/dist-packages/req", "Kind": 1},
        {"Path": "/usr/local/lib/python3.11/dist-packages/req/__init__.py", "Kind": 1},
        {"Path": "/usr/local/bin/req-cli", "Kind": 1},
        {"Path": "/tmp/pip-build", "Kind": 1},
        {"Path": "/etc/hosts.d", "Kind": 1},
        {"Path": "/usr/local/lib/python3.11/dist-packages/old-1.0.dist-info", "Kind": 2},
    ])
    assert roots == {"/usr/local/lib/python3.11/dist-packages", "/usr/local/bin"}
    assert wanted == {"/usr/local/lib/python3.11/dist-packages/req",
                      "/usr/local/lib/python3.11/dist-packages/req/__init__.py",
                      "/usr/local/bin/req-cli"}
    assert removed == {"/usr/local/lib/python3.11/dist-packages/old-1.0.dist-info"}


async def test_a_stage_that_installs_nothing_is_not_told_about_it_again(agent: Agent,
                                                                         sample_repo) -> None:
    repo = sample_repo("plain")
    service = add_service(agent, repo, code_quality_command=None, unit_test_command="echo ok",
                          compose_file=None, integration_test_command=None, dockerfile=None)
    kept = agent.executors.caches
    logs = [await unit_test_log(agent, service, sha)
            for sha in (repo.head_sha, repo.commit("again", {"app.txt": "v2\n"}))]
    assert "none kept for these requirements yet" in logs[0]
    assert "installed dependencies" not in logs[1]
    assert kept.size(service.name) == 0


async def test_a_save_cut_off_by_an_agent_kill_leaves_no_container(agent: Agent,
                                                                   base_image: str) -> None:
    kept = agent.executors.caches.installed
    assert kept is not None
    engine = docker.from_env()
    try:
        left = engine.containers.create(base_image, ["true"],
                                        name=f"seamless-{agent.instance}-deps-cut-off")
        docker_executor = agent.executors.get("docker", agent.store.create_pipeline(
            PipelineConfig(name="p", staging=NoTargetConfig(), production=NoTargetConfig())))
        assert f"seamless-{agent.instance}-deps-cut-off" in docker_executor.cleanup(set())
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(left.id)
    finally:
        engine.close()


class _Engine:
    """What eviction asks of the engine: image removal (one refused: in use)."""

    def __init__(self, in_use: str = "") -> None:
        self.removed: list[str] = []
        self.in_use = in_use

    def remove_image(self, tag: str, force: bool = False) -> None:
        if tag == self.in_use:
            raise docker.errors.APIError("conflict: image is being used by a running container")
        self.removed.append(tag)


def test_the_least_recently_used_installs_go_beyond_the_bound(tmp_path: Path) -> None:
    engine = _Engine()
    kept = InstalledDeps(engine, tmp_path, keep=2, instance="a1", max_bytes=1 << 30)
    now = time.time()
    for age, key in ((400, "oldest"), (300, "old"), (200, "used"), (100, "new")):
        marker = tmp_path / "svc" / key
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("1000 Unit Test")
        os.utime(marker, (now - age, now - age))
    (tmp_path / "svc" / "nothing").write_text("0 Code Quality")  # installs nothing: no image
    kept.apply(StageSpec(run_id=1, stage="Unit Test", service="svc", image="img",
                         command="c", workspace=tmp_path),
               Choice("old", kept.tag("svc", "old"), trusted=True))  # used a moment ago

    assert kept.evict("svc") == [kept.tag("svc", "used"), kept.tag("svc", "oldest")]
    assert engine.removed == [kept.tag("svc", "used"), kept.tag("svc", "oldest")]
    assert sorted(p.name for p in (tmp_path / "svc").iterdir()) == ["new", "nothing", "old"]
    assert kept.size("svc") == 2000

    engine.in_use = kept.tag("svc", "old")  # a running stage uses it: kept until later
    kept.keep = 0
    assert kept.evict("svc") == [kept.tag("svc", "new")]
    assert (tmp_path / "svc" / "old").exists()


def test_a_venv_the_stage_made_is_kept_whole() -> None:
    roots, wanted, _ = installed_paths([
        {"Path": "/opt/venv", "Kind": 1},
        {"Path": "/opt/venv/pyvenv.cfg", "Kind": 1},
        {"Path": "/opt/venv/bin/python", "Kind": 1},
        {"Path": "/opt/venv/lib/python3.11/site-packages/req/__init__.py", "Kind": 1},
    ])
    assert roots == {"/opt/venv"}
    assert wanted == {"/opt/venv/pyvenv.cfg", "/opt/venv/bin/python",
                      "/opt/venv/lib/python3.11/site-packages/req/__init__.py"}


# An upgrade of a package the image has: its old files go, the new ones come.
UPGRADE = (f'if [ -e {SITE}/new ]; then echo "Requirement already satisfied: new"; '
           f'else echo "Upgrading old to new"; rm -rf {SITE}/old; mkdir -p {SITE}/new; fi; '
           f'echo "site-packages: $(ls {SITE} | tr "\\n" " ")"')


async def test_what_an_upgrade_removed_from_the_image_stays_removed(
        agent: Agent, sample_repo, base_image: str) -> None:
    engine = docker.from_env()
    made = engine.containers.run(base_image, ["sh", "-c", f"mkdir -p {SITE}/old"], detach=True)
    made.wait()
    stage_image = f"seamless-test-with-old:{uuid.uuid4().hex[:12]}"
    made.commit(*stage_image.split(":"))
    made.remove(force=True)
    repo = sample_repo("upgrade")
    service = add_service(agent, repo, code_quality_command=None, unit_test_command=UPGRADE,
                          compose_file=None, integration_test_command=None, dockerfile=None,
                          stage_image=stage_image)
    try:
        assert "Upgrading old to new" in await unit_test_log(agent, service, repo.head_sha)
        warm = await unit_test_log(agent, service, repo.commit("app", {"app.txt": "v2\n"}))
        assert "installed dependencies: starting from seamless-deps:" in warm
        assert "Requirement already satisfied: new" in warm
        assert warm.rsplit("site-packages: ", 1)[1].splitlines()[0].split() == ["new"]
    finally:
        agent.executors.caches.clear(service.name)
        engine.images.remove(stage_image, force=True)
        engine.close()
