"""`make demo-clean` removes what the demo's agent made — found by its instance id on
the labels — and never a same-named service of another agent on the shared engine."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from tests.helpers import REPO_ROOT


def labelled_image(client: docker.DockerClient, base: str, tag: str, instance: str) -> str:
    dockerfile = f"FROM {base}\nLABEL io.seamless.agent={instance}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    image, _ = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    return str(image.id)


@pytest.mark.docker
def test_demo_clean_takes_only_its_own_agents_things(tmp_path: Path, docker_client,
                                                     base_image: str) -> None:
    mine, other = secrets.token_hex(4), secrets.token_hex(4)
    service = f"payments-{secrets.token_hex(3)}"  # the same service name for both agents
    made: dict[str, dict[str, object]] = {mine: {}, other: {}}
    try:
        for instance in (mine, other):
            labels = {"io.seamless.managed": "1", "io.seamless.agent": instance,
                      "io.seamless.service": service}
            made[instance]["network"] = docker_client.networks.create(
                f"seamless-{service}-staging-{instance}", labels=labels).id
            made[instance]["container"] = docker_client.containers.create(
                base_image, command=["true"], labels=labels,
                name=f"seamless-{service}-staging-blue-{instance}").id
            made[instance]["image"] = labelled_image(
                docker_client, base_image, f"seamless-demo/{service}:{instance}", instance)
        demo_dir = tmp_path / "demo"
        demo_dir.mkdir()
        (demo_dir / "demo.json").write_text(json.dumps({"instance": mine,
                                                        "services": [service]}))
        cleaned = subprocess.run([str(REPO_ROOT / "scripts" / "demo-clean.sh"), str(demo_dir)],
                                 capture_output=True, text=True, timeout=120)
        assert cleaned.returncode == 0, cleaned.stderr
        assert f"agent {mine}" in cleaned.stdout
        assert not demo_dir.exists()

        def exists(kind: str, ident: object) -> bool:
            getter = {"network": docker_client.networks, "container": docker_client.containers,
                      "image": docker_client.images}[kind]
            try:
                getter.get(ident)
                return True
            except docker.errors.NotFound:
                return False

        assert [k for k, i in made[mine].items() if exists(k, i)] == []
        assert [k for k, i in made[other].items() if not exists(k, i)] == []
    finally:
        for instance in (mine, other):
            things = made[instance]
            if "container" in things:
                subprocess.run(["docker", "rm", "-f", str(things["container"])],
                               capture_output=True, timeout=60)
            if "network" in things:
                subprocess.run(["docker", "network", "rm", str(things["network"])],
                               capture_output=True, timeout=60)
            if "image" in things:
                subprocess.run(["docker", "rmi", "-f", str(things["image"])],
                               capture_output=True, timeout=60)


def test_without_a_recorded_instance_the_engine_is_left_alone(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    (demo_dir / "demo.json").write_text("{}\n")
    cleaned = subprocess.run([str(REPO_ROOT / "scripts" / "demo-clean.sh"), str(demo_dir)],
                             capture_output=True, text=True, timeout=120)
    assert cleaned.returncode == 0
    assert "leaving the Docker engine alone" in cleaned.stdout
    assert not demo_dir.exists()
