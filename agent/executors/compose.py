"""The Integration Test stage with a compose file: bring the project up under a
per-run name (the file rewritten for the run: compose_project.py), run the test
command in a stage container joined to every network of the project, or as one
of its services (`compose run`), and always tear the project down."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

from agent.docker_client import cli_env
from agent.executors import compose_project
from agent.executors.base import (
    Executor,
    IntegrationSpec,
    StageResult,
    StateSaver,
    run_prefix,
)
from agent.executors.compose_ahead import ChecksAhead
from agent.executors.compose_policy import ComposeRefused, check_compose
from agent.executors.engine_errors import EngineErrors, engine_error
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


_AHEAD: ChecksAhead[tuple[Path, list[str], dict[str, Any]]] = ChecksAhead()


def check_ahead(spec: IntegrationSpec, docker_host: str | None = None) -> None:
    """Start the compose check of `spec` now (while Build runs); run_integration of the
    same spec takes its result instead of running `compose config` itself."""
    command = compose_command()
    if command is None:
        return  # run_integration says so
    project = project_name(spec.run_id, spec.instance)
    env = _compose_env(spec, docker_host)
    _AHEAD.start(_check_key(command, spec, project, env),
                 lambda: check_compose(command, spec.workspace, spec.compose_file, project,
                                       env, spec.opt_ins))


def _compose_env(spec: IntegrationSpec, docker_host: str | None) -> dict[str, str]:
    """The compose CLI's environment: the service's env and secrets reach compose's
    interpolation (and `.env` defaults)."""
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update(cli_env(docker_host))
    env.update(spec.test.env)
    env.update(spec.test.secret_files)  # interpolation sees them whatever `secrets_as` says
    env["SEAMLESS_IMAGE"] = spec.image
    return env


def _check_key(command: tuple[str, ...], spec: IntegrationSpec, project: str,
               env: dict[str, str]) -> tuple[object, ...]:
    """Everything check_compose reads besides the files."""
    return (command, str(spec.workspace), spec.compose_file, project,
            tuple(sorted(env.items())),
            tuple(sorted((k, tuple(v)) for k, v in spec.opt_ins.items())))


def run_integration(client: docker.DockerClient, executor: Executor, spec: IntegrationSpec,
                    log: StageLog, cancel: threading.Event,
                    save_state: StateSaver | None = None, docker_host: str | None = None
                    ) -> StageResult:
    """`docker_host`: the agent's engine, so the compose CLI reaches the same one."""
    command = compose_command()
    if command is None:
        return _fail(log, "neither `docker compose` (v2) nor `docker-compose` (v1) is "
                          "installed on the agent's host")
    project = project_name(spec.run_id, spec.instance)
    env = _compose_env(spec, docker_host)
    try:
        compose_file, opted_in, resolved = _AHEAD.take(
            _check_key(command, spec, project, env),
            lambda: check_compose(command, spec.workspace, spec.compose_file, project, env,
                                  spec.opt_ins))
    except ComposeRefused as exc:
        return _fail(log, str(exc))
    for allowed in opted_in:
        log.system(f"compose: opted in by an admin: {allowed}")
    labels = {"io.seamless.run": str(spec.run_id), "io.seamless.stage": spec.test.stage}
    run = compose_project.for_run(resolved, project=project, labels=labels,
                                  build_dockerfile=spec.build_dockerfile,
                                  image=spec.image if _image_exists(client, spec.image) else None)
    if spec.test_service and spec.test_service not in run.config["services"]:
        return _fail(log, f"integration_test_service {spec.test_service!r} is not a service of "
                          f"{spec.compose_file}; its services: "
                          f"{', '.join(sorted(run.config['services']))}")
    run_file = compose_project.write(run.config)
    base = [*command, "-p", project, "-f", str(run_file),
            "--project-directory", str(compose_file.parent)]
    try:
        log.system(f"compose: starting project {project} from {spec.compose_file} "
                   f"with SEAMLESS_IMAGE={spec.image}")
        for note in run.notes:
            log.system(f"compose: {note}")
        services = _started(run.config, env.get("COMPOSE_PROFILES", ""), spec.test_service)
        outcome = _compose([*base, "up", "-d", *services], spec.workspace, env, log, cancel,
                           600) if services else 0
        if cancel.is_set():
            return StageResult(exit_code=None, cancelled=True, error="cancelled")
        if outcome != 0:
            return _fail(log, f"compose up failed (exit code {outcome}): see the lines above")
        if spec.test_service:
            result = _run_service(client, base, spec, project, env, log, cancel)
        else:
            result = _run_container(client, executor, spec, project, log, cancel, save_state)
        if not result.ok and not result.cancelled:
            log.system("compose: state of the project after the failed test")
            _compose([*base, "ps"], spec.workspace, env, log, None, 60)
            _compose([*base, "logs", "--no-color", "--tail", "50"], spec.workspace, env, log,
                     None, 60)
        return result
    finally:
        _tear_down(client, base, project, spec.workspace, env, log)
        _remove_images(client, run.built_images)
        run_file.unlink(missing_ok=True)


