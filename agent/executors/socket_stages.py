"""What a stage with the Docker socket (`mount_docker_socket`) starts on the engine is
removed when the stage ends — finished, failed, timed out or cancelled. The stage's
compose projects are named after its container (`COMPOSE_PROJECT_NAME`), and
`SEAMLESS_DOCKER_LABEL` is the label to give containers it runs by hand
(`docker run --label "$SEAMLESS_DOCKER_LABEL" …`); both are swept afterwards."""

from __future__ import annotations

import docker

STARTED_BY = "io.seamless.started-by"


def started_by_env(stage_container: str) -> dict[str, str]:
    return {"COMPOSE_PROJECT_NAME": stage_container,
            "SEAMLESS_DOCKER_LABEL": f"{STARTED_BY}={stage_container}"}


def sweep(client: docker.DockerClient, stage_container: str) -> list[str]:
    """Remove the containers, networks and volumes the stage started; their names."""
    from agent.executors.compose import remove_project

    removed = remove_project(client, stage_container)
    for c in client.api.containers(all=True, filters={
            "label": f"{STARTED_BY}={stage_container}"}):
        try:
            client.api.remove_container(c["Id"], force=True, v=True)
            removed.append(c["Names"][0].lstrip("/"))
        except docker.errors.NotFound:
            pass
    return removed
