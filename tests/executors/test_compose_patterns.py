"""Compose files as real repositories write them (tests/repo_patterns.py), through
run_integration on the real engine: own networks, profiles, healthchecks, named volumes,
env_file, the test as a compose service, fixed host ports, and what is left afterwards."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from pathlib import Path

import docker
import pytest

from agent.executors.build import BuildSpec, build_image
from agent.executors.compose import IntegrationSpec, project_name, run_integration
from agent.executors.docker import DockerExecutor
from agent.executors.socket_stages import started_by_env
from tests.executors.conftest import stored
from tests.helpers import BASE_IMAGE
from tests.repo_patterns import fixed_ports_repo, networks_and_profile_repo
from tests.sample_repo import SampleRepo


def leftovers(client, project: str) -> list[str]:
    label = f"com.docker.compose.project={project}"
    return ([c["Names"][0] for c in client.api.containers(all=True, filters={"label": label})]
            + [n["Name"] for n in client.api.networks(filters={"label": label})]
            + [v["Name"] for v in (client.api.volumes(filters={"label": label})
                                   or {}).get("Volumes") or []]
            + [t for i in client.images.list(filters={"label": label.replace(
                "com.docker.compose.project", "io.seamless.run")}) for t in i.tags])


@pytest.fixture
def built(docker_client, base_image, writer):
    """Build a repo's Dockerfile as Build would (sha tag); images removed afterwards."""
    images: list[str] = []

    def build(repo: SampleRepo, dockerfile: str = "Dockerfile") -> str:
        image = f"seamless-test/patterns-{uuid.uuid4().hex[:8]}:{repo.head_sha}"
        log = writer.stage_log(1, "Build", [])
        assert build_image(docker_client, BuildSpec(repo.path, dockerfile, image), log,
                           threading.Event()).ok
        images.append(image)
        return image

    yield build
    for image in images:
        docker_client.images.remove(image, force=True)


def integrate(client, make_spec, writer, repo: SampleRepo, image: str, compose_file: str,
              command: str = "", timeout_s: float = 120.0,
              cancel: threading.Event | None = None, **fields: object):
    test = make_spec(command, stage="Integration Test", workspace=repo.path,
                     timeout_s=timeout_s)
    spec = IntegrationSpec(run_id=test.run_id, workspace=repo.path, compose_file=compose_file,
                           image=image, test=test,
                           build_dockerfile=(repo.path / "Dockerfile").resolve(),
                           **fields)  # type: ignore[arg-type]
    log = writer.stage_log(spec.run_id, "Integration Test", [])
    result = run_integration(client, DockerExecutor(client), spec, log,
                             cancel or threading.Event())
    log.flush()
    return spec, result


def test_the_test_service_runs_under_its_profile_against_the_built_image(
        docker_client, built, make_spec, writer, store, tmp_path: Path) -> None:
    repo = networks_and_profile_repo(tmp_path / "web")
    image = built(repo)
    spec, result = integrate(docker_client, make_spec, writer, repo, image,
                             "docker-compose.yml", test_service="e2e")
    lines = stored(store, spec.run_id)
    texts = [t for _, t in lines]
    assert result.ok, texts
    project = project_name(spec.run_id)
    # The tested image is the one Build tagged, and the log says which service got it.
    assert f"compose: web: runs {image}, the image Build tagged (not built again)" in texts
    assert not any("Building web" in t for t in texts)
    assert "compose: running the test service e2e" in texts
    # env_file reached the app; the e2e service's own output is the stage's output.
    assert ("stdout", "http://web:8080/mode -> from-env-file") in lines
    assert ("stdout", "e2e: passed") in lines
    # Containers, networks, the named volume and the per-run e2e image: all gone.
    assert leftovers(docker_client, project) == []
    assert docker_client.images.list(name=f"{project}-e2e") == []


