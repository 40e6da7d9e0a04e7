"""Installed dependencies kept between runs.

What a stage's `pip install` put into the stage image's site-packages (and the scripts
directory beside it) is kept, after the stage succeeded in a trusted run, as an image of
its own on top of the stage image (`seamless-deps:<agent>-<service>-<key>`); the next
stage with the same key runs in that image, so `pip install -r requirements.txt` finds
every requirement already satisfied instead of unpacking and compiling them again (~2.5 s
of CPU for 10 cached wheels; the download cache saves only the download).

The key: the stage image's id, the command, the service's env (not the per-run SEAMLESS_*
variables) and the requirement and lock files in the stage's directory (`KEY_FILES`). A
changed key starts from the stage image itself, never from a stale package.

Why an image, not a mounted directory: each run gets its own copy-on-write layer, so
nothing one run does to site-packages reaches the next, and the engine shares the layers.

What is kept: only files the stage added or changed under `<prefix>/lib/python3.X/
{site,dist}-packages` and `<prefix>/bin` (`docker diff`), or the whole venv the stage made
outside the workspace (its `pyvenv.cfg` too: without it its python is not a venv's): not
/tmp, not the workspace (a venv there is the checkout's, per commit). What the install
removed there (an upgraded package of the image: `pip install -U pip`) is removed in the
helper container by `rm` before the commit (a layer made from a tar cannot say
"removed"); not kept when the image has an entrypoint (no plain `rm` to run).

Who may write: runs of pushes, polls, manual triggers and their reruns. A pull request's
run may start from what such a run kept (its changes die with its container) but keeps
nothing: it cannot change what main's next run installs.

Bounded: the `keep` most recently used per service (a marker file per key, its mtime the
last use); removed with the service's dependency cache (Caches.clear).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import docker

from agent.executors.base import StageSpec
from agent.executors.engine_errors import EngineErrors
from agent.executors.installed_layer import installed_paths, write_layer

log = logging.getLogger(__name__)

REPOSITORY = "seamless-deps"
LABEL = "io.seamless.deps"  # the service whose installed dependencies an image holds
KEY_LABEL = "io.seamless.deps.key"
# The files a Python install reads, in the stage's directory (a requirements file's own
# `-r other.txt` outside these is not followed).
KEY_FILES = ("requirements*.txt", "requirements/*.txt", "constraints*.txt", "pyproject.toml",
             "setup.py", "setup.cfg", "Pipfile", "Pipfile.lock", "poetry.lock", "pdm.lock",
             "uv.lock")
KEY_FILE_MAX = 4 * 1024 * 1024
# Set per run by the agent (a socket stage's compose project is named after its container).
PER_RUN_ENV = frozenset({"COMPOSE_PROJECT_NAME"})
MAX_REMOVED = 500  # paths of the image an install removed, removed in the helper by rm
HELPER_WAIT_S = 120
NOTHING_KEEP = 20  # keys remembered as "installs nothing to keep" (markers only), per service


@dataclass(frozen=True)
class Choice:
    """For one stage: its key, and the image kept for it (None: none yet)."""

    key: str
    image: str | None
    trusted: bool


class InstalledDeps:
    def __init__(self, api: Any, markers: Path, keep: int, instance: str,
                 max_bytes: int) -> None:
        self.api = api
        self.markers = markers  # <caches>/.installed/<service>/<key>: last use, size
        self.keep = keep
        self.instance = instance or "agent"
        self.max_bytes = max_bytes
        self._saving: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    # -- before the stage ------------------------------------------------------------
    def choose(self, spec: StageSpec) -> Choice | None:
        """The key of `spec` and the image kept for it; None when it does not apply (no
        service, a compose test container, the stage image not on the engine)."""
        if self.keep <= 0 or not spec.service or spec.network:
            return None
        try:
            image_id = str(self.api.inspect_image(spec.image)["Id"])
        except docker.errors.APIError:
            return None  # missing: the stage pulls it or says why
        key = stage_key(spec, image_id)
        tag = self.tag(spec.service, key)
        try:
            self.api.inspect_image(tag)
        except docker.errors.NotFound:
            if _marker(self.markers / spec.service / key) == (0, spec.stage):
                return None  # this stage installed nothing to keep, last time
            tag = ""
        return Choice(key, tag or None, trusted=not spec.pull_request)

    def apply(self, spec: StageSpec, choice: Choice | None) -> StageSpec:
        """`spec` in the kept image, when there is one."""
        if choice is None or choice.image is None:
            return spec
        self._touch(spec.service, choice.key)
        return replace(spec, image=choice.image)

    def guess(self, spec: StageSpec) -> StageSpec:
        """Before the checkout is there (a container made ahead): the kept image this
        service's stage used last. The stage takes that container only if its real key
        names the same image (ReadyContainers compares the specs)."""
        if self.keep <= 0 or not spec.service or spec.network:
            return spec
        mine = [m for m in self._markers(spec.service)
                if _marker(m)[1] == spec.stage and _marker(m)[0] > 0]
        for marker in sorted(mine, key=_last_use, reverse=True)[:1]:
            tag = self.tag(spec.service, marker.name)
            try:
                self.api.inspect_image(tag)
            except docker.errors.NotFound:
                return spec
            return replace(spec, image=tag)
        return spec

    def describe(self, spec: StageSpec, choice: Choice) -> str:
        if choice.image:
            return (f"installed dependencies: starting from {choice.image}, what an earlier "
                    f"run installed into {spec.image} for the same requirement files, "
                    "command and env")
        if not choice.trusted:
            return ("installed dependencies: none kept for these requirements; a pull "
                    "request's run keeps nothing for later runs")
        return ("installed dependencies: none kept for these requirements yet; what this "
                "stage installs into site-packages is kept for the next runs if it succeeds")

    @property
    def _helper_prefix(self) -> str:
        return f"seamless-{self.instance}-deps-"

    def tag(self, service: str, key: str) -> str:
        return f"{REPOSITORY}:{self.instance}-{service}-{key}"

    # -- after the stage -------------------------------------------------------------
    def save_later(self, container_id: str, spec: StageSpec, choice: Choice,
                   then: Callable[[str], None]) -> None:
        """Keep what the finished stage installed, in the background (its container is
        read, then handed to `then`, the remover)."""
        with self._lock:
            first = choice.key not in self._saving
            self._saving.add(choice.key)
        if not first:  # a run of the same key is keeping it already
            then(container_id)
            return

        def keep() -> None:
            try:
                self._save(container_id, spec, choice)
            except (*EngineErrors, tarfile.TarError) as exc:
                log.warning("installed dependencies of %s not kept: %s", spec.service, exc)
            finally:
                then(container_id)
                with self._lock:
                    self._saving.discard(choice.key)
                    self._idle.notify_all()

        threading.Thread(target=keep, daemon=True,
                         name=f"installed-deps-{spec.service}").start()

    def wait_saved(self, timeout: float) -> bool:
        """Every save under way finished (tests, the bench)."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._saving, timeout)

    def _save(self, container_id: str, spec: StageSpec, choice: Choice) -> str | None:
        changes = self.api.diff(container_id) or []
        roots, wanted, removed = installed_paths(changes)
        base = self.api.inspect_container(container_id)["Image"]
        why_not = self._why_not(base, wanted, removed)
        if why_not:  # remembered: the next runs do not look again
            self._touch(spec.service, choice.key, f"0 {spec.stage}")
            if wanted:
                log.info("installed dependencies of %s not kept: %s", spec.service, why_not)
            return None
        with tempfile.TemporaryFile() as layer:
            size = write_layer(self.api, container_id, roots, wanted, layer)
            if size > self.max_bytes:
                log.info("installed dependencies of %s not kept: %d bytes, over the cache "
                         "bound", spec.service, size)
                return None
            layer.seek(0)
            tag = self.tag(spec.service, choice.key)
            # What the install removed of the image (an upgraded package's old files) goes
            # by `rm` in the helper: a layer made from a tar cannot say "removed".
            helper = self.api.create_container(
                base, command=["rm", "-rf", "--", *sorted(removed)] if removed else ["true"],
                network_disabled=True,
                name=f"{self._helper_prefix}{choice.key}-{os.getpid()}-{threading.get_ident()}",
                labels={LABEL: spec.service, KEY_LABEL: choice.key,
                        "io.seamless.agent": self.instance})
            try:
                self.api.put_archive(helper["Id"], "/", layer)
                if removed:
                    self.api.start(helper["Id"])
                    status = self.api.wait(helper["Id"], timeout=HELPER_WAIT_S)
                    if status.get("StatusCode") != 0:
                        log.info("installed dependencies of %s not kept: rm of what the "
                                 "install removed failed", spec.service)
                        return None
                repository, _, name = tag.partition(":")
                self.api.commit(helper["Id"], repository=repository, tag=name,
                                message=f"installed dependencies of {spec.service}")
            finally:
                self.api.remove_container(helper["Id"], force=True)
        self._touch(spec.service, choice.key, f"{size} {spec.stage}")
        self.evict(spec.service)
        log.info("installed dependencies of %s kept as %s (%d files, %d bytes, %d removed)",
                 spec.service, tag, len(wanted), size, len(removed))
        return tag

    def _why_not(self, base: str, wanted: set[str], removed: set[str]) -> str | None:
        """Why the stage's install cannot be kept; None when it can."""
        if not wanted:
            return "nothing installed"
        if not removed:
            return None
        if len(removed) > MAX_REMOVED:
            return f"the install removed {len(removed)} paths of the image"
        if (self.api.inspect_image(base).get("Config") or {}).get("Entrypoint"):
            return "the install removed files of an image with an entrypoint (no plain rm)"
        return None

    # -- bound and clear -------------------------------------------------------------
    def evict(self, service: str) -> list[str]:
        """Beyond the `keep` most recently used: removed (images in use stay till later)."""
        markers = sorted(self._markers(service), key=_last_use, reverse=True)
        kept = [m for m in markers if _marker(m)[0] > 0]
        nothing = [m for m in markers if _marker(m)[0] == 0]
        for marker in nothing[NOTHING_KEEP:]:
            marker.unlink(missing_ok=True)
        removed = []
        for marker in kept[self.keep:]:
            if self._remove(self.tag(service, marker.name)):
                marker.unlink(missing_ok=True)
                removed.append(self.tag(service, marker.name))
        return removed

    def size(self, service: str) -> int:
        return kept_bytes(self.markers, service)

    def clear(self, service: str) -> int:
        """Remove every image kept for `service` (also ones without a marker); bytes."""
        freed = self.size(service)
        images = self.api.images(filters={"label": [f"{LABEL}={service}",
                                                    f"io.seamless.agent={self.instance}"]})
        for image in images:
            for tag in image.get("RepoTags") or []:
                self._remove(tag)
        for marker in self._markers(service):
            marker.unlink(missing_ok=True)
        return freed

    def sweep_helpers(self) -> list[str]:
        """The containers a save made and an agent killed meanwhile left (at start)."""
        # By name: stage containers in a kept image carry its labels.
        left = self.api.containers(all=True, filters={"name": f"^/{self._helper_prefix}"})
        for container in left:
            self.api.remove_container(container["Id"], force=True)
        return [c["Names"][0].lstrip("/") for c in left]

    def _remove(self, tag: str) -> bool:
        try:
            self.api.remove_image(tag, force=True)
            return True
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as exc:  # used by a running stage: next time
            log.info("could not remove %s yet: %s", tag, exc)
            return False

    def _markers(self, service: str) -> list[Path]:
        return _markers_of(self.markers, service)

    def _touch(self, service: str, key: str, made: str | None = None) -> None:
        """Record a use (the marker's mtime); `made`: "<bytes> <stage>", when kept."""
        marker = self.markers / service / key
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            if made is not None:
                marker.write_text(made)
            elif marker.exists():
                os.utime(marker)
        except OSError as exc:
            log.warning("could not record the use of %s: %s", marker, exc)


