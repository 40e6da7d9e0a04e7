"""Notifications to SNS (moto, read back through SQS) and to a local Slack-style receiver."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.notify import Notifier
from store.models import (
    DeploymentKind,
    DeploymentStatus,
    Event,
    PipelineConfig,
    RunStatus,
    ServiceConfig,
)
from tests.deploy.conftest import REGION, make_run
from tests.harness import wait_until
from tests.helpers import unique_name


class Receiver:
    """A Slack-compatible webhook endpoint that fails the first `fail_first` posts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(500)
                else:
                    receiver.posts.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver(fail_first=2)
    yield r
    r.close()


def make(store, **pipeline_kwargs):
    pipeline = store.create_pipeline(PipelineConfig(name=unique_name("pl"), **pipeline_kwargs))
    service = store.create_service(ServiceConfig(name=unique_name("svc"),
                                                 pipeline=pipeline.name, repo_url="/tmp/x"))
    return pipeline, service


def finished_run_event(store, service, status: RunStatus) -> Event:
    run = make_run(store, service, "a" * 40)
    store.set_run_status(run.id, status, error="Unit Test failed" if status == "failed" else None)
    return Event(type="run", ts=datetime.now(UTC), run=store.get_run(run.id))


def test_rollback_and_failed_run_reach_sns_as_seen_through_an_sqs_subscription(
        store, bus, moto_server):
    sns, sqs = moto_server.client("sns"), moto_server.client("sqs")
    topic = sns.create_topic(Name=unique_name("topic"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique_name("q"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    _, service = make(store, notify_sns_topic_arn=topic, notify_region=REGION,
                      notify_endpoint_url=str(moto_server))
    notifier = Notifier(store, bus)
    notifier.start()
    try:
        bus.publish_event(finished_run_event(store, service, RunStatus.failed))
        dep = store.create_deployment(service_id=service.id, environment="production",
                                      sha="b" * 40, image="x:b", kind=DeploymentKind.rollback,
                                      actor="alice")
        dep = store.finish_deployment(dep.id, DeploymentStatus.active)
        bus.publish_event(Event(type="deployment", ts=datetime.now(UTC), deployment=dep))
        notifier.wait_idle()
    finally:
        notifier.stop()
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    texts = sorted(json.loads(m["Body"])["Message"] for m in messages)
    assert len(texts) == 2
    assert "rolled back to bbbbbbb by alice" in texts[0]
    assert "failed: Unit Test failed" in texts[1]


def test_slack_webhook_is_retried_after_a_500_and_delivered(store, bus, receiver):
    _, service = make(store, notify_slack_webhook_url=receiver.url)
    notifier = Notifier(store, bus, backoff_s=0.05)
    notifier.start()
    try:
        bus.publish_event(finished_run_event(store, service, RunStatus.success))
        notifier.wait_idle()
    finally:
        notifier.stop()
    assert receiver.attempts == 3
    assert len(receiver.posts) == 1 and "succeeded" in receiver.posts[0]["text"]
    assert notifier.sent == [("slack", f"{service.name}: run succeeded")]


def test_an_unreachable_notifier_is_given_up_without_blocking_the_publisher(store, bus):
    _, service = make(store, notify_slack_webhook_url="http://127.0.0.1:9/nothing-here")
    notifier = Notifier(store, bus, attempts=3, backoff_s=0.2)
    notifier.start()
    try:
        bus.publish_event(finished_run_event(store, service, RunStatus.failed))
        # The publisher returned at once; the worker is still retrying in the background.
        assert notifier.failures == []
        wait_until(lambda: notifier.failures, timeout=10, what="the notifier to give up")
    finally:
        notifier.stop()
    assert notifier.failures[0][0] == "slack" and notifier.sent == []
