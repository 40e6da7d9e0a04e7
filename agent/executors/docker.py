"""Stages in sibling containers on the host's Docker engine.

One container per stage, named and labelled deterministically (see base.py) so
a restarted agent finds it again. The workspace is bind-mounted at /workspace
by its host path. Output is read in a separate thread, from an attach made
before the start or, on a re-attach, from the container's log (see
docker_logs.py); the wait for the reader after the container exits is bounded.
Cancel and timeout kill the container at once.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import requests

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
from agent.executors.compose import run_integration
from agent.executors.docker_logs import (
    ContainerLogStream,
    LogPump,
    open_attach_stream,
    open_log_stream,
)
from agent.executors.docker_prepared import ReadyContainers, Reaper
from agent.executors.engine_errors import engine_error
from agent.executors.secret_files import MOUNT as SECRETS_MOUNT
from agent.executors.secret_files import SecretFiles, SecretFilesError
from agent.executors.socket_stages import sweep
from agent.logs import StageLog

log = logging.getLogger(__name__)

MANAGED = "io.seamless.managed=1"
DOCKER_SOCKET = "/var/run/docker.sock"
EXIT_GRACE_S = 5.0  # how long a log stream may lag behind its exited container
POLL_S = 0.2
REMOVE_ATTEMPTS = 5
ENGINE_PROBE_S = 1.0  # how often a stage asks an engine that went away under it
# A container killed by the engine's stop may exit some seconds before its stream breaks
# (dockerd stops containers first, then its API): that long before counts as "with it".
_SLACK = timedelta(seconds=15)
ENGINE_STOP_CHECK_S = 30.0  # dockerd stops every container before its API

class EngineGone(RuntimeError):
    pass


class _ImageMissing(RuntimeError):
    """The stage image is not on the engine and could not be pulled: the message says why."""


EngineErrors = (requests.exceptions.RequestException, docker.errors.APIError, OSError, EngineGone)


def _seconds(value: float) -> str:
    return f"{value:g} s"


def looks_like_registry(image: str) -> bool:
    """Only refs naming a registry host are worth a pull here (no Docker Hub)."""
    first, sep, _ = image.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


class DockerExecutor:
    name = "docker"

    def __init__(self, client: docker.DockerClient, managed_label: str = MANAGED,
                 instance: str = "", caches: Caches | None = None,
                 docker_host: str | None = None, engine_wait_s: float = 120.0) -> None:
        """`docker_host`: the engine `client` talks to (agent config), for what reaches
        it outside the SDK: the compose CLI, a stage's mounted socket. `engine_wait_s`:
        how long a stage waits for an engine that stopped answering under it."""
        self.client = client
        self.docker_host = docker_host
        self.engine_wait_s = engine_wait_s
        self._unremoved: set[str] = set()  # removals the engine refused while it was away
        self.caches = caches  # per-service dependency caches, mounted at /cache
        if caches is not None and caches.root_remover is None:
            caches.root_remover = self.remove_as_root
        self.api = client.api
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
        try:
            try:
                container_id = self._ready.take(spec) or self._create(spec, log)
            except docker.errors.APIError:
                raise
            except EngineErrors as exc:  # no answer: wait for the engine, then once more
                waited = self._inspect_when_back("", cancel, time.monotonic() +
                                                 self.engine_wait_s, log, exc)
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
                result = self._follow(container_id, spec, log, cancel, attached)
            else:
                result = self._follow(container_id, spec, log, cancel, attached,
                                      timestamps=False)
            if self._killed_by_engine_stop(container_id, result):
                raise EngineGone("the Docker engine is stopping")
            return result
        except docker.errors.APIError as exc:  # the engine answered: a refusal
            log.system(engine_error(exc))
            return StageResult(exit_code=None, error=engine_error(exc))
        except EngineErrors as exc:  # the engine stopped answering
            return self._after_engine_loss(container_id, spec, log, cancel, exc, deadline)
        finally:
            if spec.network:  # on a compose network: gone before the project's teardown
                self._remove(container_id)
            else:
                self.reaper.submit(container_id)
            self._drop_secret_files(spec)
            if spec.mount_docker_socket and spec.container_name:
                self._sweep_started(spec, log)
            if self.caches is not None and spec.service:  # off the stage's critical path
                threading.Thread(target=self.caches.trim, args=(spec.service, spec.image),
                                 daemon=True, name=f"cache-trim-{spec.service}").start()

    def build(self, spec: BuildSpec, log: StageLog, cancel: threading.Event) -> StageResult:
        """The Build stage on this engine (its build cache), pushing when asked."""
        return build_image(self.client, spec, log, cancel)

    def integration(self, spec: IntegrationSpec, log: StageLog, cancel: threading.Event
                    ) -> StageResult:
        """A compose project on this engine, the test in a container on its network."""
        return run_integration(self.client, self, spec, log, cancel,
                               docker_host=self.docker_host)

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
        """Create the container of a stage expected to run next, in the background."""
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

    # -- read output until exit, cancel or timeout --------------------------------------------
    def _follow(self, container_id: str, spec: StageSpec, log: StageLog,
                cancel: threading.Event, stream: ContainerLogStream, timestamps: bool = True,
                deadline: float | None = None) -> StageResult:
        pump = LogPump(stream, log, timestamps)
        pump.start()
        deadline = deadline or time.monotonic() + spec.timeout_s
        exited_at: float | None = None
        hung = False
        next_check = time.monotonic() + 1.0
        try:
            while pump.is_alive():
                if cancel.is_set():
                    self._kill(container_id)
                    log.system("cancelled: container killed")
                    return StageResult(exit_code=None, cancelled=True, error="cancelled")
                if time.monotonic() > deadline:
                    self._kill(container_id)
                    message = f"timed out after {_seconds(spec.timeout_s)}: container killed"
                    log.system(message)
                    return StageResult(exit_code=None, timed_out=True, error=message)
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 1.0
                    if exited_at is None and not self._running(container_id):
                        exited_at = now
                    if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                        hung = True  # the stream hangs after exit: finish from a fresh read
                        break
                pump.join(POLL_S)
        finally:
            if pump.is_alive():
                pump.close()
            pump.join(2.0)
        if pump.error is not None and not self._exists(container_id):
            raise EngineGone(engine_error(pump.error))
        # A followed log may end before its last lines once the container stops (the
        # engine's follower gives up early): read it once more, whole. An attach ends
        # only after the container's pipes are drained.
        if hung or pump.error is not None or timestamps:
            self._read_all(container_id, log)
        return self._exit_result(container_id, log)

    def _read_all(self, container_id: str, log: StageLog) -> None:
        """An exited container's whole log, minus the lines already stored."""
        log.rewind()
        LogPump(open_log_stream(self.api, container_id, follow=False), log).run()

    def _exit_result(self, container_id: str, log: StageLog) -> StageResult:
        status = self.api.wait(container_id, timeout=30)
        code = int(status.get("StatusCode", -1))
        error = (status.get("Error") or {}).get("Message") if status.get("Error") else None
        if code != 0:
            log.system(f"exit code {code}")
        return StageResult(exit_code=code, error=error or None)

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
            info = self.api.inspect_container(container_id)
            if info["State"].get("Running"):
                log.system(f"re-attached to running container {spec.container_name}")
                started = _parse_docker_time(info["State"].get("StartedAt"))
                deadline = time.monotonic() + spec.timeout_s - (
                    (datetime.now(UTC) - started).total_seconds() if started else 0)
                log.rewind()
                stream = open_log_stream(self.api, container_id, follow=True)
                return self._follow(container_id, spec, log, cancel, stream, deadline=deadline)
            log.system(f"container {spec.container_name} finished while the agent was away")
            self._read_all(container_id, log)
            return self._exit_result(container_id, log)
        except docker.errors.NotFound:
            return None
        except EngineErrors as exc:
            log.system(engine_error(exc))
            return StageResult(exit_code=None, error=engine_error(exc))
        finally:
            self.reaper.submit(container_id)
            self._drop_secret_files(spec)

    # -- the engine went away under a running stage ------------------------------------------
    def _after_engine_loss(self, container_id: str, spec: StageSpec, log: StageLog,
                           cancel: threading.Event, exc: BaseException, deadline: float,
                           ) -> StageResult:
        """The engine stopped answering mid-stage (dockerd restarted, or its socket went
        away). Wait for it (`engine_wait_s`, cancellable); then a container that survived
        is re-attached (its log read again, stored lines skipped), one that finished by
        itself gives its result, one the engine's restart stopped fails saying so
        (`engine_restarted`: the pipeline may retry the stage once)."""
        lost_at = datetime.now(UTC) - _SLACK
        give_up = time.monotonic() + self.engine_wait_s
        log.system(f"{engine_error(exc)}; waiting for the Docker engine (up to "
                   f"{self.engine_wait_s:g} s)")
        log.flush()
        for _ in range(3):  # the engine may go away again while we re-attach
            info = self._inspect_when_back(container_id, cancel, give_up)
            if isinstance(info, StageResult):
                return info
            if info is None:
                return self._restarted(log, "its container is gone")
            state = info["State"]
            if state.get("Status") == "created":
                return self._restarted(log, "its container never started")
            if state.get("Running"):
                log.system("the Docker engine answers again: re-attached to the stage's"
                           " container")
                try:
                    log.rewind()
                    stream = open_log_stream(self.api, container_id, follow=True)
                    return self._follow(container_id, spec, log, cancel, stream,
                                        deadline=deadline)
                except EngineErrors as again:
                    log.system(f"{engine_error(again)}; waiting for the Docker engine again")
                    continue
            finished = _parse_docker_time(state.get("FinishedAt"))
            code = int(state.get("ExitCode") or 0)
            if code >= 128 and finished is not None and finished >= lost_at:
                # killed by a signal while the engine was away: the engine's stop
                return self._restarted(log, f"its container was stopped with it (exit code"
                                            f" {code})")
            log.system("the Docker engine answers again: the stage's container finished"
                       " meanwhile")
            try:
                self._read_all(container_id, log)
                return self._exit_result(container_id, log)
            except EngineErrors as again:
                log.system(f"{engine_error(again)}; waiting for the Docker engine again")
        return StageResult(exit_code=None, error="the Docker engine kept going away during"
                                                 " the stage", engine_restarted=True)

    def _inspect_when_back(self, container_id: str, cancel: threading.Event,
                           give_up: float, log: StageLog | None = None,
                           lost: BaseException | None = None,
                           ) -> dict[str, Any] | StageResult | None:
        """The container's state once the engine answers (None: it is gone; {} without a
        container), or the stage's result when waiting ended first (cancelled, or no
        engine in time). With `log`, says that it waits (and why: `lost`)."""
        if log is not None:
            log.system(f"{engine_error(lost) if lost else 'no Docker engine'}; waiting for"
                       f" the Docker engine (up to {self.engine_wait_s:g} s)")
            log.flush()
        while True:
            try:
                if not container_id:
                    self.api.ping()
                    if log is not None:
                        log.system("the Docker engine answers again")
                    return {}
                return dict(self.api.inspect_container(container_id))
            except docker.errors.NotFound:
                return None
            except EngineErrors as exc:
                if time.monotonic() > give_up:
                    error = (f"Docker engine unreachable for {self.engine_wait_s:g} s during"
                             f" the stage ({engine_error(exc)}): rerun it when the engine is"
                             " back")
                    return StageResult(exit_code=None, error=error)
            if cancel.wait(ENGINE_PROBE_S):
                return StageResult(exit_code=None, cancelled=True, error="cancelled")

    def _killed_by_engine_stop(self, container_id: str, result: StageResult) -> bool:
        """A stage killed by a signal (exit code >= 128) that we did not send — the engine
        logged a `kill` of it — may have been stopped by dockerd shutting down: it was if
        the engine stops answering soon after. (An OOM kill or a crash logs no `kill`.)"""
        if result.exit_code is None or result.exit_code < 128 or result.cancelled or (
                result.timed_out):
            return False
        try:
            kills = self.api.events(since=int(time.time()) - 7 * 86400,
                                    until=int(time.time()) + 1, decode=True,
                                    filters={"container": container_id, "event": "kill"})
            if not any(True for _ in kills):
                return False
        except EngineErrors:
            return True  # already gone
        give_up = time.monotonic() + ENGINE_STOP_CHECK_S
        while time.monotonic() < give_up:
            try:
                self.api.ping()
            except EngineErrors:
                return True
            time.sleep(0.25)
        return False

    @staticmethod
    def _restarted(log: StageLog, detail: str) -> StageResult:
        error = f"the Docker engine restarted during the stage: {detail}"
        log.system(error)
        return StageResult(exit_code=None, error=error, engine_restarted=True)

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
        self.secret_files.remove_runs_except(keep_run_ids)
        return removed

    # -- helpers -------------------------------------------------------------------------------
    def _running(self, container_id: str) -> bool:
        try:
            return bool(self.api.inspect_container(container_id)["State"].get("Running"))
        except docker.errors.NotFound:
            return False

    def _exists(self, container_id: str) -> bool:
        try:
            self.api.inspect_container(container_id)
            return True
        except docker.errors.NotFound:
            return False
        except EngineErrors:
            return False

    def _kill(self, container_id: str) -> None:
        try:
            self.api.kill(container_id)
        except docker.errors.APIError as exc:  # already exited: nothing to kill
            log.debug("kill %s: %s", container_id[:12], exc)

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


def _parse_docker_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