def kept_bytes(markers: Path, service: str) -> int:
    """What the images kept for `service` hold (from the markers: no engine needed)."""
    return sum(_marker(marker)[0] for marker in _markers_of(markers, service))


def _markers_of(markers: Path, service: str) -> list[Path]:
    folder = markers / service
    return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []


def _last_use(marker: Path) -> float:
    try:
        return marker.stat().st_mtime
    except OSError:  # removed meanwhile (a clear)
        return 0.0


def _marker(path: Path) -> tuple[int, str]:
    """(bytes kept, stage) of a marker file; (0, "") when unreadable."""
    try:
        size, _, stage = path.read_text().partition(" ")
        return int(size), stage
    except (OSError, ValueError):
        return 0, ""


def stage_key(spec: StageSpec, image_id: str) -> str:
    """What decides what the stage installs: image, command, env, requirement files."""
    digest = hashlib.sha256()
    for part in (image_id, spec.command, spec.workdir):
        digest.update(part.encode() + b"\0")
    for name, value in sorted(spec.env.items()):
        if not name.startswith("SEAMLESS_") and name not in PER_RUN_ENV:
            digest.update(f"{name}={value}".encode() + b"\0")
    for rel, content in _key_files(spec):
        digest.update(rel.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:24]


def _key_files(spec: StageSpec) -> Iterator[tuple[str, bytes]]:
    """The requirement files in the stage's directory: regular files inside the
    workspace only (a symlink out of a hostile repo is not read)."""
    inside = PurePosixPath(spec.workdir)
    try:
        folder = spec.workspace / inside.relative_to("/workspace")
    except ValueError:
        return
    workspace = spec.workspace.resolve()
    seen = set()
    for pattern in KEY_FILES:
        for path in sorted(folder.glob(pattern)):
            if path in seen or path.is_symlink() or not path.is_file():
                continue
            seen.add(path)
            if not path.resolve().is_relative_to(workspace):
                continue
            with path.open("rb") as f:
                yield str(path.relative_to(spec.workspace)), f.read(KEY_FILE_MAX)
