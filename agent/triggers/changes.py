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
from store.changes import DecisionRow
from store.models import ChangeDecision, Event, RunInfo, RunKind, Service, Trigger
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
        """Decisions not started are dropped; one in progress ends first (it writes to the
        store, and git calls are bounded)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def decide_later(self, requests: list[ChangeRequest], batch: str,
                     then: Callable[[list[ChangeDecision]], None] | None = None,
                     failed: Callable[[bool], None] | None = None
                     ) -> Future[list[ChangeDecision]]:
        """`decide` in the detector's threads; then `then(decisions)`. On an error,
        `failed(nothing_done)`: True when no decision of the batch was stored."""
        def work() -> list[ChangeDecision]:
            try:
                decisions = self.decide(requests, batch)
            except Exception:
                log.exception("change detection for batch %s failed", batch)
                if failed is not None:
                    failed(not self.store.list_decisions(batch=batch, limit=1))
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
            return self.act(requests, self.verdicts(requests), batch)

    def act(self, requests: list[ChangeRequest], verdicts: dict[int, Verdict], batch: str
            ) -> list[ChangeDecision]:
        """Queue the runs (dependencies first) and record every verdict with its run, in
        one transaction: an error part way stores nothing, and the batch (a webhook's
        redelivery) is decided again. Then announce every decision on the bus."""
        ordered = _dependencies_first(requests)
        to_run = [r for r in ordered if verdicts[r.service.id].run]
        decisions: list[ChangeDecision] = []

        def record(runs: list[RunInfo]) -> None:
            run_ids = {r.service.id: run.id for r, run in zip(to_run, runs, strict=True)}
            decisions.extend(self.store.record_decisions([
                _row(r, verdicts[r.service.id], batch, run_ids.get(r.service.id))
                for r in ordered]))

        runs = self.engine.submit_batch([(r.service, {
            "trigger": r.trigger, "kind": r.kind, "sha": r.sha, "branch": r.branch,
            "pr_number": r.pr_number, "author": r.author, "message": r.message,
            "actor": r.actor}) for r in to_run], within=record)
        for request, run in zip(to_run, runs, strict=True):
            log.info("%s: %s run #%d at %s: %s", batch, request.service.name, run.number,
                     short(request.sha), verdicts[request.service.id].reason)
        for decision in decisions:
            # Listeners: the commit-status reporter (skipped services), the TUI's views.
            self.bus.publish_event(Event(type="decision", ts=datetime.now(UTC),
                                         data=decision.model_dump(mode="json")))
        return decisions

    # -- deciding ------------------------------------------------------------------------
    def verdicts(self, requests: list[ChangeRequest]) -> dict[int, Verdict]:
        """Blocking, no side effect but a fetch: whether each request's service runs, and
        why (service id → verdict). The bases on the pushed commit's first-parent line
        (the usual case) cost one `git rev-list` and one `git log` together, whatever their
        number; any other base one `git diff`."""
        verdicts: dict[int, Verdict] = {}
        fetched: dict[str, str | None] = {}  # head → why it could not be fetched
        waiting: dict[str, list[tuple[ChangeRequest, str, str]]] = {}  # head → (req, base, kind)
        for request in requests:
            service = request.service
            if request.forced:
                verdicts[service.id] = Verdict(True, request.forced, None, "forced", [], None)
                continue
            if request.sha not in fetched:
                fetched[request.sha] = self._fetch(service, request.sha)
            if fetched[request.sha] is not None:
                verdicts[service.id] = Verdict(
                    True, f"runs: could not read the change ({fetched[request.sha]})", None,
                    "none", [], None)
                continue
            found = self._base(request)
            if isinstance(found, Verdict):
                verdicts[service.id] = found
            else:
                waiting.setdefault(request.sha, []).append((request, *found))
        for head, group in waiting.items():
            since = _PathsSince(self.workspaces, group[0][0].service, head,
                                {base for _, base, _ in group})
            for request, base, kind in group:
                verdicts[request.service.id] = _judge(request.service, base, kind,
                                                      since.paths(base))
        return verdicts

    def _fetch(self, service: Service, sha: str) -> str | None:
        try:
            self.workspaces.fetch(service, sha)
        except WorkspaceError as exc:
            return str(exc)
        return None

    def _base(self, request: ChangeRequest) -> tuple[str, str] | Verdict:
        """What the request compares with, and how it was found; or a verdict to run
        when there is nothing to compare with."""
        service = request.service
        if request.trigger is Trigger.pull_request or request.kind is RunKind.partial:
            base = (self.workspaces.merge_base(service, request.pr_base_sha, request.sha)
                    if request.pr_base_sha else None)
            if base is None:
                return Verdict(True, "runs: no merge base with the base branch to compare",
                               None, "none", [], None)
            return base, "merge_base"
        branch = request.branch or service.branch
        base = self.store.last_success_sha(service.id, branch)
        if base is None:
            return Verdict(True, f"runs: no earlier successful run of {service.name} on "
                           f"{branch}", None, "none", [], None)
        return base, "last_success"

    def _repo_lock(self, key: str) -> threading.Lock:
        with self._locks_lock:
            return self._repo_locks.setdefault(key, threading.Lock())


HISTORY_LIMIT = 5000  # first-parent commits looked through for the bases of one push


class _PathsSince:
    """The paths changed from each base to `head`. Bases on head's first-parent line get
    the union of what each commit after them changed (renames on both paths): every
    commit between counts, one `git log` for all of them. Any other base (a force-push,
    a merge base off the line, one older than HISTORY_LIMIT commits): `git diff`."""

    def __init__(self, workspaces: Workspaces, service: Service, head: str,
                 bases: set[str]) -> None:
        self.workspaces, self.service, self.head = workspaces, service, head
        self._known: dict[str, list[str] | str] = {}
        try:
            chain = workspaces.first_parent_chain(service, head, HISTORY_LIMIT)
        except WorkspaceError:
            chain = []
        position = {sha: i for i, sha in enumerate(chain)}
        on_line = {base: position[base] for base in bases if base in position}
        deepest = max(on_line.values(), default=0)
        if deepest == 0:
            self._known.update({base: [] for base in on_line})  # base == head
            return
        try:
            commits = workspaces.commit_changes(service, head, deepest)
        except WorkspaceError as exc:
            self._known.update({base: str(exc) for base in on_line})
            return
        wanted = sorted(set(on_line.values()))
        seen: set[str] = set()
        union_at: dict[int, list[str]] = {}
        for index, (_, paths) in enumerate(commits):
            while wanted and wanted[0] == index:
                union_at[wanted.pop(0)] = sorted(seen)
            seen.update(paths)
        for left in wanted:
            union_at[left] = sorted(seen)
        self._known.update({base: union_at[i] for base, i in on_line.items()})

    def paths(self, base: str) -> list[str] | str:
        """Sorted changed paths, or why they could not be read."""
        if base not in self._known:
            try:
                self._known[base] = sorted(set(self.workspaces.changed_paths(
                    self.service, base, self.head)))
            except WorkspaceError as exc:
                self._known[base] = str(exc)
        return self._known[base]


def _judge(service: Service, base: str, kind: str, changed: list[str] | str) -> Verdict:
    if isinstance(changed, str):
        return Verdict(True, f"runs: could not compare with {short(base)} ({changed})", base,
                       kind, [], None)
    since = "the merge base" if kind == "merge_base" else "its last successful run"
    matched = matching([*service.paths, *service.depends_on_paths], changed)
    if matched:
        return Verdict(True, f"runs: {len(matched)} changed path(s) of {service.name} since "
                       f"{since} {short(base)}: {describe_matched(matched)}", base, kind,
                       matched, len(changed))
    return Verdict(False, f"no changes for {service.name} since {short(base)} ({since}; "
                   f"{len(changed)} other path(s) changed)", base, kind, [], len(changed))


def _row(request: ChangeRequest, verdict: Verdict, batch: str, run_id: int | None
         ) -> DecisionRow:
    return DecisionRow(batch=batch, service_id=request.service.id,
                       trigger=request.trigger.value, sha=request.sha, branch=request.branch,
                       base_sha=verdict.base_sha, base_kind=verdict.base_kind, ran=verdict.run,
                       reason=verdict.reason, matched=verdict.matched,
                       changed_count=verdict.changed_count, run_id=run_id)


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
