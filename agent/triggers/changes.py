"""Change detection for services sharing a repository (monorepos).

A push runs a service when one of its paths (`paths`, `depends_on_paths`) changed
between the sha of the service's last successful run on the branch and the pushed sha:
every commit in between counts, and a failed or cancelled run's changes are never
forgotten by the next push. No earlier success: it runs. A pull request compares its
head against the merge base with its base branch. Renames count on both paths.

Every decision is stored (why it ran: the changed paths that matched; or why not), and
a service that does not run gets a `success` commit status ("no changes for …"), so a
required check never hangs. The services decided together form a batch: deploy order
(`depends_on_services`) is kept within it.
"""

from __future__ import annotations

import bisect
import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.bus import Bus
from agent.engine.engine import Engine
from agent.engine.workspace import WorkspaceError, Workspaces
from store.models import ChangeDecision, Event, RunKind, Service, Trigger
from store.models.repos import normalize_repo_url
from store.store import Store

log = logging.getLogger(__name__)

_WILDCARD = re.compile(r"[*?\[\\]")
EVERYTHING = ("**",)


# -- which changed paths are a service's ------------------------------------------------
@dataclass(frozen=True)
class _Glob:
    prefix: str  # the literal start of the glob: only paths starting with it can match
    match: Callable[[str], bool]


@functools.lru_cache(maxsize=4096)
def _compiled(glob: str) -> _Glob:
    # Imported on first use: an agent whose worktree venv predates the dependency still
    # starts (only services with narrowed paths need it).
    from wcmatch import glob as wcglob

    literal = _WILDCARD.split(glob, maxsplit=1)[0]
    matcher = wcglob.compile([glob], flags=wcglob.GLOBSTAR | wcglob.DOTGLOB)
    return _Glob(prefix=literal, match=matcher.match)


def matching(globs: Iterable[str], changed: list[str]) -> list[str]:
    """The paths of `changed` (sorted) that any of `globs` matches. Each glob only looks
    at the paths starting with its literal prefix (a bisect of the sorted list), so 200
    services over a push of thousands of paths stay within milliseconds."""
    found: set[str] = set()
    for glob in globs:
        if glob in EVERYTHING:
            return list(changed)
        compiled = _compiled(glob)
        start = bisect.bisect_left(changed, compiled.prefix)
        end = (bisect.bisect_left(changed, compiled.prefix + "\U0010ffff")
               if compiled.prefix else len(changed))
        found.update(p for p in changed[start:end] if compiled.match(p))
    return sorted(found)


def uses_detection(service: Service, neighbours: int) -> bool:
    """Whether a push is decided by change detection: the repository is shared by more
    than one service, or the service narrowed its paths. A lone service with every path
    (`**`) always runs, decided at once as before."""
    return neighbours > 1 or tuple(service.paths) != EVERYTHING or bool(service.depends_on_paths)


# -- one decision --------------------------------------------------------------------------
@dataclass(frozen=True)
class ChangeRequest:
    """What a trigger asks of one service: run `sha` unless nothing of it changed."""

    service: Service
    trigger: Trigger
    kind: RunKind
    sha: str
    branch: str | None
    pr_number: int | None = None
    pr_base_sha: str | None = None  # a pull request's base branch head
    author: str | None = None
    message: str | None = None
    actor: str = "github"
    forced: str | None = None  # a reason to run whatever changed (manual, --all)


@dataclass(frozen=True)
class Verdict:
    run: bool
    reason: str
    base_sha: str | None
    base_kind: str
    matched: list[str]
    changed_count: int | None


def short(sha: str | None) -> str:
    return (sha or "")[:12]


def describe_matched(matched: list[str], limit: int = 3) -> str:
    shown = ", ".join(matched[:limit])
    more = f" and {len(matched) - limit} more" if len(matched) > limit else ""
    return f"{shown}{more}"