def test_a_failing_test_service_fails_the_stage_with_its_exit_code(
        docker_client, built, make_spec, writer, store, tmp_path: Path) -> None:
    repo = networks_and_profile_repo(tmp_path / "web")
    image = built(repo)
    # The e2e service sits on `front` only: `cache` (on `back`) is out of its reach.
    spec, result = integrate(docker_client, make_spec, writer, repo, image,
                             "docker-compose.yml", "E2E_SEES_CACHE=1 sh /e2e.sh",
                             test_service="e2e")
    texts = [t for _, t in stored(store, spec.run_id)]
    assert result.exit_code == 1 and not result.ok
    assert "http://cache:6379/ping never answered" in texts
    assert "exit code 1" in texts
    assert leftovers(docker_client, project_name(spec.run_id)) == []


def test_a_test_container_reaches_every_service_on_every_network(
        docker_client, built, make_spec, writer, store, tmp_path: Path) -> None:
    repo = networks_and_profile_repo(tmp_path / "web")
    image = built(repo)
    spec, result = integrate(docker_client, make_spec, writer, repo, image,
                             "docker-compose.yml", "E2E_SEES_CACHE=1 sh e2e.sh")
    lines = stored(store, spec.run_id)
    assert result.ok, lines
    project = project_name(spec.run_id)
    assert ("system", f"compose: test container joins {project}_back, {project}_front") \
        in lines
    assert ("stdout", "http://cache:6379/ping -> PONG") in lines
    assert ("stdout", "http://web:8080/health -> ok") in lines
    assert leftovers(docker_client, project) == []


def test_fixed_host_ports_never_collide(docker_client, built, make_spec, writer, store,
                                        tmp_path: Path) -> None:
    # The host already serves the port the compose file publishes, on every address.
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("0.0.0.0", 0))
    holder.listen()
    port = holder.getsockname()[1]
    repo = fixed_ports_repo(tmp_path / "web", port)
    image = built(repo)
    results: list = [None, None]

    def one(i: int) -> None:  # two runs of the same repository at once
        results[i] = integrate(docker_client, make_spec, writer, repo, image, "compose.yaml",
                               "sh integration.sh")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
    finally:
        holder.close()
    for spec, result in results:
        lines = stored(store, spec.run_id)
        assert result.ok, lines
        assert ("system", "compose: web: published ports 127.0.0.1::8080/tcp (ephemeral "
                          "host ports on 127.0.0.1, so runs never collide)") in lines
        assert ("system", "compose: web: container_name 'web' dropped (a fixed name "
                          "collides between runs)") in lines
        assert leftovers(docker_client, project_name(spec.run_id)) == []


def test_a_test_service_ignoring_sigterm_is_killed_at_the_stage_timeout(
        docker_client, built, make_spec, writer, store, tmp_path: Path) -> None:
    repo = networks_and_profile_repo(tmp_path / "web", e2e_ignores_sigterm=True)
    image = built(repo)
    spec, result = integrate(docker_client, make_spec, writer, repo, image,
                             "docker-compose.yml", test_service="e2e", timeout_s=8.0)
    texts = [t for _, t in stored(store, spec.run_id)]
    assert result.timed_out and not result.ok, texts
    assert result.error == "timed out after 8 s: test service e2e killed"
    assert "e2e: waiting" in texts
    assert leftovers(docker_client, project_name(spec.run_id)) == []


def test_an_engine_refusal_is_reported_in_the_engines_words(
        docker_client, make_spec, writer, store) -> None:
    network = f"seamless-test-gone-{uuid.uuid4().hex[:8]}"
    spec = make_spec("true", network=network)
    log = writer.stage_log(spec.run_id, "Unit Test", [])
    result = DockerExecutor(docker_client).run(spec, log, threading.Event(), lambda s: None)
    log.flush()
    expected = f"the Docker engine refused: network {network} not found (HTTP 404)"
    assert result.error == expected
    assert ("system", expected) in stored(store, spec.run_id)


def test_a_stage_ignoring_sigterm_ends_at_its_timeout(docker_client, make_spec, writer,
                                                     store) -> None:
    spec = make_spec("trap '' TERM; echo started; while :; do sleep 1; done", timeout_s=2.0)
    log = writer.stage_log(spec.run_id, "Unit Test", [])
    result = DockerExecutor(docker_client).run(spec, log, threading.Event(), lambda s: None)
    log.flush()
    assert result.timed_out and result.error == "timed out after 2 s: container killed"
    assert ("stdout", "started") in stored(store, spec.run_id)


