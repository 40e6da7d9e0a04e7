"""run_integration: the sample repo's compose project, a real test container on its
network, and teardown every time."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from agent.executors.build import BuildSpec, build_image
from agent.executors.compose import IntegrationSpec, project_name, run_integration
from agent.executors.docker import DockerExecutor
from tests.executors.conftest import stored
from tests.sample_repo import make_sample_service_repo


def leftovers(client, project: str) -> list[str]:
    label = f"com.docker.compose.project={project}"
    return ([c["Names"][0] for c in client.api.containers(all=True, filters={"label": label})]
            + [n["Name"] for n in client.api.networks(names=[f"{project}_default"])])


@pytest.fixture
def app_image(docker_client, base_image, tmp_path, writer):
    """The sample service, built once per test under a unique tag."""
    repo = make_sample_service_repo(tmp_path / "svc", "svc")
    image = f"seamless-test/svc-{uuid.uuid4().hex[:8]}:{repo.head_sha}"
    log = writer.stage_log(1, "Build", [])
    assert build_image(docker_client, BuildSpec(repo.path, "Dockerfile", image), log,
                       threading.Event()).ok
    yield repo.path, image
    docker_client.images.remove(image, force=True)


def integration(make_spec, workspace: Path, image: str, command: str) -> IntegrationSpec:
    test = make_spec(command, stage="Integration Test", workspace=workspace)
    return IntegrationSpec(run_id=test.run_id, workspace=workspace,
                           compose_file="compose.yaml", image=image, test=test)


def test_integration_passes_against_the_sample_service(docker_client, app_image, make_spec,
                                                       writer, store) -> None:
    workspace, image = app_image
    spec = integration(make_spec, workspace, image, "sh integration.sh")
    log = writer.stage_log(spec.run_id, "Integration Test", [])
    result = run_integration(docker_client, DockerExecutor(docker_client), spec, log,
                             threading.Event())
    log.flush()
    lines = stored(store, spec.run_id)
    assert result.ok, lines
    assert ("stdout", "integration: GET http://app:8080/health -> ok") in lines
    assert leftovers(docker_client, project_name(spec.run_id)) == []


def test_an_unhealthy_app_fails_clearly_and_is_torn_down(docker_client, app_image, make_spec,
                                                         writer, store) -> None:
    workspace, image = app_image
    check = ('for i in 1 2 3; do body=$(wget -qO- http://app:8080/health 2>&1) && '
             '[ "$body" = ok ] && exit 0; sleep 0.3; done; '
             'echo "integration: app unhealthy: $body" >&2; exit 1')
    # An app that serves no /health: the same image with its health file removed.
    (workspace / "compose.yaml").write_text(
        'version: "3"\nservices:\n  app:\n    image: ${SEAMLESS_IMAGE}\n'
        '    command: ["sh", "-c", "rm /www/health; httpd -f -p 8080 -h /www"]\n')
    spec = integration(make_spec, workspace, image, check)
    log = writer.stage_log(spec.run_id, "Integration Test", [])
    result = run_integration(docker_client, DockerExecutor(docker_client), spec, log,
                             threading.Event())
    log.flush()
    lines = stored(store, spec.run_id)
    assert result.exit_code == 1 and not result.ok
    assert any(s == "stderr" and "app unhealthy" in t for s, t in lines)
    assert any("tearing down" in t for _, t in lines)
    assert leftovers(docker_client, project_name(spec.run_id)) == []


def test_a_broken_compose_file_is_a_clear_error(docker_client, app_image, make_spec,
                                                writer, store) -> None:
    workspace, image = app_image
    (workspace / "compose.yaml").write_text("services: [this is not a mapping\n")
    spec = integration(make_spec, workspace, image, "true")
    log = writer.stage_log(spec.run_id, "Integration Test", [])
    result = run_integration(docker_client, DockerExecutor(docker_client), spec, log,
                             threading.Event())
    log.flush()
    assert not result.ok
    assert (result.error or "").startswith(
        "compose file 'compose.yaml' is not valid YAML (line 2"), result.error
    assert leftovers(docker_client, project_name(spec.run_id)) == []
