"""Notifications to SNS and Slack-compatible webhooks, off the publisher's thread.

The bus listener only turns an event into a `Notification` and queues it; one worker
thread sends it to the channels of the service's pipeline, retrying each channel with
exponential backoff (bounded). A channel that keeps failing is logged and given up:
notifications never fail or slow a run.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable

import httpx

from agent.bus import Bus
from agent.notify.messages import Notification, notification_for
from store.models import Event, Pipeline
from store.store import Store

log = logging.getLogger(__name__)

PipelineLookup = Callable[[str], Pipeline]


class Notifier:
    def __init__(self, store: Store, bus: Bus, pipelines: PipelineLookup | None = None, *,
                 attempts: int = 4, backoff_s: float = 0.5, max_backoff_s: float = 10.0,
                 timeout_s: float = 5.0, max_queue: int = 1000) -> None:
        self.store, self.bus = store, bus
        self._pipelines = pipelines or store.get_pipeline
        self.attempts, self.backoff_s, self.max_backoff_s = attempts, backoff_s, max_backoff_s
        self.timeout_s = timeout_s
        self._queue: queue.Queue[Notification | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._work, name="seamless-notifier",
                                        daemon=True)
        self.sent: list[tuple[str, str]] = []  # (channel, subject): what was delivered
        self.failures: list[tuple[str, str]] = []  # (channel, last error) given up on

    def start(self) -> None:
        self.bus.add_listener(self._on_event)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)

    def wait_idle(self) -> None:
        """Block until everything queued so far was sent or given up (tests)."""
        self._queue.join()

    def _on_event(self, event: Event) -> None:  # the publisher's thread: quick, never raises
        note = notification_for(event)
        if note is None:
            return
        try:
            self._queue.put_nowait(note)
        except queue.Full:
            log.warning("notification queue full; dropped %r", note.subject)

    def _work(self) -> None:
        while True:
            note = self._queue.get()
            try:
                if note is None:
                    return
                self._deliver(note)
            except Exception:
                log.exception("notification %r failed", note.subject if note else None)
            finally:
                self._queue.task_done()

    def _deliver(self, note: Notification) -> None:
        redact = getattr(self.store, "redact", None)
        if redact is not None:  # the agent's masker: nothing secret goes out
            note = dataclasses.replace(note, subject=redact(note.subject), text=redact(note.text))
        name = note.pipeline or self.store.get_service(note.service).pipeline
        pipeline = self._pipelines(name)
        if pipeline.notify_sns_topic_arn:
            self._with_retries("sns", note, lambda: self._sns(pipeline, note))
        if pipeline.notify_slack_webhook_url:
            self._with_retries("slack", note, lambda: self._slack(pipeline, note))

    def _with_retries(self, channel: str, note: Notification, send: Callable[[], None]) -> None:
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                send()
                self.sent.append((channel, note.subject))
                return
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("%s notification %r failed (attempt %d/%d): %s", channel,
                            note.subject, attempt, self.attempts, error)
            if attempt < self.attempts:
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
        self.failures.append((channel, error))
        log.error("%s notification %r given up after %d attempts", channel, note.subject,
                  self.attempts)

    @staticmethod
    def _sns(pipeline: Pipeline, note: Notification) -> None:
        import boto3

        sns = boto3.client("sns", region_name=pipeline.notify_region,
                           endpoint_url=pipeline.notify_endpoint_url)
        sns.publish(TopicArn=pipeline.notify_sns_topic_arn, Subject=note.subject[:99],
                    Message=note.text)

    def _slack(self, pipeline: Pipeline, note: Notification) -> None:
        assert pipeline.notify_slack_webhook_url
        resp = httpx.post(pipeline.notify_slack_webhook_url, json={"text": note.text},
                          timeout=self.timeout_s)
        resp.raise_for_status()
