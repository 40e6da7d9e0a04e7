"""Commit statuses on GitHub (pending / success / failure, linked to the agent).

Fed by bus events; a worker thread does the HTTP so the engine's publisher
never waits for GitHub. Failures are logged and never touch the run.
"""

from __future__ import annotations

import logging
import queue
import threading

from agent.github_api import GitHubClient, parse_github_repo, web_host
from agent.run_links import RunLinks
from agent.triggers.host import AgentHandle
from store.models import ChangeDecision, Event, RunInfo, RunStatus

log = logging.getLogger(__name__)

STATE_OF = {
    RunStatus.queued: ("pending", "queued"),
    RunStatus.running: ("pending", "running"),
    RunStatus.awaiting_approval: ("pending", "waiting for approval"),
    RunStatus.success: ("success", "all stages passed"),
    RunStatus.failed: ("failure", "failed"),
    RunStatus.rejected: ("failure", "rejected at approval"),
    RunStatus.cancelled: ("error", "cancelled"),
    RunStatus.superseded: ("error", "superseded by a newer commit"),
}


class StatusReporter:
    """`await start()` / `await stop()`; posts one status per change of a run's state."""

    def __init__(self, agent: AgentHandle, client: GitHubClient | None = None) -> None:
        config = agent.config
        if client is None and not config.github_token:
            raise ValueError("commit statuses need github_token in the agent's config")
        self.agent = agent
        self.client = client or GitHubClient(config.github_token or "", config.github_api_url,
                                             timeout=10.0)
        self.host = web_host(config.github_api_url)
        self.link_base = (config.public_url or config.url).rstrip("/")
        # "Details" opens the run's page for anyone holding the link (signed, expiring).
        self.links = RunLinks.for_config(config)
        if not config.public_url:
            log.warning("public_url is not set: commit statuses link to %s, which a browser "
                        "elsewhere may not reach (set public_url in the agent config)",
                        self.links.base_url)
        self._queue: queue.Queue[RunInfo | ChangeDecision | None] = queue.Queue(maxsize=10_000)
        self._last: dict[int, str] = {}
        self._thread: threading.Thread | None = None
        self._running = False

    async def start(self) -> None:
        self._running = True
        self.agent.bus.add_listener(self.on_event)
        self._thread = threading.Thread(target=self._work, name="seamless-status", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
        self.client.close()

    def on_event(self, event: Event) -> None:
        item: RunInfo | ChangeDecision | None = None
        if event.type == "run" and event.run is not None:
            item = event.run
        elif event.type == "decision" and not event.data.get("ran", True):
            item = ChangeDecision.model_validate(event.data)
        if self._running and item is not None:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                log.warning("commit-status queue full; dropping %s", item.id)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if isinstance(item, ChangeDecision):
                    self.post_skipped(item)
                else:
                    self.post(item)
            except Exception as exc:
                log.warning("commit status for %s not posted: %s", item.id, exc)

    def post_skipped(self, decision: ChangeDecision) -> bool:
        """A service a push did not run: `success`, so a required check never hangs."""
        service = self.agent.store.get_service_by_id(decision.service_id)
        repo = parse_github_repo(service.repo_url, self.host)
        if repo is None:
            return False
        since = (decision.base_sha or "")[:12]
        self.client.create_commit_status(
            repo[0], repo[1], decision.sha, "success",
            target_url=f"{self.link_base}/api/v1/decisions/{decision.id}",
            description=f"no changes for {service.name} since {since}"[:140],
            context=f"seamless/{service.name}")
        return True

    def post(self, run: RunInfo) -> bool:
        """Post the run's state unless it was already posted; False when not a GitHub repo."""
        state, description = STATE_OF[run.status]
        if self._last.get(run.id) == state:
            return True
        service = self.agent.store.get_service_by_id(run.service_id)
        repo = parse_github_repo(service.repo_url, self.host)
        if repo is None:
            return False
        if len(self._last) > 10_000:  # bounded memory; at worst a status is posted twice
            self._last.clear()
        self._last[run.id] = state
        self.client.create_commit_status(
            repo[0], repo[1], run.sha, state,
            target_url=self.links.url(run.id),
            description=self.agent.store.redact(f"{service.name} #{run.number}: {description}"),
            context=f"seamless/{service.name}")
        return True