class ChangeDetector:
    """Decides for a batch of requests (one push, PR head, poll or `trigger --all`) which
    services run; records each decision; submits the runs dependencies first; announces
    the skipped ones (commit statuses). `decide_later` answers at once and decides in
    its own threads (a webhook is answered before any git runs)."""

    def __init__(self, store: Store, bus: Bus, engine: Engine, workspaces: Workspaces,
                 workers: int = 2) -> None:
        self.store = store
        self.bus = bus
        self.engine = engine
        self.workspaces = workspaces
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="changes")
        self._repo_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def decide_later(self, requests: list[ChangeRequest], batch: str,
                     then: Callable[[list[ChangeDecision]], None] | None = None
                     ) -> Future[list[ChangeDecision]]:
        def work() -> list[ChangeDecision]:
            try:
                decisions = self.decide(requests, batch)
            except Exception:
                log.exception("change detection for batch %s failed", batch)
                raise
            if then is not None:
                then(decisions)
            return decisions

        return self._pool.submit(work)

    def decide(self, requests: list[ChangeRequest], batch: str) -> list[ChangeDecision]:
        """Blocking: decide every request, record it, submit the runs (dependencies
        first) and announce the skipped ones. One repository's batches are decided one at
        a time: a later push then compares with what an earlier one already ran."""
        if not requests:
            return []
        key = normalize_repo_url(requests[0].service.repo_url)
        with self._repo_lock(key):
            verdicts = self._verdicts(requests)
            decisions = []
            for request in _dependencies_first(requests):
                verdict = verdicts[request.service.id]
                decisions.append(self._record_and_act(request, verdict, batch))
        return decisions

    # -- deciding ------------------------------------------------------------------------
    def _verdicts(self, requests: list[ChangeRequest]) -> dict[int, Verdict]:
        fetched: dict[str, str | None] = {}  # sha → why it could not be fetched
        diffs: dict[tuple[str, str], list[str] | str] = {}  # (base, head) → paths | error
        verdicts = {}
        for request in requests:
            verdicts[request.service.id] = self._verdict(request, fetched, diffs)
        return verdicts

    def _verdict(self, request: ChangeRequest, fetched: dict[str, str | None],
                 diffs: dict[tuple[str, str], list[str] | str]) -> Verdict:
        service = request.service
        if request.forced:
            return Verdict(True, request.forced, None, "forced", [], None)
        if request.sha not in fetched:
            try:
                self.workspaces.fetch(service, request.sha)
                fetched[request.sha] = None
            except WorkspaceError as exc:
                fetched[request.sha] = str(exc)
        if fetched[request.sha] is not None:
            return Verdict(True, f"runs: could not read the change ({fetched[request.sha]})",
                           None, "none", [], None)
        if request.trigger is Trigger.pull_request or request.kind is RunKind.partial:
            base = (self.workspaces.merge_base(service, request.pr_base_sha, request.sha)
                    if request.pr_base_sha else None)
            kind = "merge_base"
            if base is None:
                return Verdict(True, "runs: no merge base with the base branch to compare",
                               None, "none", [], None)
        else:
            base = self.store.last_success_sha(service.id, request.branch or service.branch)
            kind = "last_success"
            if base is None:
                return Verdict(True, f"runs: no earlier successful run of {service.name} on "
                               f"{request.branch or service.branch}", None, "none", [], None)
        changed = diffs.get((base, request.sha))
        if changed is None:
            try:
                changed = sorted(set(self.workspaces.changed_paths(service, base,
                                                                   request.sha)))
            except WorkspaceError as exc:
                changed = str(exc)
            diffs[(base, request.sha)] = changed
        if isinstance(changed, str):
            return Verdict(True, f"runs: could not compare with {short(base)} ({changed})",
                           base, kind, [], None)
        since = "the merge base" if kind == "merge_base" else "its last successful run"
        matched = matching([*service.paths, *service.depends_on_paths], changed)
        if matched:
            return Verdict(True, f"runs: {len(matched)} changed path(s) of {service.name} since"
                           f" {since} {short(base)}: {describe_matched(matched)}", base, kind,
                           matched, len(changed))
        return Verdict(False, f"no changes for {service.name} since {short(base)} ({since}; "
                       f"{len(changed)} other path(s) changed)", base, kind, [], len(changed))

    # -- acting ----------------------------------------------------------------------------
    def _record_and_act(self, request: ChangeRequest, verdict: Verdict, batch: str
                        ) -> ChangeDecision:
        service = request.service
        decision = self.store.record_decision(
            batch=batch, service_id=service.id, trigger=request.trigger.value, sha=request.sha,
            branch=request.branch, base_sha=verdict.base_sha, base_kind=verdict.base_kind,
            ran=verdict.run, reason=verdict.reason, matched=verdict.matched,
            changed_count=verdict.changed_count)
        if verdict.run:
            run = self.engine.submit(service, trigger=request.trigger, kind=request.kind,
                                     sha=request.sha, branch=request.branch,
                                     pr_number=request.pr_number, author=request.author,
                                     message=request.message, actor=request.actor)
            self.store.set_decision_run(decision.id, run.id)
            decision = decision.model_copy(update={"run_id": run.id})
            log.info("%s: %s run #%d at %s: %s", batch, service.name, run.number,
                     short(request.sha), verdict.reason)
        else:
            log.info("%s: %s not run at %s: %s", batch, service.name, short(request.sha),
                     verdict.reason)
        self.bus.publish_event(Event(type="decision", ts=datetime.now(UTC), service=service,
                                     data=decision.model_dump(mode="json")))
        return decision

    def _repo_lock(self, key: str) -> threading.Lock:
        with self._locks_lock:
            return self._repo_locks.setdefault(key, threading.Lock())


def _dependencies_first(requests: list[ChangeRequest]) -> list[ChangeRequest]:
    """The requests ordered so a service comes after those it depends on (runs are
    started oldest first: a dependency is never queued behind its dependent)."""
    by_name = {r.service.name: r for r in requests}
    done: set[str] = set()
    ordered: list[ChangeRequest] = []

    def visit(name: str, depth: int) -> None:
        if name in done or depth > len(by_name):  # cycles are refused at config time
            return
        for dependency in by_name[name].service.depends_on_services:
            if dependency in by_name:
                visit(dependency, depth + 1)
        done.add(name)
        ordered.append(by_name[name])

    for request in sorted(requests, key=lambda r: r.service.name):
        visit(request.service.name, 0)
    return ordered
