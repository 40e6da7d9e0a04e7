"""The Build stage: `docker build` through the SDK (the host's build cache), live
output into the stage log, then an optional push of the sha-tagged image."""

from __future__ import annotations

import re
import threading
from typing import Any

import docker
import requests
import urllib3
from docker.utils import parse_repository_tag

from agent.executors.base import BuildSpec, StageResult
from agent.executors.engine_errors import api_error
from agent.logs import StageLog

_MISSING_BASE = ("pull access denied", "not found", "manifest unknown",
                 "repository does not exist", "no such image", "no such host", "dial tcp")
_STEP = re.compile(r"^Step (\d+/\d+) : (.*)")
_RUNNING_IN = re.compile(r"^ ---> Running in ([0-9a-f]{12,64})$")


class _Steps:
    """Says, once per Dockerfile step, whether the host's layer cache served it."""

    def __init__(self, log: StageLog, containers: list[str] | None = None) -> None:
        self.log = log
        self.containers = containers if containers is not None else []
        self.current: tuple[str, str] | None = None
        self.cached = False
        self.served = self.total = 0

    @property
    def instruction(self) -> str:
        return self.current[1] if self.current else ""

    def line(self, text: str) -> None:
        if match := _STEP.match(text):
            self.close()
            self.current, self.cached = (match.group(1), match.group(2).strip()), False
        elif text.strip() == "---> Using cache":
            self.cached = True
        elif match := _RUNNING_IN.match(text):
            self.containers.append(match.group(1))

    def close(self) -> None:
        if self.current is None:
            return
        number, instruction = self.current
        self.current = None
        if instruction.upper().startswith("FROM "):
            self.log.system(f"build step {number} base image: {instruction}")
            return
        self.total += 1
        self.served += self.cached
        self.log.system(f"build step {number} {'cached' if self.cached else 'ran'}: "
                        f"{instruction}")

    def summary(self) -> str:
        return f"build: {self.served} of {self.total} steps from the layer cache"


def _error_of(chunk: dict[str, Any]) -> str | None:
    if "error" in chunk or "errorDetail" in chunk:
        detail = chunk.get("errorDetail") or {}
        return str(chunk.get("error") or detail.get("message") or detail).strip()
    return None


def _fail(log: StageLog, message: str) -> StageResult:
    log.system(message)
    return StageResult(exit_code=1, error=message)


def build_image(client: docker.DockerClient, spec: BuildSpec, log: StageLog,
                cancel: threading.Event, containers: list[str] | None = None) -> StageResult:
    """`containers`: gets the ids of the build's intermediate containers (the engine
    removes them itself, unless it stops mid-build)."""
    log.system(f"building {spec.image} from {spec.dockerfile} in {spec.context_dir}")
    try:
        result = _build(client, spec, log, cancel, containers)
        if result is not None:
            return result
        if spec.push:
            result = _push(client, spec, log, cancel)
            if result is not None:
                return result
    except docker.errors.APIError as exc:
        return _fail(log, f"build failed: {api_error(exc)}")
    except (docker.errors.DockerException, requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError) as exc:  # a connection cut mid-stream: urllib3's
        return _fail(log, f"the Docker engine failed during the build "
                          f"({exc.__class__.__name__}: {exc})")
    return StageResult(exit_code=0)


def _build(client: docker.DockerClient, spec: BuildSpec, log: StageLog,
           cancel: threading.Event, containers: list[str] | None) -> StageResult | None:
    stream = client.api.build(path=str(spec.context_dir), dockerfile=spec.dockerfile,
                              tag=spec.image, rm=True, forcerm=True, decode=True,
                              labels=spec.labels or None)
    built = False
    steps = _Steps(log, containers)
    try:
        for chunk in stream:
            if cancel.is_set():  # closing the request makes dockerd stop the build
                log.system("cancelled: build stopped")
                return StageResult(exit_code=None, cancelled=True, error="cancelled")
            error = _error_of(chunk)
            if error:
                hint = ""
                at_from = steps.instruction.upper().startswith("FROM ")
                if at_from or any(marker in error.lower() for marker in _MISSING_BASE):
                    hint = (" — base images must already exist on this engine (nothing is "
                            "pulled here): build or load the FROM image first")
                return _fail(log, f"build failed: {error}{hint}")
            if "stream" in chunk:
                text = str(chunk["stream"])
                log.write_chunk(text.encode())
                for line in text.splitlines():
                    steps.line(line)
            elif "aux" in chunk and "ID" in (chunk["aux"] or {}):
                built = True
    finally:
        stream.close()
    if not built:
        return _fail(log, "build failed: the engine reported no image")
    steps.close()
    log.system(steps.summary())
    log.system(f"built {spec.image}")
    return None


def _push(client: docker.DockerClient, spec: BuildSpec, log: StageLog,
          cancel: threading.Event) -> StageResult | None:
    repository, tag = parse_repository_tag(spec.image)
    log.system(f"pushing {spec.image}")
    stream = client.api.push(repository, tag=tag, stream=True, decode=True)
    try:
        for chunk in stream:
            if cancel.is_set():
                log.system("cancelled: push stopped")
                return StageResult(exit_code=None, cancelled=True, error="cancelled")
            # The push API answers 200 and reports failures inside the stream.
            error = _error_of(chunk)
            if error:
                return _fail(log, f"push of {spec.image} failed: {error}")
            if "status" in chunk and "progress" not in chunk:
                layer = f"{chunk['id']}: " if chunk.get("id") else ""
                log.system(f"push: {layer}{chunk['status']}")
    finally:
        stream.close()
    log.system(f"pushed {spec.image}")
    return None