def _tear_down(client: docker.DockerClient, base: list[str], project: str, cwd: Path,
               env: dict[str, str], log: StageLog) -> None:
    """The project's containers, networks and volumes removed through the engine's API
    (what `down -v --remove-orphans` removes, found by the project label). A test
    project's state is thrown away, so nothing waits for a graceful stop (an app deaf
    to SIGTERM held `down` for its whole timeout) and no compose CLI starts once more.
    `down` itself when the engine refuses a removal; the next cleanup retries the rest."""
    log.system(f"compose: tearing down {project}")
    try:
        removed = remove_project(client, project)
    except EngineErrors as exc:
        log.system(f"compose: {engine_error(exc)}; trying `down`")
        code = _compose([*base, "down", "-v", "--remove-orphans", "--timeout", "5"],
                        cwd, env, log, None, 180)
        if code != 0:
            log.system(f"compose down failed (exit code {code}); cleanup will retry")
        return
    if removed:
        log.system(f"compose: removed {', '.join(removed)}")


def _run_container(client: docker.DockerClient, executor: Executor, spec: IntegrationSpec,
                   project: str, log: StageLog, cancel: threading.Event,
                   save_state: StateSaver | None) -> StageResult:
    """The test command in a stage container on every network of the project."""
    networks = project_networks(client, project)
    if not networks:
        return _fail(log, f"compose project {project} has no network for the test container "
                          "to join (every service uses network_mode?)")
    log.system(f"compose: test container joins {', '.join(networks)}")
    test = dataclasses.replace(spec.test, network=networks[0],
                               extra_networks=tuple(networks[1:]))
    return executor.run(test, log, cancel, save_state or (lambda state: None))


def _run_service(client: docker.DockerClient, base: list[str], spec: IntegrationSpec,
                 project: str, env: dict[str, str], log: StageLog,
                 cancel: threading.Event) -> StageResult:
    """The test as a compose service: `compose run`, its exit code the stage's."""
    assert spec.test_service is not None
    args = [*base, "run", "--rm", "-T", spec.test_service]
    if spec.test.command:
        args += ["sh", "-c", spec.test.command]
    log.system(f"compose: running the test service {spec.test_service}")
    timeout = spec.test.timeout_s
    started = time.monotonic()
    code = _compose(args, spec.workspace, env, log, cancel, timeout, output="test")
    if cancel.is_set():
        _kill_one_offs(client, project)
        return StageResult(exit_code=None, cancelled=True, error="cancelled")
    if time.monotonic() - started >= timeout:
        _kill_one_offs(client, project)
        message = f"timed out after {timeout:g} s: test service {spec.test_service} killed"
        log.system(message)
        return StageResult(exit_code=None, timed_out=True, error=message)
    if code != 0:
        log.system(f"exit code {code}")
    return StageResult(exit_code=code)


def _started(config: dict[str, Any], profiles: str, test_service: str | None) -> list[str]:
    """The services `up` starts: those in no profile or an active one, not the test."""
    active = {p.strip() for p in profiles.split(",") if p.strip()}
    return [name for name, service in config["services"].items()
            if name != test_service and (not service.get("profiles")
                                         or active & set(service["profiles"]))]


def project_networks(client: docker.DockerClient, project: str) -> list[str]:
    """The project's own networks, `<project>_default` first."""
    label = f"com.docker.compose.project={project}"
    names = sorted(n["Name"] for n in client.api.networks(filters={"label": label}))
    return sorted(names, key=lambda n: n != f"{project}_default")


def _image_exists(client: docker.DockerClient, image: str) -> bool:
    try:
        client.api.inspect_image(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def _kill_one_offs(client: docker.DockerClient, project: str) -> None:
    label = [f"com.docker.compose.project={project}", "com.docker.compose.oneoff=True"]
    for c in client.api.containers(filters={"label": label}):
        try:
            client.api.kill(c["Id"])
        except docker.errors.APIError:
            pass  # exited meanwhile


def _remove_images(client: docker.DockerClient, images: list[str]) -> None:
    for image in images:
        try:
            client.api.remove_image(image, force=True)
        except docker.errors.APIError:
            pass  # never built (compose up failed first), or already gone
        except EngineErrors:  # the engine went away under the stage: nothing to ask
            return


def _fail(log: StageLog, message: str) -> StageResult:
    log.system(message)
    return StageResult(exit_code=None, error=message)


def _compose(args: list[str], cwd: Path, env: dict[str, str], log: StageLog,
             cancel: threading.Event | None, timeout_s: float, output: str = "compose") -> int:
    """Run one compose command, its output into the stage log; its exit code.
    `output="test"`: the lines are the test's own output, logged as such."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    reader = threading.Thread(target=_copy_lines, args=(proc, log, output), daemon=True)
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


def _copy_lines(proc: subprocess.Popen[bytes], log: StageLog, output: str) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        if line and output == "test":
            log.write(line)
        elif line:
            log.system(f"compose: {line}")


def remove_project(client: docker.DockerClient, project: str) -> list[str]:
    """Remove a compose project's containers, networks and volumes through the API."""
    label = f"com.docker.compose.project={project}"
    containers = client.api.containers(all=True, filters={"label": label})
    remove = functools.partial(_remove_container, client)
    if len(containers) > 1:  # at once, as `down` does: each is a kill and a removal
        with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
            gone = list(pool.map(remove, containers))
    else:
        gone = [remove(c) for c in containers]
    removed = [name for name in gone if name]
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


def _remove_container(client: docker.DockerClient, container: dict[str, Any]) -> str | None:
    """Its name, or None when it was gone already."""
    try:
        client.api.remove_container(container["Id"], force=True, v=True)
    except docker.errors.NotFound:
        return None
    return str(container["Names"][0].lstrip("/"))


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