def test_build_says_per_step_whether_the_layer_cache_served_it(
        docker_client, base_image, writer, store, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex  # a step no other build has cached
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nRUN echo {marker} > /marker\nCOPY Dockerfile /Dockerfile\n")
    tags = [f"seamless-test/cache-{marker[:8]}:{n}" for n in ("first", "second")]
    logs = []
    try:
        for n, tag in enumerate(tags):
            run_id = 900_000_000 + int(marker[:6], 16) * 2 + n
            log = writer.stage_log(run_id, "Build", [])
            assert build_image(docker_client, BuildSpec(tmp_path / "ctx", "Dockerfile", tag),
                               log, threading.Event()).ok
            log.flush()
            logs.append([t for s, t in stored(store, run_id) if s == "system"])
    finally:
        for tag in tags:
            docker_client.images.remove(tag, force=True)
    first, second = logs
    assert f"build step 1/3 base image: FROM {BASE_IMAGE}" in first
    assert f"build step 2/3 ran: RUN echo {marker} > /marker" in first
    assert "build: 0 of 2 steps from the layer cache" in first
    assert f"build step 2/3 cached: RUN echo {marker} > /marker" in second
    assert "build step 3/3 cached: COPY Dockerfile /Dockerfile" in second
    assert "build: 2 of 2 steps from the layer cache" in second


def test_a_cancelled_socket_stage_removes_what_it_started(
        docker_client, base_image, make_spec, writer, store) -> None:
    spec = make_spec("echo started; sleep 60", mount_docker_socket=True)
    spec.env.update(started_by_env(spec.container_name))
    # What the stage would start through the socket: a `docker run --label
    # "$SEAMLESS_DOCKER_LABEL"` and a compose project under $COMPOSE_PROJECT_NAME.
    label, value = spec.env["SEAMLESS_DOCKER_LABEL"].split("=", 1)
    project = spec.env["COMPOSE_PROJECT_NAME"]
    network = docker_client.networks.create(
        f"{project}_default", labels={"com.docker.compose.project": project})
    started = [docker_client.containers.create(base_image, "sleep 60", labels={label: value}),
               docker_client.containers.create(
                   base_image, "sleep 60", network=network.name,
                   labels={"com.docker.compose.project": project})]
    bystander = docker_client.containers.create(base_image, "sleep 60",
                                                labels={label: "another-stage"})
    cancel = threading.Event()
    threading.Timer(1.5, cancel.set).start()
    try:
        log = writer.stage_log(spec.run_id, "Unit Test", [])
        result = DockerExecutor(docker_client).run(spec, log, cancel, lambda s: None)
        log.flush()
        lines = [t for s, t in stored(store, spec.run_id) if s == "system"]
        assert result.cancelled
        names = sorted([c.name for c in started] + [network.name])
        assert f"removed what the stage started: {', '.join(names)}" in lines
        for c in started:
            assert not docker_client.containers.list(all=True, filters={"id": c.id})
        assert not docker_client.networks.list(names=[network.name])
        assert docker_client.containers.list(all=True, filters={"id": bystander.id})
    finally:
        bystander.remove(force=True)
        for c in started:
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


def test_a_cancelled_compose_stage_leaves_nothing(docker_client, built, make_spec, writer,
                                                  store, tmp_path: Path) -> None:
    repo = networks_and_profile_repo(tmp_path / "web", e2e_ignores_sigterm=True)
    image = built(repo)
    cancel = threading.Event()
    threading.Timer(6.0, cancel.set).start()  # during `up` or the test: either way
    spec, result = integrate(docker_client, make_spec, writer, repo, image,
                             "docker-compose.yml", test_service="e2e", cancel=cancel)
    assert result.cancelled
    assert leftovers(docker_client, project_name(spec.run_id)) == []
    assert docker_client.images.list(name=f"{project_name(spec.run_id)}-e2e") == []
