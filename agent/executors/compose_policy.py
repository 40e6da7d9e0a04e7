"""What a repository's compose file may ask of the host: nothing outside its workspace
and its own project. Checked before `up`, on the files compose would read and on the
resolved config (`docker compose config`), so interpolation, `extends` and relative
paths cannot hide a host mount. An admin can opt one compose service in per key
(`ServiceConfig.compose_opt_ins`); everything else is refused with the service and key."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from agent.executors.repo_paths import PathEscape, check_build_context, inside, missing

MAX_COMPOSE_BYTES = 1024 * 1024
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
# Namespace modes that join the host's (or another container's outside the project).
_HOST_MODES = {"network_mode": "host", "pid": "host", "ipc": "host", "uts": "host",
               "userns_mode": "host", "cgroup": "host"}
_NONEMPTY = ("cap_add", "devices", "device_cgroup_rules", "external_links", "cgroup_parent")


class ComposeRefused(ValueError):
    pass


def check_compose(command: tuple[str, ...], workspace: Path, compose_rel: str,
                  project: str, env: dict[str, str],
                  opt_ins: dict[str, list[str]]) -> tuple[Path, list[str], dict[str, Any]]:
    """The compose file (inside the checkout), the opt-ins it used and the config as
    compose resolved it; raises ComposeRefused with every problem found."""
    try:
        compose_file = inside(workspace, compose_rel, "compose file")
    except PathEscape as exc:
        raise ComposeRefused(str(exc)) from None
    if not compose_file.is_file():
        raise ComposeRefused(f"compose file: {missing(workspace, compose_rel)}")
    raw = _load(compose_file.read_bytes()[:MAX_COMPOSE_BYTES + 1], compose_rel)
    problems = list(_file_problems(workspace, compose_file, raw, depth=0))
    if problems:  # before `config`: it would read those files
        raise ComposeRefused(_message(problems))
    resolved = _resolved(command, workspace, compose_file, project, env)
    problems, used = [], []
    for service, key, problem in _config_problems(workspace, resolved):
        if key in opt_ins.get(service, []):
            used.append(f"{service}: {key}")
        else:
            problems.append(f"service {service!r}: {key}: {problem}")
    if problems:
        raise ComposeRefused(_message(problems, hint=True))
    return compose_file, used, resolved


def _message(problems: list[str], hint: bool = False) -> str:
    text = "compose file refused: " + "; ".join(problems)
    if hint:
        text += (" (the workspace and the project's own networks and volumes are all a "
                 "compose service gets; an admin can opt a service in per key with the "
                 "service setting compose_opt_ins, e.g. {\"app\": [\"volumes\"]})")
    return text


def _load(data: bytes, name: str) -> dict[str, Any]:
    if len(data) > MAX_COMPOSE_BYTES:
        raise ComposeRefused(f"compose file {name!r} is over {MAX_COMPOSE_BYTES // 1024} KB")
    try:
        loaded = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise ComposeRefused(f"compose file {name!r} is not valid YAML ({where}{problem})"
                             ) from None
    if not isinstance(loaded, dict):
        raise ComposeRefused(f"compose file {name!r} is not a mapping of services")
    return loaded


def _paths(value: Any) -> list[str]:
    """env_file: a string, a list of strings, or (v2) a list of {path: …}."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("path")
        if isinstance(item, str):
            out.append(item)
    return out


def _file_problems(workspace: Path, compose_file: Path, raw: dict[str, Any],
                   depth: int) -> Iterator[str]:
    """Files compose reads while resolving: `.env`, `env_file`, `extends` (recursively)."""
    base = compose_file.parent
    if depth == 0 and (base / ".env").is_symlink():
        yield from _escape(workspace, ".env", ".env", base)
    services = raw.get("services") if isinstance(raw.get("services"), dict) else {}
    for name, service in (services or {}).items():
        if not isinstance(service, dict):
            continue
        for path in _paths(service.get("env_file")):
            yield from _escape(workspace, path, f"service {name!r}: env_file", base)
        extends = service.get("extends")
        if isinstance(extends, dict) and isinstance(extends.get("file"), str):
            problems = list(_escape(workspace, extends["file"], f"service {name!r}: extends",
                                    base))
            yield from problems
            target = base / extends["file"]
            if not problems and depth < 5 and target.is_file():
                yield from _file_problems(workspace, target,
                                          _load(target.read_bytes(), extends["file"]), depth + 1)


