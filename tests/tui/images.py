"""Tiny health-checked service images (busybox httpd) for real deploys and rollbacks."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import docker.errors


def build_health_image(client: Any, base_image: str, tag: str) -> None:
    """One image per tag: the same Dockerfile built twice is ONE image (the build cache),
    and its containers are then every test's (see `remove_images`); the label makes it
    this tag's own."""
    ctx = Path(tempfile.mkdtemp(prefix="seamless-tui-img-"))
    try:
        (ctx / "www").mkdir()
        (ctx / "www" / "health").write_text("ok\n")
        # The label first: no intermediate image is shared with another tag's build, so
        # removing one (which prunes its untagged parents) never takes a layer from under
        # a build running at the same time ("failed to get digest …").
        (ctx / "Dockerfile").write_text(
            f'FROM {base_image}\nLABEL io.seamless.test-image="{tag}"\n'
            "COPY www /www\nEXPOSE 8080\nSTOPSIGNAL SIGKILL\n"
            'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n')
        client.images.build(path=str(ctx), tag=tag, rm=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def remove_images(client: Any, tags: list[str]) -> None:
    """The images and the containers made from these tags (deploys leave containers
    running). Only those created from the tag itself: the engine's `ancestor` filter also
    matches every container of an image with the same id, i.e. other tests' containers of
    an identical build (it removed the tmux journey's new colour under its rollback)."""
    for tag in tags:
        for container in client.containers.list(all=True, filters={"ancestor": tag}):
            if container.attrs["Config"]["Image"] == tag:
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
        with contextlib.suppress(docker.errors.ImageNotFound):  # its build failed
            client.images.remove(tag, force=True)


def build_catalog_images(client: Any, base_image: str, repo: str, shas: list[str],
                         catalog: str = "catalog") -> list[str]:
    """The seeded catalog service's images at `shas`, under the test's own `repo`."""
    tags = [f"{repo}/{catalog}:{s}" for s in shas]
    for tag in tags:
        build_health_image(client, base_image, tag)
    return tags


def remove_networks(client: Any, service: str) -> None:
    """The environments' networks of `service` (a deploy makes one per environment; left
    behind, they use up the engine's address pools and `compose up` fails)."""
    for network in client.networks.list(names=[f"seamless-{service}-"]):
        if network.name in (f"seamless-{service}-staging", f"seamless-{service}-production"):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                network.remove()


def remove_front(client: Any, service: str, data_dir: Path) -> None:
    """This test's front of `service` only: the container name is shared by every agent
    seeding the same service, so it is told apart by its mounts from `data_dir`."""
    for front in client.containers.list(all=True, filters={"label": [
            "io.seamless.role=front", f"io.seamless.service={service}"]}):
        if any(m["Source"].startswith(str(data_dir)) for m in front.attrs["Mounts"]):
            front.remove(force=True)
