"""The shared test infrastructure works: base image, builds, registry, compose, git daemon.

The compose test also proves the pattern the executor uses for Integration Test:
``docker-compose -p <unique> up -d`` with the sha-tagged image, then the test command in a
sibling container joined to ``<project>_default``, then ``down -v`` whatever happened.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import pytest

from tests.helpers import unique_name
from tests.sample_repo import git


def _rmi(client: docker.DockerClient, tag: str) -> None:
    try:
        client.images.remove(tag, force=True)
    except docker.errors.ImageNotFound:
        pass


def _build(client: docker.DockerClient, context: Path, tag: str) -> None:
    """Build through the low-level API (as the executor does) and raise on build errors."""
    for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True):
        if "error" in chunk:
            raise AssertionError(f"build of {tag} failed: {chunk['error']}")


def test_base_image_runs_echo(docker_client, base_image):
    out = docker_client.containers.run(
        base_image, ["echo", "hi"], name=unique_name("infra-echo"), remove=True
    )
    assert out == b"hi\n"


def test_base_image_has_the_applets_and_users_we_rely_on(docker_client, base_image):
    script = (
        "for a in sh ls cat echo wget httpd nc sleep true false env id; do "
        "command -v $a >/dev/null || echo missing $a; done; "
        "test -x /usr/bin/env || echo missing /usr/bin/env; "
        "id -un; id -un nobody; stat -c %a /tmp; echo $PATH"
    )
    out = docker_client.containers.run(
        base_image, ["sh", "-c", script], name=unique_name("infra-applets"), remove=True
    )
    assert out.decode().split() == ["root", "nobody", "1777", "/bin:/usr/bin:/sbin:/usr/sbin"]


def test_dockerfile_from_base_image_builds(docker_client, base_image, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f'FROM {base_image}\nRUN echo built > /built.txt\nCMD ["cat", "/built.txt"]\n'
    )
    tag = f"seamless-test/{unique_name('infra-build')}:latest"
    try:
        _build(docker_client, tmp_path, tag)
        out = docker_client.containers.run(tag, name=unique_name("infra-built"), remove=True)
        assert out == b"built\n"
    finally:
        _rmi(docker_client, tag)


def test_registry_accepts_a_push_and_lists_the_tag(docker_client, base_image, registry):
    repo = f"seamless-test/{unique_name('infra-push')}"
    ref = f"{registry.host}/{repo}"
    docker_client.images.get(base_image).tag(ref, tag="abc123")
    try:
        # api.push does not raise on failure: every chunk must be scanned for errors.
        for chunk in docker_client.api.push(ref, tag="abc123", stream=True, decode=True):
            assert "error" not in chunk, chunk
        assert registry.tags(repo) == ["abc123"]
        assert repo in registry.catalog()
        assert registry.tags("seamless-test/never-pushed") == []
    finally:
        _rmi(docker_client, f"{ref}:abc123")


def test_sample_repo_compose_integration_from_a_sibling_container(
    docker_client, base_image, sample_repo
):
    repo = sample_repo("svc")
    image = f"seamless-test/{unique_name('svc')}:{repo.head_sha[:12]}"
    # compose v1 lowercases project names and drops all but [-_a-z0-9]: keep names plain.
    project = unique_name("infra")
    env = {**os.environ, "SEAMLESS_IMAGE": image}
    compose = ["docker-compose", "-p", project, "-f", str(repo.path / "compose.yaml")]
    try:
        _build(docker_client, repo.path, image)
        up = subprocess.run([*compose, "up", "-d"], env=env, capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        out = docker_client.containers.run(
            base_image,
            ["sh", "./integration.sh"],
            name=unique_name("infra-it"),
            network=f"{project}_default",
            volumes={str(repo.path): {"bind": "/workspace", "mode": "ro"}},
            working_dir="/workspace",
            remove=True,
        )
        assert b"integration: GET http://app:8080/health -> ok" in out
    finally:
        down = subprocess.run(
            [*compose, "down", "-v", "--remove-orphans"], env=env, capture_output=True, text=True
        )
        _rmi(docker_client, image)
    assert down.returncode == 0, down.stderr
    assert not docker_client.networks.list(names=[f"{project}_default"])


def test_sample_repo_scripts_and_history(sample_repo):
    repo = sample_repo("svc2", unit_test_passes=False)
    first = repo.head_sha
    failing = subprocess.run(["sh", "test.sh"], cwd=repo.path, capture_output=True, text=True)
    assert failing.returncode == 1 and "test_version ... FAILED" in failing.stdout
    fixed = repo.set_unit_tests(True)
    passing = subprocess.run(["sh", "test.sh"], cwd=repo.path, capture_output=True, text=True)
    assert passing.returncode == 0 and "FAILED" not in passing.stdout
    assert fixed != first and repo.head_sha == fixed
    assert subprocess.run(["./lint.sh"], cwd=repo.path).returncode == 0

    repo.branch("feature/x")
    pr_sha = repo.commit("feature work", {"app/extra.html": "x\n"})
    assert repo.current_branch == "feature/x"
    repo.checkout("main")
    assert repo.head_sha == fixed
    assert git(repo.path, "rev-parse", "feature/x") == pr_sha


def test_git_daemon_serves_and_receives(sample_repo, git_daemon, tmp_path):
    assert str(git_daemon).startswith("git://127.0.0.1:") and git_daemon.endswith("/")
    repo = sample_repo("served")
    url = git_daemon.publish(repo)
    assert url == git_daemon + "served.git"

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", url, str(clone))
    assert git(clone, "rev-parse", "HEAD") == repo.head_sha

    new_sha = repo.set_version("v2")
    repo.push("daemon", "main")
    assert git(tmp_path, "ls-remote", url, "refs/heads/main").split()[0] == new_sha

    # Pushing over git:// works too (receive-pack enabled).
    git(clone, "config", "user.email", "t@example.invalid")
    git(clone, "config", "user.name", "t")
    git(clone, "pull", "-q", "--ff-only")
    git(clone, "commit", "-q", "--allow-empty", "-m", "from the clone")
    git(clone, "push", "-q", "origin", "main")
    assert git(tmp_path, "ls-remote", url, "refs/heads/main").split()[0] == git(
        clone, "rev-parse", "HEAD"
    )


@pytest.mark.docker
def test_docker_marker_applies_the_engine_rule(docker_client):
    assert docker_client.ping()
