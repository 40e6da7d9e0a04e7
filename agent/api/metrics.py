"""Prometheus metrics, one registry per app, fed by the bus.

Stage durations come from finished-stage events; log lines are counted by a
bus subscription per running run; run counts and queue depth are read when
scraped (they are state, not events).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agent.runtime import Agent
from store.models import Event, RunStatus

_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
# Lines can still arrive just after the run's final event (the log writer batches).
_LOG_GRACE_S = 2.0
TEST_FIGURES_EVERY_S = 60.0


class Metrics:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.registry = CollectorRegistry()
        self.runs = Gauge("seamless_runs", "Runs in the store by status", ["status"],
                          registry=self.registry)
        self.queue_depth = Gauge("seamless_queue_depth", "Runs queued, waiting for a slot",
                                 registry=self.registry)
        self.stage_duration = Histogram(
            "seamless_stage_duration_seconds", "Duration of finished stages",
            ["stage", "status"], buckets=_DURATION_BUCKETS, registry=self.registry)
        self.log_lines = Counter("seamless_log_lines_ingested",
                                 "Log lines written to the store and published",
                                 registry=self.registry)
        self.events = Counter("seamless_events", "Events published on the bus", ["type"],
                              registry=self.registry)
        by_service = ["service"]
        self.test_failure_rate = Gauge(
            "seamless_test_failure_rate", "Failing test results ÷ results, last 30 days",
            by_service, registry=self.registry)
        self.test_flaky_rate = Gauge(
            "seamless_test_flaky_rate", "Flaky test results ÷ results, last 30 days",
            by_service, registry=self.registry)
        self.test_retry_seconds = Gauge(
            "seamless_test_retry_seconds", "Time of test-stage attempts a flaky-test retry "
            "replaced, last 30 days", by_service, registry=self.registry)
        self.tests_quarantined = Gauge("seamless_tests_quarantined", "Tests in quarantine now",
                                       by_service, registry=self.registry)
        self.test_slowest = Gauge(
            "seamless_test_slowest_seconds", "Mean duration of the service's 5 slowest tests, "
            "last 30 days", ["service", "test"], registry=self.registry)
        self._test_figures_at = -TEST_FIGURES_EVERY_S
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._running = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        self.agent.bus.add_listener(self.on_event)
        for run in self.agent.store.runs_with_status(RunStatus.running):
            self._watch(run.id)

    async def stop(self) -> None:
        self._running = False  # the bus has no remove_listener: the listener goes quiet
        for task in list(self._watchers.values()):
            task.cancel()
        for task in list(self._watchers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watchers.clear()

    def on_event(self, event: Event) -> None:
        """Bus listener: runs in the publisher's thread, so only cheap work here."""
        if not self._running:
            return
        self.events.labels(event.type).inc()
        stage = event.stage
        if stage is not None and stage.status.finished and stage.started_at \
                and stage.finished_at:
            seconds = (stage.finished_at - stage.started_at).total_seconds()
            self.stage_duration.labels(stage.name, stage.status.value).observe(max(seconds, 0))
        run = event.run
        if run is not None and self._loop is not None:
            if run.status is RunStatus.running:
                self._loop.call_soon_threadsafe(self._watch, run.id)
            elif run.status.finished:
                self._loop.call_soon_threadsafe(self._unwatch_later, run.id)

    def _watch(self, run_id: int) -> None:
        if self._running and run_id not in self._watchers:
            self._watchers[run_id] = asyncio.ensure_future(self._count_lines(run_id))

    def _unwatch_later(self, run_id: int) -> None:
        task = self._watchers.get(run_id)
        if task is not None and self._loop is not None:
            self._loop.call_later(_LOG_GRACE_S, task.cancel)

    async def _count_lines(self, run_id: int) -> None:
        try:
            with self.agent.bus.subscribe_logs(run_id, maxsize=100_000) as sub:
                while True:
                    batch = await sub.get()
                    self.log_lines.inc(len(batch))
        finally:
            self._watchers.pop(run_id, None)

    def render(self) -> tuple[bytes, str]:
        counts = self.agent.store.count_runs()
        for status in RunStatus:
            self.runs.labels(status.value).set(counts.get(status.value, 0))
        engine = getattr(self.agent, "engine", None)
        if engine is not None:
            self.queue_depth.set(engine.queue_depth())
        self._test_figures()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _test_figures(self) -> None:
        """Per service with test results: read when scraped (state, not events), at most
        once a minute (a scrape every few seconds need not read them again)."""
        if time.monotonic() - self._test_figures_at < TEST_FIGURES_EVERY_S:
            return
        self._test_figures_at = time.monotonic()
        store = self.agent.store
        gauges = (self.test_failure_rate, self.test_flaky_rate, self.test_retry_seconds,
                  self.tests_quarantined, self.test_slowest)
        for gauge in gauges:
            gauge.clear()
        for service in store.list_services():
            figures = store.service_test_figures(service.id, service.name, days=30, slowest=5)
            if not figures.runs and not figures.quarantined:
                continue
            self.test_failure_rate.labels(service.name).set(figures.failure_rate)
            self.test_flaky_rate.labels(service.name).set(figures.flaky_rate)
            self.test_retry_seconds.labels(service.name).set(figures.retry_s)
            self.tests_quarantined.labels(service.name).set(figures.quarantined)
            for slow in figures.slowest:
                name = f"{slow.classname}::{slow.name}" if slow.classname else slow.name
                self.test_slowest.labels(service.name, name).set(slow.mean_s)
