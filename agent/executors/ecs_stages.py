"""Prepare and Build as ECS tasks: StageSpecs the ECS executor runs like any stage.

Prepare clones the commit into the run's workspace on EFS from a small git image.
Build has two forms (docs/scaling.md says which and why):
- "docker": on an EC2 container instance, a Docker CLI image talks to the instance's
  daemon through its socket (the per-instance layer cache is kept; Dockerfiles build
  exactly as on the build host). Pushes to ECR with the instance's credential helper.
- "kaniko": a daemonless builder for Fargate-only clusters; it builds in user space from
  the EFS workspace and pushes to ECR with the task role.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

from agent.executors.base import StageSpec, stage_labels
from store.models import STAGE_BUILD, STAGE_PREPARE

GIT_IMAGE = "alpine/git:2.45.2"
DOCKER_CLI_IMAGE = "docker:27-cli"
KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2-debug"  # -debug: has /busybox/sh

BuildMode = Literal["docker", "kaniko"]


def prepare_spec(run_id: int, service: str, repo_url: str, sha: str, workspace: Path, *,
                 image: str = GIT_IMAGE, timeout_s: float = 600.0) -> StageSpec:
    """Fetch exactly `sha` (shallow when the server allows fetching by id) into the
    workspace, which is the task's working directory on EFS."""
    url, rev = shlex.quote(repo_url), shlex.quote(sha)
    command = (
        "set -eu; git init -q .; "
        f"git fetch -q --depth 1 {url} {rev} || git fetch -q {url}; "
        f"git checkout -q --detach {rev}; git log -1 --format='checked out %H %s'")
    return StageSpec(run_id=run_id, stage=STAGE_PREPARE, service=service, image=image,
                     command=command, workspace=workspace, timeout_s=timeout_s,
                     labels=stage_labels(run_id, STAGE_PREPARE, service))


def build_spec(run_id: int, service: str, workspace: Path, *, image_repository: str,
               sha: str, dockerfile: str = "Dockerfile", context: str = ".",
               mode: BuildMode = "docker", image: str | None = None,
               timeout_s: float = 1800.0, push: bool = True) -> StageSpec:
    """Build the service's Dockerfile at `sha` and push `<repository>:<sha>` (unless
    `push` is False: a pull request's build only proves the image builds)."""
    target = shlex.quote(f"{image_repository}:{sha}")
    ctx, dfile = shlex.quote(context), shlex.quote(f"{context.rstrip('/')}/{dockerfile}")
    if mode == "docker":
        command = f"set -eu; docker build --pull -t {target} -f {dfile} {ctx}"
        if push:
            command += f"; docker push {target}"
        uses_socket, default_image = True, DOCKER_CLI_IMAGE
    else:
        # kaniko resolves paths itself: give it absolute ones under the workspace.
        command = ('set -eu; /kaniko/executor --context "dir://$SEAMLESS_WORKSPACE/"'
                   f"{ctx} --dockerfile \"$SEAMLESS_WORKSPACE/\"{dfile} "
                   f"--destination {target} --cache=true" + ("" if push else " --no-push"))
        uses_socket, default_image = False, KANIKO_IMAGE
    return StageSpec(run_id=run_id, stage=STAGE_BUILD, service=service,
                     image=image or default_image, command=command, workspace=workspace,
                     timeout_s=timeout_s, mount_docker_socket=uses_socket,
                     labels=stage_labels(run_id, STAGE_BUILD, service))
