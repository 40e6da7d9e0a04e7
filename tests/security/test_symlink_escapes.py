"""Symlinks in a repository cannot hand host files to a build or a compose project:
every repository path is resolved inside the checkout. Against a real agent and engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.served import ServedAgent, stage, summary
from tests.security.conftest import svc_name

DOCKERFILE = "FROM {base}\nCOPY . /ctx/\nRUN cat /ctx/admin-token || true\n"


def run_repo(serve, repo, **service: object) -> tuple[ServedAgent, dict]:
    agent: ServedAgent = serve()
    agent.add_pipeline("shop")
    name = svc_name("links")
    agent.add_service(name, "shop", repo.url, **service)
    return agent, agent.wait_run(agent.trigger(name, repo.head_sha)["id"], timeout=180)


@pytest.mark.docker
def test_a_build_context_symlinked_to_a_host_directory_is_refused_naming_the_path(
        serve, hostile_repo, base_image: str, secret_file: Path) -> None:
    repo = hostile_repo({"ctx": ("symlink", str(secret_file.parent))})
    (secret_file.parent / "Dockerfile").write_text(DOCKERFILE.format(base=base_image))
    agent, run = run_repo(serve, repo, dockerfile="Dockerfile", build_context="ctx")

    build = stage(run, "Build")
    assert build["status"] == "failed", summary(run)
    assert "'ctx'" in build["error"] and "leaves the repository" in build["error"]
    assert "TOKEN-9f2c41d7e0" not in "\n".join(agent.log_lines(run["id"], "Build"))


@pytest.mark.docker
def test_a_dockerfile_symlinked_out_of_the_repository_is_refused(
        serve, hostile_repo, base_image: str, secret_file: Path) -> None:
    outside = secret_file.parent / "Dockerfile.host"
    outside.write_text(DOCKERFILE.format(base=base_image))
    repo = hostile_repo({"Dockerfile": ("symlink", str(outside))})
    _agent, run = run_repo(serve, repo, dockerfile="Dockerfile")

    build = stage(run, "Build")
    assert build["status"] == "failed", summary(run)
    assert "'Dockerfile'" in build["error"] and "leaves the repository" in build["error"]


@pytest.mark.docker
def test_a_symlink_inside_the_build_context_pointing_out_is_refused(
        serve, hostile_repo, base_image: str, secret_file: Path) -> None:
    repo = hostile_repo({"Dockerfile": DOCKERFILE.format(base=base_image),
                         "admin-token": ("symlink", str(secret_file))})
    agent, run = run_repo(serve, repo, dockerfile="Dockerfile")

    build = stage(run, "Build")
    assert build["status"] == "failed", summary(run)
    assert "'./admin-token'" in build["error"] or "'admin-token'" in build["error"], build
    assert "TOKEN-9f2c41d7e0" not in "\n".join(agent.log_lines(run["id"], "Build"))


@pytest.mark.docker
def test_a_compose_file_symlinked_out_of_the_repository_is_refused(
        serve, hostile_repo, base_image: str, secret_file: Path) -> None:
    outside = secret_file.parent / "compose.yaml"
    outside.write_text(f"services:\n  app:\n    image: {base_image}\n"
                       f"    volumes: ['{secret_file.parent}:/host']\n")
    repo = hostile_repo({"ci/compose.yaml": ("symlink", str(outside))})
    _agent, run = run_repo(serve, repo, compose_file="ci/compose.yaml",
                           integration_test_command="true")

    it = stage(run, "Integration Test")
    assert it["status"] == "failed", summary(run)
    assert "'ci/compose.yaml'" in it["error"] and "leaves the repository" in it["error"]


@pytest.mark.docker
def test_a_compose_build_context_holding_a_symlink_out_is_refused(
        serve, hostile_repo, base_image: str, secret_file: Path) -> None:
    repo = hostile_repo({
        "ci/Dockerfile": DOCKERFILE.format(base=base_image),
        "ci/admin-token": ("symlink", str(secret_file)),
        "compose.yaml": "services:\n  app:\n    build: ./ci\n"})
    agent, run = run_repo(serve, repo, compose_file="compose.yaml",
                          integration_test_command="true")

    it = stage(run, "Integration Test")
    assert it["status"] == "failed", summary(run)
    assert "'app'" in it["error"] and "build" in it["error"], it["error"]
    assert "admin-token" in it["error"] and "leaving the repository" in it["error"]
    assert "TOKEN-9f2c41d7e0" not in "\n".join(agent.log_lines(run["id"], "Integration Test"))
