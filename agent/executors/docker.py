"""Stages in sibling containers on the host's Docker engine.

One container per stage, named and labelled deterministically (see base.py) so
a restarted agent finds it again. The workspace is bind-mounted at /workspace
by its host path. Output is read in a separate thread, from an attach made
before the start or, on a re-attach, from the container's log (docker_logs.py,
docker_follow.py). Picking a container up again after an agent restart or an
engine outage is docker_reattach.py's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import docker

from agent.docker_client import socket_path
from agent.executors.base import (
    BuildSpec,
    IntegrationSpec,
    StageResult,
    StageSpec,
    StateSaver,
    agent_label,
)
from agent.executors.build import build_image
from agent.executors.caches import MOUNT as CACHE_MOUNT
from agent.executors.caches import Caches, cache_env
from agent.executors.compose import (
    check_ahead,
    project_name,
    remove_project,
    run_integration,
)
from agent.executors.docker_follow import ContainerOutput
from agent.executors.docker_logs import open_attach_stream, open_log_stream
from agent.executors.docker_prepared import ReadyContainers, Reaper
from agent.executors.docker_reattach import Reattacher, restarted, waited_in_vain
from agent.executors.engine_errors import EngineErrors, EngineGone, engine_error
from agent.executors.installed_deps import Choice, InstalledDeps
from agent.executors.secret_files import MOUNT as SECRETS_MOUNT
from agent.executors.secret_files import SecretFiles, SecretFilesError
from agent.executors.socket_stages import sweep
from agent.logs import StageLog

log = logging.getLogger(__name__)

MANAGED = "io.seamless.managed=1"
DOCKER_SOCKET = "/var/run/docker.sock"
REMOVE_ATTEMPTS = 5


class _ImageMissing(RuntimeError):
    """The stage image is not on the engine and could not be pulled: the message says why."""


def looks_like_registry(image: str) -> bool:
    """Only refs naming a registry host are worth a pull here (no Docker Hub)."""
    first, sep, _ = image.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


class DockerExecutor:
    name = "docker"

    def __init__(self, client: docker.DockerClient, managed_label: str = MANAGED,
                 instance: str = "", caches: Caches | None = None,
                 docker_host: str | None = None, engine_wait_s: float = 120.0,
                 outages: Callable[[], int] = lambda: 0) -> None:
        """`docker_host`: the engine `client` talks to (agent config), for what reaches
        it outside the SDK: the compose CLI, a stage's mounted socket. `engine_wait_s`:
        how long a stage waits for an engine that stopped answering under it. `outages`:
        changes when an engine outage begins or ends (the agent's engine watch)."""
        self.client = client
        self.outages = outages
        self.docker_host = docker_host
        self._unremoved: set[str] = set()  # removals the engine refused while it was away
        self.caches = caches  # per-service dependency caches, mounted at /cache
        if caches is not None and caches.root_remover is None:
            caches.root_remover = self.remove_as_root
        self.installed: InstalledDeps | None = None  # what stages installed, kept
        if caches is not None and caches.installed_keep > 0:
            self.installed = caches.installed = InstalledDeps(
                client.api, caches.installed_markers, caches.installed_keep, instance,
                caches.max_bytes)
        self.api = client.api
        self.output = ContainerOutput(self.api)
        self.reattacher = Reattacher(self.api, self.output, engine_wait_s)
        self.instance = instance
        # The label that marks this agent's stage containers (find, cleanup): two agents
        # sharing one engine each use their own instance id.
        self.managed_label = agent_label(instance) if instance else managed_label
        self.secret_files = SecretFiles(instance)
        self.reaper = Reaper(self._remove)
        self._ready = ReadyContainers(lambda spec: self._create(spec, None),
                                      self._discard_made_ahead)

    # -- run ---------------------------------------------------------------------------
    def run(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
            save_state: StateSaver) -> StageResult:
        installed = self._installed_choice(spec, log)
        spec = self.installed.apply(spec, installed) if self.installed else spec
        result: StageResult | None = None
        try:
            try:
                container_id = self._ready.take(spec) or self._create(spec, log)
            except docker.errors.APIError:
                raise
            except EngineErrors as exc:  # no answer: wait for the engine, then once more
                give_up = time.monotonic() + self.reattacher.engine_wait_s
                waited = self.reattacher.when_back("", cancel, give_up, log, exc)
                if isinstance(waited, StageResult):
                    self._drop_secret_files(spec)
                    return waited
                container_id = self._create(spec, log)
        except (_ImageMissing, SecretFilesError) as missing:
            log.system(str(missing))
            self._drop_secret_files(spec)
            return StageResult(exit_code=None, error=str(missing))
        except EngineErrors as exc:
            log.system(engine_error(exc))
            self._drop_secret_files(spec)
            return StageResult(exit_code=None, error=engine_error(exc))
        save_state({"container_id": container_id})
        if spec.secret_files:
            log.system(f"secrets as files in {SECRETS_MOUNT}: "
                       f"{', '.join(sorted(spec.secret_files))}")
        deadline = time.monotonic() + spec.timeout_s
        try:
            attached = open_attach_stream(self.api, container_id)
            self.api.start(container_id)
            if attached is None:  # an engine on TCP: follow the log from its start
                attached = open_log_stream(self.api, container_id, follow=True)
                result = self.output.follow(container_id, spec, log, cancel, attached)
            else:
                result = self.output.follow(container_id, spec, log, cancel, attached,
                                            timestamps=False)
            if self.reattacher.killed_by_engine_stop(container_id, result):
                raise EngineGone("the Docker engine is stopping")
            return result
        except docker.errors.APIError as exc:  # the engine answered: a refusal
            log.system(engine_error(exc))
            return StageResult(exit_code=None, error=engine_error(exc))
        except EngineErrors as exc:  # the engine stopped answering
            return self.reattacher.after_engine_loss(container_id, spec, log, cancel, exc,
                                                     deadline)
        finally:
            if spec.network:  # on a compose network: gone before the project's teardown
                self._remove(container_id)
            elif self.installed and installed and self._keeps_installed(installed, result):
                self.installed.save_later(container_id, spec, installed, self.reaper.submit)
            else:
                self.reaper.submit(container_id)
            self._drop_secret_files(spec)
            if spec.mount_docker_socket and spec.container_name:
                self._sweep_started(spec, log)
            if self.caches is not None and spec.service:  # off the stage's critical path
                threading.Thread(target=self.caches.trim, args=(spec.service, spec.image),
                                 daemon=True, name=f"cache-trim-{spec.service}").start()

    def _installed_choice(self, spec: StageSpec, log: StageLog) -> Choice | None:
        """The installed dependencies this stage starts from (said in its log)."""
        if self.installed is None:
            return None
        try:
            choice = self.installed.choose(spec)
        except EngineErrors:  # the stage's own calls find out and say so
            return None
        if choice is not None:
            log.system(self.installed.describe(spec, choice))
        return choice

    @staticmethod
    def _keeps_installed(choice: Choice | None, result: StageResult | None) -> bool:
        """A trusted stage that succeeded on the plain stage image: keep what it installed."""
        return bool(choice and choice.trusted and choice.image is None and result is not None
                    and result.ok)

    def build(self, spec: BuildSpec, log: StageLog, cancel: threading.Event) -> StageResult:
        """The Build stage on this engine (its build cache), pushing when asked. Cut off by
        an engine restart: fails saying so (`engine_restarted`), once the engine answers
        and the dead build's intermediate containers are removed."""
        started: list[str] = []
        outages = self.outages()
        result = build_image(self.client, spec, log, cancel, started)
        if result.ok or result.cancelled or not self._cut_off(outages):
            return result
        unanswered = self.reattacher.wait_back(log, cancel, "the build")
        if unanswered is not None:
            return unanswered
        for container_id in started:
            self._remove(container_id)
        return restarted(log, "the build was cut off (a build again starts from the "
                              "layer cache)")

    def integration(self, spec: IntegrationSpec, log: StageLog, cancel: threading.Event
                    ) -> StageResult:
        """A compose project on this engine, the test in a container on its network. Cut
        off by an engine restart: fails saying so (`engine_restarted`), once the engine
        answers and what the project left there is removed."""
        outages = self.outages()
        result = run_integration(self.client, self, spec, log, cancel,
                                 docker_host=self.docker_host)
        if result.ok or result.cancelled or waited_in_vain(result) or not (
                result.engine_restarted or self._cut_off(outages)):
            return result  # (a test container that waited for the engine in vain: done)
        unanswered = self.reattacher.wait_back(log, cancel, "the compose test")
        if unanswered is not None:
            return unanswered
        try:
            left = remove_project(self.client, project_name(spec.run_id, spec.instance))
        except EngineErrors as exc:  # gone again: the cleanup at the next start takes it
            log.system(f"compose: could not remove the project: {engine_error(exc)}")
            left = []
        if left:
            log.system(f"compose: removed what the cut-off attempt left: {', '.join(left)}")
        if result.engine_restarted:
            return result
        return restarted(log, "the compose project was cut off")

    def compose_ahead(self, spec: IntegrationSpec) -> None:
        """`compose config` and its check started now, off Integration Test's path."""
        check_ahead(spec, docker_host=self.docker_host)

    def _cut_off(self, outages_before: int) -> bool:
        """After a failure: the engine does not answer now, or went away (and maybe came
        back already) since the work began."""
        return self.reattacher.gone() or self.outages() != outages_before

    def _sweep_started(self, spec: StageSpec, log: StageLog) -> None:
        try:
            removed = sweep(self.client, spec.container_name)
        except EngineErrors as exc:
            log.system(f"could not remove what the stage started: {engine_error(exc)}")
            return
        if removed:
            log.system(f"removed what the stage started: {', '.join(sorted(removed))}")

    def _secrets_mount(self, spec: StageSpec) -> str:
        """Write the stage's secret files (owned by the image's user); their directory."""
        try:
            user = str((self.api.inspect_image(spec.image).get("Config") or {}).get("User") or "")
        except docker.errors.ImageNotFound:
            user = ""  # pulled on create; root's files until then
        return str(self.secret_files.write(spec.run_id, _files_key(spec), spec.secret_files,
                                           user))

    def _discard_made_ahead(self, container_id: str) -> None:
        """A container made ahead and never used: removed, with its secret files."""
        try:
            info = self.api.inspect_container(container_id)
            run = (info["Config"].get("Labels") or {}).get("io.seamless.run", "")
            if run.isdigit():
                self.secret_files.remove(int(run), info["Name"].lstrip("/"))
        except EngineErrors:  # gone already: the cleanup at the next start sweeps the rest
            pass
        self.reaper.submit(container_id)

    def _drop_secret_files(self, spec: StageSpec) -> None:
        if spec.secret_files:
            self.secret_files.remove(spec.run_id, _files_key(spec))

    def remove_as_root(self, base: Path, paths: list[str], image: str) -> None:
        """Remove `paths` (relative to the cache directory `base`) as root, in a short
        container of `image` with only `base` mounted: what a stage wrote as root into a
        cache an agent running as its own user cannot remove."""
        inside = [f"{CACHE_MOUNT}/{p}" for p in paths
                  if p and not p.startswith("/") and ".." not in Path(p).parts]
        for start in range(0, len(inside), 500):  # bounded command lines
            self.client.containers.run(
                image, ["rm", "-rf", "--", *inside[start:start + 500]], user="0",
                volumes={str(base): {"bind": CACHE_MOUNT, "mode": "rw"}}, remove=True,
                network_disabled=True, labels={self.managed_label.split("=")[0]:
                                               self.managed_label.partition("=")[2]})

    def precreate(self, spec: StageSpec) -> None:
        """Create the container of a stage expected to run next, in the background (in
        the installed dependencies its stage used last: the checkout may not be there)."""
        try:
            spec = self.installed.guess(spec) if self.installed else spec
        except EngineErrors:
            pass  # the stage itself finds out and says so
        self._ready.prepare(spec)

    def discard_ready(self, run_id: int) -> None:
        self._ready.discard_run(run_id)

    def ensure_image(self, image: str, log: StageLog) -> str | None:
        """None when the image is there (pulled if it names a registry); else why not."""
        try:
            self.api.inspect_image(image)
            return None
        except docker.errors.ImageNotFound:
            pass
        if looks_like_registry(image):
            log.system(f"image {image!r} is not on this engine: pulling it")
            try:
                self.client.images.pull(image)
                return None
            except docker.errors.APIError as exc:
                return (f"image {image!r} is not on this engine and could not be pulled "
                        f"({exc.explanation or exc})")
        return (f"image {image!r} is not on this engine and cannot be pulled here: "
                "build it or load it")

    def _create(self, spec: StageSpec, log: StageLog | None) -> str:
        """Create the stage's container. The common case costs one call: a missing image
        or a leftover of the same name (an earlier attempt) is dealt with on the error.
        Without a log (ahead of time) a missing image is not pulled."""
        binds = {str(spec.workspace): {"bind": "/workspace", "mode": "rw"}}
        if spec.mount_docker_socket:  # opt-in: root-equivalent access to the host engine
            binds[socket_path(self.docker_host)] = {"bind": DOCKER_SOCKET, "mode": "rw"}
        environment = spec.env
        if self.caches is not None and spec.service:
            binds[str(self.caches.dir_for(spec.service))] = {"bind": CACHE_MOUNT, "mode": "rw"}
            environment = {**cache_env(), **spec.env}  # the service's own settings win
        if spec.secret_files:  # a tmpfs directory of the host, read-only in the stage
            binds[self._secrets_mount(spec)] = {"bind": SECRETS_MOUNT, "mode": "ro"}
        host_config = self.api.create_host_config(binds=binds, network_mode=spec.network)

        def create() -> str:
            created = self.api.create_container(
                spec.image, command=["/bin/sh", "-c", spec.command],
                name=spec.container_name or None, labels=spec.labels, environment=environment,
                working_dir=spec.workdir, host_config=host_config, detach=True)
            try:
                for network in spec.extra_networks:
                    self.api.connect_container_to_network(created["Id"], network)
            except docker.errors.APIError:
                self._remove(created["Id"])
                raise
            return str(created["Id"])

        for _ in range(2):
            try:
                return create()
            except docker.errors.ImageNotFound:
                if log is None:
                    raise
                missing = self.ensure_image(spec.image, log)
                if missing:
                    raise _ImageMissing(missing) from None
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or not spec.container_name:
                    raise
                self._remove_by_name(spec.container_name)
        return create()

    # -- re-attach after a restart ----------------------------------------------------------
    def reattach(self, spec: StageSpec, log: StageLog, cancel: threading.Event,
                 state: dict[str, Any] | None, since: datetime | None,
                 save_state: StateSaver | None = None) -> StageResult | None:
        # The container id is all the state there is, and it does not change.
        container = self._find(spec, state)
        if container is None:
            return None
        container_id = container["Id"]
        # `since` is not needed: the log is read again from its start, and the lines
        # stored before the restart are skipped by count (StageLogWriter.rewind).
        try:
            return self.reattacher.existing(container_id, spec, log, cancel)
        finally:
            self.reaper.submit(container_id)
            self._drop_secret_files(spec)

    def remove_unremoved(self) -> bool:
        """Retry the removals the engine refused while it was away (on its return)."""
        for container_id in list(self._unremoved):
            self._remove(container_id)
        return not self._unremoved

    def _find(self, spec: StageSpec, state: dict[str, Any] | None) -> dict[str, Any] | None:
        wanted = [f"{k}={v}" for k, v in spec.labels.items()] or [self.managed_label]
        candidates = []
        if state and state.get("container_id"):
            candidates.append({"id": state["container_id"]})
        if spec.container_name:
            candidates.append({"name": f"^/{spec.container_name}$"})
        for filters in candidates:
            found = self.api.containers(all=True, filters={**filters, "label": wanted})
            if found:
                return dict(found[0])
        return None

    # -- cleanup -----------------------------------------------------------------------------
    def cleanup(self, keep_run_ids: set[int]) -> list[str]:
        """Stage containers and compose projects (`seamless-run<id>`) of runs not kept.
        Deployed app containers carry no run label and are never touched."""
        removed: list[str] = []
        labels = [self.managed_label, "io.seamless.run"]
        for c in self.api.containers(all=True, filters={"label": labels}):
            run = c["Labels"].get("io.seamless.run", "")
            if run.isdigit() and int(run) not in keep_run_ids:
                self._remove(c["Id"])
                removed.append(c["Names"][0].lstrip("/"))
        from agent.executors.compose import remove_stale_projects

        removed += remove_stale_projects(self.client, keep_run_ids, self.instance)
        if self.installed is not None:
            removed += self.installed.sweep_helpers()
        self.secret_files.remove_runs_except(keep_run_ids)
        return removed

    # -- helpers -------------------------------------------------------------------------------
    def _remove(self, container_id: str) -> None:
        # Tried a few times: just after an engine restart a pooled connection may be stale
        # and the engine may refuse while it settles (the reaper's thread, off any stage).
        for attempt in range(REMOVE_ATTEMPTS):
            try:
                self.api.remove_container(container_id, force=True, v=True)
                self._unremoved.discard(container_id)
                return
            except docker.errors.NotFound:
                self._unremoved.discard(container_id)
                return
            except EngineErrors as exc:
                if attempt == REMOVE_ATTEMPTS - 1:
                    self._unremoved.add(container_id)  # again when the engine returns
                    log.warning("could not remove container %s: %s", container_id[:12], exc)
                    return
                time.sleep(1.0)

    def _remove_by_name(self, name: str) -> None:
        if name:
            for c in self.api.containers(all=True, filters={"name": f"^/{name}$"}):
                self._remove(c["Id"])


def _files_key(spec: StageSpec) -> str:
    return spec.container_name or spec.stage.lower().replace(" ", "-")

