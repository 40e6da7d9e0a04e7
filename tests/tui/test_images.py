"""Tests sharing one engine keep their hands off each other's deploy containers."""

from __future__ import annotations

import docker.errors
import pytest

from tests.helpers import unique_name
from tests.tui.images import build_health_image, remove_images

pytestmark = pytest.mark.docker


def test_removing_a_tests_images_leaves_another_tests_containers(docker_client, base_image):
    """Two tests build the same health image under their own tags (the journey's rollback
    service, the TUI rollback test's catalog). One test's teardown must not remove the
    other's running colour: it did, because an identical build is one image id and the
    engine's `ancestor` filter matches every container of that id."""
    mine, theirs = (f"{unique_name('seamless-test')}/svc:1" for _ in range(2))
    build_health_image(docker_client, base_image, mine)
    build_health_image(docker_client, base_image, theirs)
    running = docker_client.containers.run(theirs, name=unique_name("seamless-test-colour"),
                                           detach=True)
    try:
        remove_images(docker_client, [mine])
        running.reload()  # NotFound here: another test's teardown removed it
        assert running.status == "running"
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(mine)
    finally:
        remove_images(docker_client, [theirs])
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(running.id)