def _escape(workspace: Path, path: str, what: str, base: Path) -> Iterator[str]:
    try:
        inside(workspace, path, what, base=base)
    except PathEscape as exc:
        yield str(exc)


def _resolved(command: tuple[str, ...], workspace: Path, compose_file: Path, project: str,
              env: dict[str, str]) -> dict[str, Any]:
    try:
        proc = subprocess.run([*command, "-p", project, "-f", str(compose_file), "config"],
                              cwd=workspace, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise ComposeRefused("`compose config` gave no answer within 60 s") from None
    if proc.returncode != 0:
        error = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
        raise ComposeRefused(f"the compose file is invalid (compose config: {error})")
    return _load(proc.stdout, "resolved by compose config")


def _config_problems(workspace: Path, config: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(compose service, key, problem) for everything reaching past the project."""
    volumes = config.get("volumes") or {}
    networks = config.get("networks") or {}
    for name, service in (config.get("services") or {}).items():
        if not isinstance(service, dict):
            continue
        if service.get("privileged"):
            yield name, "privileged", "privileged containers reach the host"
        for key, host in _HOST_MODES.items():
            mode = str(service.get(key) or "")
            if mode == host or mode.startswith("container:"):
                yield name, key, f"{mode!r} shares a namespace outside the project"
        for key in _NONEMPTY:
            if service.get(key):
                yield name, key, f"{service[key]!r} is not allowed"
        for opt in service.get("security_opt") or []:
            if "unconfined" in str(opt) or "disable" in str(opt):
                yield name, "security_opt", f"{opt!r} turns off confinement"
        for source in service.get("volumes_from") or []:
            if str(source).startswith("container:"):
                yield name, "volumes_from", f"{source!r} is a container outside the project"
        for mount in service.get("volumes") or []:
            yield from _mount_problems(workspace, name, mount, volumes)
        for net in _service_networks(service):
            spec = networks.get(net) or {}
            if isinstance(spec, dict) and spec.get("external"):
                yield name, "networks", f"{net!r} is an external network, outside the project"
        build = service.get("build")
        context = build.get("context") if isinstance(build, dict) else build
        if isinstance(context, str) and "://" not in context:
            dockerfile = build.get("dockerfile") if isinstance(build, dict) else None
            try:  # the same rules as the Build stage: no symlink out, as far as it is sent
                check_build_context(workspace, context, str(dockerfile or "Dockerfile"))
            except PathEscape as exc:
                yield name, "build", str(exc)
    for section in ("secrets", "configs"):
        for item, spec in (config.get(section) or {}).items():
            if isinstance(spec, dict) and isinstance(spec.get("file"), str):
                for problem in _escape(workspace, spec["file"], f"{section}.{item}.file",
                                       workspace):
                    yield "*", section, problem


def _service_networks(service: dict[str, Any]) -> list[str]:
    nets = service.get("networks") or []
    return list(nets) if isinstance(nets, (list, dict)) else []


def _mount_problems(workspace: Path, service: str, mount: Any,
                    volumes: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    if isinstance(mount, dict):
        kind, source = mount.get("type"), str(mount.get("source") or "")
    else:
        source = str(mount).split(":", 1)[0] if ":" in str(mount) else ""
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    if kind == "bind":
        real = os.path.realpath(os.path.expanduser(source))
        if real in DOCKER_SOCKETS or source in DOCKER_SOCKETS or real.endswith("/docker.sock"):
            yield service, "docker_socket", f"{source} is the Docker socket (root on the host)"
            return
        root = os.path.realpath(workspace)
        if not (real == root or real.startswith(root + os.sep)):
            yield service, "volumes", f"host path {source} is outside the workspace"
    elif kind == "volume" and source:
        spec = volumes.get(source) or {}
        if isinstance(spec, dict):
            opts = spec.get("driver_opts") or {}
            if spec.get("external"):
                yield service, "volumes", f"{source!r} is an external volume, outside the project"
            elif isinstance(opts, dict) and (opts.get("device") or "bind" in str(opts.get("o"))):
                yield service, "volumes", (f"volume {source!r} binds host path "
                                           f"{opts.get('device')}")
