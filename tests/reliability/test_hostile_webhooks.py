"""1,000 hostile webhook deliveries: every one refused, no run created, memory flat."""

from __future__ import annotations

import psutil
import pytest

from tests.reliability.conftest import svc_name
from tests.reliability.hostile import FloodResult, fire, hostile_requests
from tests.reliability.served import ServedAgent, post_push

SECRET = "hook-secret-5b1e0c"
# A second round of the same 1,000 deliveries may grow the agent by at most this much. The
# first round is the warm-up: its 25 MB bodies raise the allocator's high-water mark once
# (measured at load 10: 89 MB at start, 115 after a 40-request warm-up, 141 after the first
# 1,000, then 141, 141, 141 after three more rounds: no leak, memory glibc keeps). A second
# round can still hold one more oversized body at a time than the first did (25 MB);
# anything leaked per delivery over 25 KB shows beyond that.
RSS_GROWTH_BOUND = 25 * 1024 * 1024


def _assert_refused(result: FloodResult) -> None:
    assert not result.errors, result.errors[:5]
    assert sum(result.statuses.values()) == 1000
    for kind, statuses in result.by_kind.items():
        if kind == "replayed_delivery":  # acknowledged as a duplicate, never run
            assert set(statuses) == {200}, (kind, statuses)
        else:
            assert all(400 <= s < 500 for s in statuses), (kind, statuses)
    assert result.by_kind["oversized"] == {413: 2}


@pytest.mark.slow
def test_a_thousand_hostile_deliveries_create_no_run_and_are_all_refused(
        serve, sample_repo) -> None:
    repo = sample_repo("hooked")
    agent: ServedAgent = serve()
    name = svc_name("hostile")
    agent.add_pipeline("shop")
    agent.add_service(name, "shop", repo.url, webhook_secret=SECRET)
    from tests.reliability.served import push_payload

    # the one legitimate delivery: its id is replayed below and must not run twice
    legit = post_push(agent, SECRET, push_payload(repo.url, repo.head_sha), delivery="legit-1")
    assert legit.status_code == 200 and legit.json()["status"] == "queued", legit.text
    assert len(agent.runs()) == 1
    hostile = list(hostile_requests(1000, secret=SECRET, repo_url=repo.url,
                                    sha=repo.head_sha, replay_delivery="legit-1"))
    _assert_refused(fire(f"{agent.url}/webhooks/github", hostile))  # also the warm-up
    rss_before = psutil.Process(agent.pid).memory_info().rss

    _assert_refused(fire(f"{agent.url}/webhooks/github", hostile))  # the same 1,000 again
    rss_after = psutil.Process(agent.pid).memory_info().rss

    runs = agent.runs()
    assert len(runs) == 1, [(r["id"], r["trigger"], r["sha"]) for r in runs]
    assert rss_after - rss_before < RSS_GROWTH_BOUND, (rss_before, rss_after)
    assert agent.call("GET", "/healthz", 200)["status"] == "ok"
    assert agent.integrity_check() == "ok"
