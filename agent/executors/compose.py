"""The Integration Test stage with a compose file: bring the project up under a
per-run name, run the test command in a stage container joined to the project's
network, and always tear the project down."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import docker

from agent.executors.base import (
    Executor,
    IntegrationSpec,
    StageResult,
    StateSaver,
    run_prefix,
)
from agent.executors.compose_policy import ComposeRefused, check_compose
from agent.logs import StageLog

_PROJECT = re.compile(r"^seamless-(?:([0-9a-f]+)-)?run(\d+)$")
_PASSED_ENV = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
               "DOCKER_TLS_VERIFY", "TMPDIR")


def project_name(run_id: int, instance: str = "") -> str:
    return run_prefix(instance, run_id)


@functools.cache
def compose_command() -> tuple[str, ...] | None:
    """`docker compose` (v2) when the plugin is there, else `docker-compose` (v1)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True,
                               timeout=30, check=False)
        if probe.returncode == 0:
            return ("docker", "compose")
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    return None


def run_integration(client: docker.DockerClient, executor: Executor, spec: IntegrationSpec,
                    log: StageLog, cancel: threading.Event,
                    save_state: StateSaver | None = None) -> StageResult:
    command = compose_command()
    if command is None:
        return _fail(log, "neither `docker compose` (v2) nor `docker-compose` (v1) is "
                          "installed on the agent's host")
    project = project_name(spec.run_id, spec.instance)
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env["SEAMLESS_IMAGE"] = spec.image
    try:
        compose_file, opted_in = check_compose(command, spec.workspace, spec.compose_file,
                                               project, env, spec.opt_ins)
    except ComposeRefused as exc:
        return _fail(log, str(exc))
    for allowed in opted_in:
        log.system(f"compose: opted in by an admin: {allowed}")
    base = [*command, "-p", project, "-f", str(compose_file)]
    try:
        log.system(f"compose: starting project {project} with SEAMLESS_IMAGE={spec.image}")
        code = _compose([*base, "up", "-d"], spec.workspace, env, log, cancel, 300)
        if cancel.is_set():
            return StageResult(exit_code=None, cancelled=True, error="cancelled")
        if code != 0:
            return _fail(log, f"compose up failed (exit code {code}): see the lines above")
        test = dataclasses.replace(spec.test, network=f"{project}_default")
        result = executor.run(test, log, cancel, save_state or (lambda state: None))
        if not result.ok and not result.cancelled:
            log.system("compose: state of the project after the failed test")
            _compose([*base, "ps"], spec.workspace, env, log, None, 60)
            _compose([*base, "logs", "--no-color", "--tail", "50"], spec.workspace, env, log,
                     None, 60)
        return result
    finally:
        log.system(f"compose: tearing down {project}")
        code = _compose([*base, "down", "-v", "--remove-orphans", "--timeout", "5"],
                        spec.workspace, env, log, None, 180)
        if code != 0:
            log.system(f"compose down failed (exit code {code}); cleanup will retry")
            remove_project(client, project)


def _fail(log: StageLog, message: str) -> StageResult:
    log.system(message)
    return StageResult(exit_code=None, error=message)


def _compose(args: list[str], cwd: Path, env: dict[str, str], log: StageLog,
             cancel: threading.Event | None, timeout_s: float) -> int:
    """Run one compose command, its output into the stage log; its exit code."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    reader = threading.Thread(target=_copy_lines, args=(proc, log), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None:
        if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
            proc.kill()
            log.system("compose: " + ("cancelled" if cancel is not None and cancel.is_set()
                                      else f"no answer after {timeout_s:g} s: stopped"))
        try:
            proc.wait(0.2)
        except subprocess.TimeoutExpired:
            pass
    reader.join(5)
    return proc.returncode


def _copy_lines(proc: subprocess.Popen[bytes], log: StageLog) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            log.system(f"compose: {line}")


def remove_project(client: docker.DockerClient, project: str) -> list[str]:
    """Remove a compose project's containers, networks and volumes through the API."""
    removed: list[str] = []
    label = f"com.docker.compose.project={project}"
    for c in client.api.containers(all=True, filters={"label": label}):
        try:
            client.api.remove_container(c["Id"], force=True, v=True)
            removed.append(c["Names"][0].lstrip("/"))
        except docker.errors.NotFound:
            pass
    for net in client.api.networks(filters={"label": label}):
        try:
            client.api.remove_network(net["Id"])
            removed.append(net["Name"])
        except docker.errors.NotFound:
            pass
    for vol in (client.api.volumes(filters={"label": label}) or {}).get("Volumes") or []:
        try:
            client.api.remove_volume(vol["Name"], force=True)
            removed.append(vol["Name"])
        except docker.errors.NotFound:
            pass
    return removed


def remove_stale_projects(client: docker.DockerClient, keep_run_ids: set[int],
                          instance: str = "") -> list[str]:
    """This agent's compose projects of runs not kept (left by a crash)."""
    projects = set()
    for c in client.api.containers(all=True, filters={"label": "com.docker.compose.project"}):
        projects.add(c["Labels"].get("com.docker.compose.project", ""))
    for net in client.api.networks(filters={"label": "com.docker.compose.project"}):
        projects.add((net.get("Labels") or {}).get("com.docker.compose.project", ""))
    removed: list[str] = []
    for project in sorted(projects):
        match = _PROJECT.match(project)
        if match and (match.group(1) or "") == instance and int(match.group(2)) not in keep_run_ids:
            removed += remove_project(client, project)
    return removed
