"""Git polling for repositories webhooks cannot reach.

Per service with `triggers.poll_interval_s`, `git ls-remote` (the Workspaces git
runner: the agent's token, its own process group killed on timeout or stop, in the
poller's own threads) reads the branch head (and, with `poll_pull_requests`,
`refs/pull/*/head`); a sha that differs from the one stored in `poll_state` queues
the same run a webhook would. The stored sha is what makes restarts safe: nothing is run twice.

The first poll of a service only records where the branch is (like a webhook
hooked up today, only later pushes run); trigger a manual run for the current head.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.engine.workspace import LS_REMOTE_TIMEOUT_S
from agent.triggers.changes import ChangeRequest, uses_detection
from agent.triggers.host import AgentHandle
from store.models import RunInfo, RunKind, Service, Trigger
from store.models.repos import normalize_repo_url, repo_key

log = logging.getLogger(__name__)

PR_REF_PATTERN = "refs/pull/*/head"


class Poller:
    """`await Poller(agent).start()` / `await .stop()`; `poll_service()` is one pass."""

    def __init__(self, agent: AgentHandle, *, tick_s: float = 1.0, max_parallel: int = 4,
                 git_timeout_s: float = LS_REMOTE_TIMEOUT_S) -> None:
        self.agent = agent
        self.tick_s = tick_s
        self.git_timeout_s = git_timeout_s
        self._next_due: dict[int, float] = {}
        self._slots = asyncio.Semaphore(max_parallel)
        # Its own threads: a hanging remote holds neither the event loop nor a pool the
        # API or the engine use; `stop` kills the git processes still running.
        self._max_parallel = max_parallel
        self._threads = self._new_threads()
        self._stopping = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._stopping.clear()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="seamless-poller")

    async def stop(self) -> None:
        self._stopping.set()  # git still running is killed (its whole group) within 0.25 s
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        self._inflight.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._threads = self._new_threads()

    def _new_threads(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._max_parallel, thread_name_prefix="git-poll")

    async def _loop(self) -> None:
        while True:
            try:
                self._start_due()
            except Exception:
                log.exception("poller pass failed")
            await asyncio.sleep(self.tick_s)

    def _start_due(self) -> None:
        now = time.monotonic()
        for service in self.agent.store.list_services():
            interval = service.triggers.poll_interval_s
            if not interval or self._next_due.get(service.id, 0.0) > now:
                continue
            self._next_due[service.id] = now + interval
            task = asyncio.create_task(self._poll_in_thread(service))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _poll_in_thread(self, service: Service) -> None:
        async with self._slots:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._threads, self.poll_service, service)
            except Exception as exc:  # an unreachable remote must not stop the others
                log.warning("polling %s (%s) failed: %s", service.name, service.repo_url, exc)

    def poll_service(self, service: Service) -> list[RunInfo]:
        """One blocking pass: the runs it queued (none when nothing moved)."""
        store = self.agent.store
        branch_ref = f"refs/heads/{service.branch}"
        patterns = [branch_ref] + ([PR_REF_PATTERN] if service.triggers.poll_pull_requests
                                   else [])
        refs = self.agent.workspaces.ls_remote(service.repo_url, *patterns,
                                               cancel=self._stopping,
                                               timeout_s=self.git_timeout_s)
        first_poll = store.get_poll_sha(service.id, branch_ref) is None
        runs = []
        for ref, sha in sorted(refs.items()):
            if ref != branch_ref and not ref.startswith("refs/pull/"):
                continue
            known = store.get_poll_sha(service.id, ref)
            if known == sha:
                continue
            if not first_poll:
                siblings = self._sharing_repo(service)
                if uses_detection(service, len(siblings)):
                    runs.extend(self._decide(service, siblings, ref, sha,
                                             refs.get(branch_ref)))
                else:
                    runs.append(self._submit(service, ref, sha))
            # Recorded after the submit: a crash in between may repeat a run, never lose one.
            store.set_poll_sha(service.id, ref, sha)
        return runs

    def _sharing_repo(self, service: Service) -> list[Service]:
        repo = normalize_repo_url(service.repo_url)
        return [s for s in self.agent.store.list_services()
                if normalize_repo_url(s.repo_url) == repo]

    def _decide(self, service: Service, siblings: list[Service], ref: str, sha: str,
                branch_head: str | None) -> list[RunInfo]:
        """The same change detection as a webhook's. A branch that moved is decided for
        every polled service of the repository on that branch at once (one batch: deploy
        order holds), and each of them remembers the sha."""
        store = self.agent.store
        if ref.startswith("refs/pull/"):
            together = [service]
            requests = [ChangeRequest(service=service, trigger=Trigger.poll,
                                      kind=RunKind.partial, sha=sha, branch=ref,
                                      pr_number=int(ref.split("/")[2]),
                                      pr_base_sha=branch_head, actor="poller")]
        else:
            together = [s for s in siblings if s.branch == service.branch and (
                s.id == service.id or (s.triggers.poll_interval_s
                                       and store.get_poll_sha(s.id, ref) not in (None, sha)))]
            requests = [ChangeRequest(service=s, trigger=Trigger.poll, kind=RunKind.full,
                                      sha=sha, branch=s.branch, actor="poller")
                        for s in together]
        decisions = self.agent.changes.decide(requests, f"poll:{repo_key(service.repo_url)}:"
                                                        f"{ref}:{sha}")
        for other in together:
            if other.id != service.id:
                store.set_poll_sha(other.id, ref, sha)
        for decision in decisions:
            log.info("poll: %s %s moved to %s: %s", decision.service, ref, sha[:12],
                     decision.reason)
        return [store.get_run(d.run_id) for d in decisions if d.run_id is not None]

    def _submit(self, service: Service, ref: str, sha: str) -> RunInfo:
        engine = self.agent.engine
        if ref.startswith("refs/pull/"):
            number = int(ref.split("/")[2])
            run = engine.submit(service, trigger=Trigger.poll, kind=RunKind.partial, sha=sha,
                                branch=ref, pr_number=number, actor="poller")
        else:
            run = engine.submit(service, trigger=Trigger.poll, kind=RunKind.full, sha=sha,
                                branch=service.branch, actor="poller")
        log.info("poll: %s %s moved to %s, queued run #%d", service.name, ref, sha[:12],
                 run.number)
        return run
