"""The composition root: one `Agent` wires store, bus, engine, executors, deploys,
notifications and triggers together. The API and the CLI build on it."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from agent.bus import Bus
from agent.config import AgentConfig
from agent.deploy.base import DeployTarget
from agent.deploy.deployer import Deployer
from agent.docker_client import client_factory, engine_client
from agent.engine.engine import Engine
from agent.engine.executors import ExecutorSet
from agent.engine.runner import RunDriver
from agent.engine.threads import in_thread
from agent.engine.transitions import Transitions
from agent.engine.workspace import Workspaces
from agent.engine_watch import PROBE_TIMEOUT_S, EngineWatch
from agent.executors.base import Executor
from agent.logs.secretbook import SecretBook
from agent.logs.writer import LogWriter
from agent.notify import Notifier
from agent.onboarding.secrets import encrypt_secrets_file, github_token
from agent.run_links import RunLinks
from agent.triggers.changes import ChangeDetector
from agent.triggers.polling import Poller
from store.crypto import SecretCipher, ensure_key_file
from store.models import DeployTargetConfig
from store.space import SpaceGuard
from store.store import Store

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 600.0


@dataclass
class Parts:
    """Stand-ins for the parts that reach outside the agent (the Docker engine, git,
    deploy targets): the test harness and bench/orchestration.py run the real engine
    on fakes through these. None: the real part."""

    docker_executor: Executor | None = None
    workspaces: Workspaces | None = None
    make_target: Callable[[DeployTargetConfig], DeployTarget | None] | None = None


class Agent:
    def __init__(self, config: AgentConfig, parts: Parts | None = None) -> None:
        parts = parts or Parts()

        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(config.data_dir, 0o700)  # the database, the key, tokens, mirrors: ours only
        self.store = Store(config.db_path)
        # Secrets rest encrypted, the key outside the database; plaintext from before is
        # encrypted now.
        self.store.cipher = SecretCipher(ensure_key_file(config.key_path))
        self.store.encrypt_stored_secrets()
        encrypt_secrets_file(config, self.store.cipher)  # the GitHub token, same key
        self.links = RunLinks.for_config(config)  # signed run-page links, key beside it
        token = github_token(config)
        # One masker on every way out: stored errors, events, logs (API bodies: the app).
        self.secrets = SecretBook(self.store, lambda: [token] if token else [])
        self.store.redact = self.secrets.mask
        self.bus = Bus()
        self.bus.redact_event = self.secrets.mask_model
        self.logs = LogWriter(self.store, self.bus, shared_secrets=self.secrets.secrets)
        self.workspaces = parts.workspaces or Workspaces(
            config.mirrors_dir, config.workspaces_dir, github_token=token)
        self.instance = self.store.instance_id()
        self.executors = ExecutorSet(config, self.instance, docker=parts.docker_executor)
        self.deployer = Deployer(self.store, self.bus, self.workspaces,
                                 client_factory(config.docker_host),
                                 config.data_dir / "fronts", make_target=parts.make_target)
        self.deployer.engine_wait_s = config.docker_wait_s
        self.notifier = Notifier(self.store, self.bus)
        # Whether the engine answers (/healthz); when it returns, fronts serve the store's
        # active colours again.
        self.engine_watch = EngineWatch(
            lambda: engine_client(config.docker_host, PROBE_TIMEOUT_S),
            on_return=[self.deployer.reconcile_after_engine_return,
                       self.executors.after_engine_return])
        self.executors.engine_down = lambda: self.engine_watch.current.state == "down"
        self.executors.engine_outages = lambda: (self.engine_watch.current.returns * 2
                                                 + (self.engine_watch.current.state == "down"))
        # /healthz: each check says why the agent is degraded (None: fine)
        self.health_checks: list[Callable[[], str | None]] = [self._engine_health,
                                                              self.deployer.health]
        transitions = Transitions(self.store, self.bus)
        driver = RunDriver(self.store, transitions, self.logs, self.workspaces, self.deployer,
                           self.executors, self.instance)
        self.space = SpaceGuard(config.data_dir, config.min_free_mb)
        self.engine = Engine(self.store, transitions, driver, self.deployer,
                             config.max_parallel_runs, space=self.space,
                             engine_queue_wait_s=config.docker_queue_wait_s)
        self.engine.hold.away = self._engine_away
        self.engine_watch.on_return.append(self.engine.wake)  # held runs start at once
        # Services sharing a repository: which of them a push runs (agent/triggers/changes.py).
        self.changes = ChangeDetector(self.store, self.bus, self.engine, self.workspaces)
        self.poller: Poller | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self.started = False

    async def start(self) -> None:
        self.logs.start()
        self.notifier.start()
        await in_thread(self.deployer.reconcile_fronts)  # fronts serve what the store says
        self.engine_watch.start()
        await self.engine.start()
        await in_thread(self._forget_undecided_deliveries)
        if self.config.poll_enabled:
            self.poller = Poller(self)
            await self.poller.start()
        self._maintenance = asyncio.create_task(self._maintain(), name="seamless-maintenance")
        self.started = True

    async def stop(self) -> None:
        """Graceful: no new work; running stages are left for restart recovery."""
        if self._maintenance is not None:
            self._maintenance.cancel()
        if self.poller is not None:
            await self.poller.stop()
        await in_thread(self.changes.close)
        await self.engine.stop()
        await in_thread(self.engine_watch.stop)
        await in_thread(self.executors.drain)
        await in_thread(self.logs.stop)
        self.notifier.stop()
        await in_thread(self.deployer.close)
        self.started = False

    def close(self) -> None:
        self.store.close()

    def _engine_away(self) -> str | None:
        """Why the Docker engine does not answer, as the watch last saw it (None: it
        does)."""
        state = self.engine_watch.current
        if state.state == "unknown":  # before its first probe: what the start-up saw
            return self.executors.docker_error
        return (state.detail or "Docker engine unreachable") if state.state == "down" else None

    def _engine_health(self) -> str | None:
        """Docker stages and Docker deploy targets need the engine."""
        state = self.engine_watch.current
        return state.detail if state.state == "down" else None

    def _forget_undecided_deliveries(self) -> None:
        forgotten = self.store.forget_undecided_deliveries()
        if forgotten:
            log.info("%d webhook deliveries were answered but not decided before the agent "
                     "stopped: forgotten, so their redelivery is decided (%s)", len(forgotten),
                     ", ".join(forgotten[:5]) + (", …" if len(forgotten) > 5 else ""))

    async def _maintain(self) -> None:
        """Retention: old log lines and workspaces are pruned in the background, and the
        git mirrors get git's housekeeping. At start, the per-service mirrors of an
        older agent are removed (once they are gone there is nothing left to do)."""
        try:
            await in_thread(self.workspaces.remove_old_mirrors)
        except Exception:
            log.exception("removing the per-service mirrors of an older agent failed")
        while True:
            try:
                pruned = await in_thread(lambda: self.store.prune_logs(
                    timedelta(hours=self.config.log_retention_hours)))
                removed = await in_thread(lambda: self.workspaces.cleanup(
                    timedelta(hours=self.config.workspace_retention_hours)))
                await in_thread(self.workspaces.maintain_mirrors)
                if pruned or removed:
                    log.info("retention: %s log lines, %s workspaces removed", pruned, removed)
            except Exception:
                log.exception("maintenance pass failed")
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
