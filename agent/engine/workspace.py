"""Git mirrors and per-commit workspaces.

Each repository has one bare mirror (`mirrors/<repo key>.git`) that is fetched, never
re-cloned, on every Prepare; every service of a repository (a monorepo) shares it.
Each (repository, sha) gets its own checkout (`workspaces/<repo key>/<sha>`), shared by
the services of that repository: runs of other commits never share a working tree.

A checkout is what `git clone --shared` makes, minus what a stage never uses: a
fresh repository (`init --template=`, no sample hooks) that borrows the mirror's
objects through `objects/info/alternates` (documented in gitrepository-layout;
no copy), with the commit checked out detached. It copies none of the mirror's
refs (every branch and pull request head) and costs half a clone. It is not a
`git worktree`: it keeps its own index and lock files, so checkouts never
contend with a fetch running in the mirror, and cleanup is a plain `rmtree` (a
removed worktree leaves stale metadata in the mirror until `worktree prune`).

A private-repo token travels only in the environment of the git process
(GIT_CONFIG_COUNT/KEY/VALUE, an http.extraHeader scoped to the repo's host):
never in argv, in a stage log or in any .git/config.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import git

from agent.engine.git_runner import (
    CANCEL_POLL_S,
    DIFF_TIMEOUT_S,
    GIT_TIMEOUT_S,
    LS_REMOTE_TIMEOUT_S,
    WorkspaceError,
    run_git,
)
from agent.engine.git_runner import (
    redact_credentials as _redact,
)
from agent.logs import StageLog
from agent.logs.logger import LoggingStageLog
from store.models import CommitSummary, Service
from store.models.repos import repo_key

log = logging.getLogger(__name__)

_SERVICE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SHA = re.compile(r"^[0-9a-f]{4,64}$")
_REPO_KEY = re.compile(r"^[a-z0-9-]{1,40}-[0-9a-f]{10}$")  # store.models.repos.repo_key
FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/pull/*/head:refs/pull/*/head")


class Workspaces:
    def __init__(self, mirrors_dir: Path | str, workspaces_dir: Path | str,
                 github_token: str | None = None) -> None:
        self.mirrors_dir = Path(mirrors_dir).resolve()
        self.workspaces_dir = Path(workspaces_dir).resolve()
        self.github_token = github_token
        self.mirrors_dir.mkdir(parents=True, exist_ok=True)
        self.workspaces_dir.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        # Remote queries asked by API requests run here, never in the API's own thread
        # pool: a hanging remote then delays only other remote queries.
        self.remote_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="git-remote")

    # -- paths ------------------------------------------------------------------------
    def mirror_for(self, service: Service) -> Path:
        """The bare mirror of the service's repository (shared by its services)."""
        return self._inside(self.mirrors_dir, f"{_valid_service(repo_key(service.repo_url))}.git")

    def path_for(self, service: Service, sha: str) -> Path:
        """The checkout of `sha` of the service's repository (shared by its services)."""
        return self._inside(self.workspaces_dir, _valid_service(repo_key(service.repo_url)),
                            _valid_sha(sha))

    @staticmethod
    def _inside(root: Path, *parts: str) -> Path:
        path = root.joinpath(*parts).resolve()
        if root not in path.parents:
            raise WorkspaceError(f"path {path} escapes {root}")
        return path

    # -- prepare ------------------------------------------------------------------------
    def prepare(self, service: Service, sha: str, log: StageLog,
                cancel: threading.Event) -> Path:
        """Fetch the mirror and check `sha` out into its own workspace."""
        target = self.path_for(service, sha)
        with self._locked(f"mirror:{self.mirror_for(service).stem}", cancel):
            mirror = self._fetch(service, sha, log, cancel)
        with self._lock(f"ws:{target}"):
            if (target / ".git").is_dir() and self._head(target) == self._full_sha(mirror, sha):
                os.utime(target)  # in use again: keep it from cleanup
                log.system(f"workspace {target} already at {sha[:12]}")
                return target
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            log.system(f"checking out {sha[:12]} into {target}")
            started = time.monotonic()
            try:
                self._run_git(["init", "--quiet", "--template=", str(tmp)], None, log, cancel)
                alternates = tmp / ".git" / "objects" / "info" / "alternates"
                alternates.parent.mkdir(parents=True, exist_ok=True)
                alternates.write_text(f"{mirror / 'objects'}\n")
                self._run_git(["-c", "advice.detachedHead=false", "checkout", "--quiet",
                               "--detach", sha], tmp, log, cancel)
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            log.system(f"checked out in {time.monotonic() - started:.1f} s")
        return target

    def _fetch(self, service: Service, sha: str, log: StageLog,
               cancel: threading.Event) -> Path:
        mirror = self.mirror_for(service)
        url = service.repo_url
        if not (mirror / "HEAD").is_file():
            log.system(f"creating the mirror of {_redact(url)} (first run of its services)")
            repo = git.Repo.init(mirror, bare=True)
            with repo.config_writer() as cw:
                cw.set_value('remote "origin"', "url", url)
        else:
            repo = git.Repo(mirror)
            if repo.remotes.origin.url != url:  # the service's repo URL was edited
                with repo.config_writer() as cw:
                    cw.set_value('remote "origin"', "url", url)
        log.system(f"fetching {_redact(url)} (branches and pull requests)")
        started = time.monotonic()
        # --no-auto-maintenance: git's housekeeping check costs a process per fetch; the
        # agent's maintenance pass does the housekeeping instead (maintain_mirrors).
        self._run_git(["fetch", "--prune", "--no-progress", "--no-write-fetch-head",
                       "--no-auto-maintenance", "origin", *FETCH_REFSPECS],
                      mirror, log, cancel, url)
        log.system(f"fetched in {time.monotonic() - started:.1f} s")
        if self._full_sha(mirror, sha) is None:
            # Not on any branch or PR head any more (force-pushed away): ask for it by id.
            log.system(f"{sha[:12]} is on no branch: fetching it by id")
            try:
                self._run_git(["fetch", "--no-progress", "origin", sha], mirror, log, cancel, url)
            except WorkspaceError:
                pass
            if self._full_sha(mirror, sha) is None:
                raise WorkspaceError(f"commit {sha} was not found in {_redact(url)} "
                                     "(fetched all branches and pull requests)")
        return mirror

    # -- git -----------------------------------------------------------------------------------
    def _run_git(self, args: list[str], cwd: Path | None, log: StageLog | None,
                 cancel: threading.Event | None, url: str | None = None,
                 timeout_s: float = GIT_TIMEOUT_S) -> str:
        return run_git(args, cwd, log, cancel, url, timeout_s=timeout_s,
                       token=self.github_token)

    @staticmethod
    def _full_sha(repo_dir: Path, sha: str) -> str | None:
        try:
            return git.Repo(repo_dir).commit(sha).hexsha
        except (ValueError, git.BadName, git.GitCommandError, git.InvalidGitRepositoryError,
                git.NoSuchPathError):
            return None

    @staticmethod
    def _head(repo_dir: Path) -> str | None:
        try:
            return git.Repo(repo_dir).head.commit.hexsha
        except (ValueError, git.InvalidGitRepositoryError, git.NoSuchPathError):
            return None

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())

    @contextlib.contextmanager
    def _locked(self, key: str, cancel: threading.Event) -> Iterator[None]:
        """The lock, waited for in a way a cancel ends (another run may hold it for the
        whole of a hanging fetch)."""
        lock = self._lock(key)
        while not lock.acquire(timeout=CANCEL_POLL_S):
            if cancel.is_set():
                raise WorkspaceError("cancelled while waiting for another fetch")
        try:
            yield
        finally:
            lock.release()

    # -- change detection (monorepos) -----------------------------------------------------------
    def fetch(self, service: Service, sha: str, cancel: threading.Event | None = None) -> None:
        """The mirror of the service's repository fetched until it holds `sha` (nothing
        fetched when it already does); raises WorkspaceError."""
        if self.has_commit(service, sha):
            return
        with self._locked(f"mirror:{self.mirror_for(service).stem}",
                          cancel or threading.Event()):
            if not self.has_commit(service, sha):
                self._fetch(service, sha, LoggingStageLog(f"fetch {service.name}"),
                            cancel or threading.Event())

    def has_commit(self, service: Service, sha: str) -> bool:
        mirror = self.mirror_for(service)
        if not (mirror / "HEAD").is_file():
            return False
        try:
            self._run_git(["cat-file", "-e", f"{_valid_sha(sha)}^{{commit}}"], mirror, None,
                          None, timeout_s=DIFF_TIMEOUT_S)
        except WorkspaceError:
            return False
        return True

    def merge_base(self, service: Service, one: str, other: str) -> str | None:
        """The best common ancestor of two commits in the mirror; None when they share none."""
        try:
            out = self._run_git(["merge-base", _valid_sha(one), _valid_sha(other)],
                                self.mirror_for(service), None, None, timeout_s=DIFF_TIMEOUT_S)
        except WorkspaceError:
            return None
        return out.strip() or None

    def changed_paths(self, service: Service, base: str, head: str) -> list[str]:
        """Every path changed between two commits (all the commits between count, not only
        the last), with renames and copies on both their old and new path; raises
        WorkspaceError (unknown commit, timeout: the git process group is killed)."""
        out = self._run_git(["-c", "diff.renameLimit=10000", "diff", "--name-status", "-M",
                             "-z", "--no-ext-diff", "--no-textconv", _valid_sha(base),
                             _valid_sha(head), "--"], self.mirror_for(service), None, None,
                            timeout_s=DIFF_TIMEOUT_S)
        return _name_status_paths(out)

    def first_parent_chain(self, service: Service, head: str, limit: int) -> list[str]:
        """`head` and its first parents, newest first, at most `limit` of them."""
        out = self._run_git(["rev-list", "--first-parent", f"--max-count={limit}",
                             _valid_sha(head), "--"], self.mirror_for(service), None, None,
                            timeout_s=DIFF_TIMEOUT_S)
        return out.split()

    def commit_changes(self, service: Service, head: str, count: int
                       ) -> list[tuple[str, list[str]]]:
        """The `count` newest commits of head's first-parent line, newest first, each with
        the paths it changed against its first parent (a merge: what it brought in;
        renames on both paths)."""
        out = self._run_git(["-c", "diff.renameLimit=10000", "log", "--first-parent",
                             "--diff-merges=first-parent", "--name-status", "-M", "-z",
                             "--no-ext-diff", "--format=%x01%H", f"--max-count={count}",
                             _valid_sha(head), "--"], self.mirror_for(service), None, None,
                            timeout_s=DIFF_TIMEOUT_S)
        commits = []
        for chunk in out.split("\x01")[1:]:
            sha, _, rest = chunk.partition("\0")
            commits.append((sha, _name_status_paths(rest.lstrip("\n"))))
        return commits

    # -- queries --------------------------------------------------------------------------------
    def ls_remote(self, repo_url: str, *patterns: str,
                  cancel: threading.Event | None = None,
                  timeout_s: float = LS_REMOTE_TIMEOUT_S) -> dict[str, str]:
        """ref → sha of the remote's refs matching `patterns` (git ls-remote, with the
        token for the repo's host); raises WorkspaceError when the remote fails, does not
        answer within `timeout_s` or `cancel` is set (git's whole process group killed)."""
        out = self._run_git(["ls-remote", "--", repo_url, *patterns], None, None, cancel,
                            repo_url, timeout_s=timeout_s)
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref:
                refs[ref.strip()] = sha.strip()
        return refs

    def resolve_branch(self, repo_url: str, branch: str) -> str | None:
        """The remote head of `branch` (git ls-remote), None when it has none; raises
        WorkspaceError when the remote fails or does not answer in time."""
        return self.ls_remote(repo_url, f"refs/heads/{branch}").get(f"refs/heads/{branch}")

    def commit_info(self, service: Service, sha: str) -> CommitSummary | None:
        try:
            commit = git.Repo(self.mirror_for(service)).commit(sha)
        except (ValueError, git.BadName, git.GitCommandError, git.InvalidGitRepositoryError,
                git.NoSuchPathError, WorkspaceError):
            return None
        return _summary(commit)

    def commits_between(self, service: Service, old_sha: str | None, new_sha: str,
                        limit: int = 50) -> list[CommitSummary]:
        """Commits in `new_sha` but not in `old_sha`, newest first (all of its history
        when `old_sha` is None or unknown here)."""
        try:
            repo = git.Repo(self.mirror_for(service))
            rev = new_sha
            if old_sha and self._full_sha(repo.git_dir, old_sha):  # type: ignore[arg-type]
                rev = f"{old_sha}..{new_sha}"
            return [_summary(c) for c in repo.iter_commits(rev, max_count=limit)]
        except (ValueError, git.BadName, git.GitCommandError, git.InvalidGitRepositoryError,
                git.NoSuchPathError, WorkspaceError):
            return []

    # -- cleanup ----------------------------------------------------------------------------------
    def maintain_mirrors(self) -> None:
        """git's own housekeeping (`gc --auto`: packs loose objects when there are many)
        for each mirror, which fetches skip to stay fast. In the foreground: this already
        runs in the background, and the mirror's lock keeps fetches out meanwhile."""
        for mirror in sorted(self.mirrors_dir.glob("*.git")):
            if not (mirror / "HEAD").is_file():  # not a repository: nothing for git to do
                continue
            with self._lock(f"mirror:{mirror.stem}"):
                try:
                    self._run_git(["-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"],
                                  mirror, None, None)
                except WorkspaceError as exc:
                    log.warning("maintenance of %s: %s", mirror.name, exc)

    def remove_old_mirrors(self) -> list[str]:
        """The per-service mirrors (`mirrors/<service>.git`) of agents from before mirrors
        were shared per repository (`mirrors/<repo key>.git`) removed: nothing fetches
        into them any more. Kept: anything shaped like a repository key, anything that is
        not a bare repository, and a mirror an existing checkout still borrows objects
        from (a run of the old layout followed after the upgrade). The names removed."""
        borrowed = self._borrowed_objects()
        removed = []
        for mirror in sorted(self.mirrors_dir.glob("*.git")):
            if (_REPO_KEY.match(mirror.stem) or not _SERVICE.match(mirror.stem)
                    or not (mirror / "HEAD").is_file() or not (mirror / "objects").is_dir()
                    or mirror.is_symlink()
                    or os.path.realpath(mirror / "objects") in borrowed):
                continue
            with self._lock(f"mirror:{mirror.stem}"):
                shutil.rmtree(mirror, ignore_errors=True)
            if not mirror.exists():
                removed.append(mirror.name)
        if removed:
            log.info("removed %d per-service git mirror(s) left from before mirrors were "
                     "shared per repository: %s", len(removed), ", ".join(removed))
        return removed

    def _borrowed_objects(self) -> set[str]:
        """The object directories the checkouts borrow from (their `alternates`)."""
        borrowed: set[str] = set()
        for alternates in self.workspaces_dir.glob("*/*/.git/objects/info/alternates"):
            try:
                lines = alternates.read_text().splitlines()
            except OSError:
                continue
            borrowed.update(os.path.realpath(line.strip()) for line in lines if line.strip())
        return borrowed

    def cleanup(self, max_age: timedelta) -> int:
        """Remove workspaces not used (modified) for `max_age`; the number removed."""
        cutoff = time.time() - max_age.total_seconds()
        removed = 0
        for service_dir in self.workspaces_dir.iterdir():
            if not service_dir.is_dir():
                continue
            for ws in service_dir.iterdir():
                try:
                    if ws.is_dir() and ws.stat().st_mtime < cutoff:
                        shutil.rmtree(ws)
                        removed += 1
                except FileNotFoundError:
                    continue
            # The emptied service folder stays: removing it raced a checkout that had just
            # made it (its `mkdir` of the sha folder then failed: FileNotFoundError).
        return removed


def _name_status_paths(out: str) -> list[str]:
    """The paths of `--name-status -z` output: renames and copies give old and new."""
    fields = out.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        count = 2 if status[:1] in ("R", "C") else 1
        paths.extend(fields[i + 1:i + 1 + count])
        i += 1 + count
    return paths


def _summary(commit: git.Commit) -> CommitSummary:
    message = commit.message if isinstance(commit.message, str) else commit.message.decode()
    return CommitSummary(sha=commit.hexsha, author=commit.author.name,
                         message=message.strip().splitlines()[0] if message.strip() else "",
                         committed_at=datetime.fromtimestamp(commit.committed_date, UTC))


def _valid_service(name: str) -> str:
    if not _SERVICE.match(name):
        raise WorkspaceError(f"invalid service name {name!r}")
    return name


def _valid_sha(sha: str) -> str:
    if not _SHA.match(sha):
        raise WorkspaceError(f"invalid commit sha {sha!r}")
    return sha
