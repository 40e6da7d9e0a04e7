"""#22 item 6: a webhook delivery whose processing fails is not remembered, so GitHub's
redelivery (same X-GitHub-Delivery) queues its run; a real duplicate is still refused."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from tests.reliability.conftest import svc_name
from tests.reliability.served import ServedAgent, post_push, push_payload

SECRET = "delivery-secret"
FAULT = "fail_run_insert"


def _database_fault(db: Path, on: bool) -> None:
    """A database error while the run is written (as a full or failing disk gives one):
    every insert into `runs` aborts until it is lifted."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        if on:
            conn.execute(f"CREATE TRIGGER {FAULT} BEFORE INSERT ON runs BEGIN"
                         " SELECT RAISE(ABORT, 'disk I/O error (injected)'); END")
        else:
            conn.execute(f"DROP TRIGGER {FAULT}")
        conn.commit()
    finally:
        conn.close()


def test_a_delivery_that_failed_is_queued_on_redelivery_and_a_duplicate_is_not(
        serve: Callable[..., ServedAgent]) -> None:
    agent = serve(config={"executor": "auto"})
    name = svc_name("redeliver")
    repo = f"https://github.com/acme/{name}.git"
    agent.add_pipeline(name, executor="local")
    agent.add_service(name, name, repo, branch="main", webhook_secret=SECRET)
    payload = push_payload(repo, "c" * 40)
    delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

    _database_fault(agent.data_dir / "seamless.db", on=True)
    failed = post_push(agent, SECRET, payload, delivery=delivery)
    assert failed.status_code >= 500, failed.text
    assert not [r for r in agent.runs() if r["service"] == name]
    _database_fault(agent.data_dir / "seamless.db", on=False)

    redelivered = post_push(agent, SECRET, payload, delivery=delivery)
    assert redelivered.status_code == 200, redelivered.text
    assert redelivered.json()["status"] == "queued", redelivered.text
    runs = [r for r in agent.runs() if r["service"] == name]
    assert [(r["sha"], r["trigger"]) for r in runs] == [("c" * 40, "push")]

    again = post_push(agent, SECRET, payload, delivery=delivery)
    assert again.status_code == 200, again.text
    assert again.json() == {"status": "duplicate", "delivery": delivery}
    assert len([r for r in agent.runs() if r["service"] == name]) == 1
