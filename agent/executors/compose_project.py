"""The compose file a run uses: the repository's file as compose itself resolved it
(`config`, in compose_policy.py: interpolation, `.env`, `env_file:`, profiles, absolute
paths), rewritten so that runs never collide and the tested image is Build's.

What changes, and why (each change is said in the stage log):
- published ports: fixed host ports (`"8000:8000"`) collide between two runs and with
  the host; each becomes an ephemeral port on 127.0.0.1 (nothing binds 0.0.0.0);
- `container_name:`: a fixed name collides the same way; dropped;
- the service built from Build's context and Dockerfile runs Build's sha image instead
  of a second build (what passed here is what gets deployed);
- other `build:` services get a per-run image name and run label, removed with the run;
- every service carries the run's labels, so a sweep finds what a run started.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class RunCompose:
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what was changed, for the stage log
    built_images: list[str] = field(default_factory=list)  # per-run images compose builds
    tested_services: list[str] = field(default_factory=list)  # services given Build's image


def for_run(config: dict[str, Any], *, project: str, labels: dict[str, str],
            build_dockerfile: Path | None, image: str | None) -> RunCompose:
    """Rewrite a resolved config for one run. `build_dockerfile`: the Dockerfile Build used
    (absolute); `image`: the image it tagged, or None when there is none to reuse."""
    run = RunCompose(config=config)
    for name, service in sorted(config["services"].items()):
        if not isinstance(service, dict):
            continue
        if service.get("ports"):
            ports = list(dict.fromkeys(_loopback(p) for p in service["ports"]))
            run.notes.append(f"{name}: published ports {', '.join(ports)} "
                             "(ephemeral host ports on 127.0.0.1, so runs never collide)")
            service["ports"] = ports
        if "container_name" in service:
            run.notes.append(f"{name}: container_name {service.pop('container_name')!r} "
                             "dropped (a fixed name collides between runs)")
        service["labels"] = {**_as_dict(service.get("labels")), **labels}
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        if image and build_dockerfile and _dockerfile_of(build) == build_dockerfile:
            service.pop("build")
            service["image"] = image
            run.tested_services.append(name)
            run.notes.append(f"{name}: runs {image}, the image Build tagged (not built again)")
            continue
        tag = f"{project}-{name}:run".lower()
        build["labels"] = {**_as_dict(build.get("labels")), **labels}
        service["build"] = build
        service["image"] = tag
        run.built_images.append(tag)
    return run


def write(config: dict[str, Any]) -> Path:
    """The rewritten file, private to the agent (it may hold interpolated secrets)."""
    handle, path = tempfile.mkstemp(prefix="seamless-compose-", suffix=".yaml")
    with os.fdopen(handle, "w") as out:
        yaml.safe_dump(config, out, sort_keys=False)
    return Path(path)


def _dockerfile_of(build: dict[str, Any]) -> Path:
    context = Path(str(build.get("context", ".")))
    return (context / str(build.get("dockerfile") or "Dockerfile")).resolve()


def _as_dict(labels: Any) -> dict[str, str]:
    if isinstance(labels, dict):
        return {str(k): str(v) for k, v in labels.items()}
    if isinstance(labels, list):  # ["key=value", ...]
        return dict(str(item).partition("=")[::2] for item in labels)
    return {}


def _loopback(port: Any) -> str:
    """Any published-port form as an ephemeral host port on 127.0.0.1."""
    if isinstance(port, dict):
        target, protocol = str(port.get("target")), str(port.get("protocol") or "tcp")
    else:
        spec, _, protocol = str(port).partition("/")
        target = spec.rsplit(":", 1)[-1]
    return f"127.0.0.1::{target}/{protocol or 'tcp'}"
