"""build_image: real builds on the engine, pushes to the loopback registry."""

from __future__ import annotations

import threading
import uuid

import docker

from agent.executors.build import BuildSpec, build_image
from tests.executors.conftest import stored


def test_build_and_push_tags_the_image_with_the_sha(docker_client, base_image, registry,
                                                    tmp_path, writer, store) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo building-now\n")
    sha = uuid.uuid4().hex + "abcdef01"
    repo = f"seamless-test/build-{uuid.uuid4().hex[:8]}"
    image = f"{registry.host}/{repo}:{sha}"
    log = writer.stage_log(11, "Build", [])
    try:
        result = build_image(docker_client, BuildSpec(tmp_path, "Dockerfile", image, push=True,
                                                      labels={"io.seamless.sha": sha}),
                             log, threading.Event())
        log.flush()
        assert result.ok, stored(store, 11)
        assert registry.tags(repo) == [sha]
        texts = [t for _, t in stored(store, 11)]
        assert "building-now" in texts
        assert texts[-1] == f"pushed {image}"
        labels = docker_client.images.get(image).labels
        assert labels["io.seamless.sha"] == sha
    finally:
        docker_client.images.remove(image, force=True)


def test_a_missing_base_image_fails_with_a_hint(docker_client, base_image, tmp_path, writer,
                                                store) -> None:
    (tmp_path / "Dockerfile").write_text("FROM seamless/no-such-base:1\n")
    image = f"seamless-test/build-{uuid.uuid4().hex[:8]}:1"
    log = writer.stage_log(12, "Build", [])
    result = build_image(docker_client, BuildSpec(tmp_path, "Dockerfile", image), log,
                         threading.Event())
    log.flush()
    assert not result.ok
    assert (result.error or "").startswith("build failed:")
    assert "base images must already exist on this engine" in (result.error or "")
    assert ("system", result.error) in stored(store, 12)
    try:
        docker_client.images.get(image)
        raise AssertionError("no image may be tagged by a failed build")
    except docker.errors.ImageNotFound:
        pass


def test_a_failing_push_is_reported(docker_client, base_image, tmp_path, writer) -> None:
    from tests.helpers import free_port

    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\n")
    image = f"127.0.0.1:{free_port()}/seamless-test/nothing-listens:1"
    log = writer.stage_log(13, "Build", [])
    try:
        result = build_image(docker_client, BuildSpec(tmp_path, "Dockerfile", image, push=True),
                             log, threading.Event())
        assert not result.ok and (result.error or "").startswith(f"push of {image} failed:")
    finally:
        docker_client.images.remove(image, force=True)


def test_a_build_failing_across_an_engine_outage_fails_saying_the_engine_restarted(
        docker_client, base_image, tmp_path) -> None:
    """The engine watch saw an outage begin or end while the build ran (the engine may
    already answer again): the failure is the restart's, not the build's; without one the
    build's own error stays."""
    from agent.executors.docker import DockerExecutor
    from tests.harness.fakes import ListLog

    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\nRUN exit 3\n")
    image = f"seamless-test/build-{uuid.uuid4().hex[:8]}:1"
    seen = iter(range(100))  # each look at the watch sees one more transition
    for outages, expected in ((lambda: next(seen), "the Docker engine restarted during the "
                               "stage: the build was cut off"),
                              (lambda: 0, "build failed: The command '/bin/sh -c exit 3'")):
        executor = DockerExecutor(docker_client, outages=outages)
        log = ListLog()
        result = executor.build(BuildSpec(tmp_path, "Dockerfile", image), log,
                                threading.Event())
        assert (result.error or "").startswith(expected), (result, log.lines)
        assert result.engine_restarted is expected.startswith("the Docker engine")
