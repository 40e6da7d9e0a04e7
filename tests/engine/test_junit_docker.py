"""JUnit reports written by a real test script in the busybox stage container, into the
bind-mounted checkout: a passing command with failing reports, a flake (its outcome flips
on a commit that changes no file) retried once and passing, a quarantined test, and a
Surefire-style Integration Test report."""

from __future__ import annotations

from agent.runtime import Agent
from store.models import RunStatus, TestsConfig
from tests.engine.conftest import add_service, log_text, push, stage_statuses, wait_run
from tests.sample_repo import git

# test_refund (the flake) fails on odd attempts of the service, counted in its cache
# (/cache outlives checkouts); test_db always fails.
TEST_SH = """#!/bin/sh
n=$(cat /cache/attempts 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > /cache/attempts
refund='<failure message="refund timed out">Timeout after 5s in refund()</failure>'
[ $((n % 2)) -eq 0 ] && refund=''
mkdir -p reports
cat > reports/junit.xml <<EOF
<?xml version="1.0"?>
<testsuites><testsuite name="shop" tests="3">
<testcase classname="shop.payments" name="test_charge" time="0.51"/>
<testcase classname="shop.payments" name="test_refund" time="0.20">$refund</testcase>
<testcase classname="shop.db" name="test_db" time="1.5">
<failure message="db down">conn refused</failure></testcase>
</testsuite></testsuites>
EOF
echo "shop.payments::test_refund attempt $n"
exit 0
"""
IT_SH = """#!/bin/sh
mkdir -p target/surefire-reports
cat > target/surefire-reports/TEST-shop.CheckoutIT.xml <<EOF
<?xml version="1.0"?>
<testsuite name="shop.CheckoutIT" tests="2">
<testcase classname="shop.CheckoutIT" name="checkout" time="2.0"/>
<testcase classname="shop.CheckoutIT" name="cancel" time="1.0"/>
</testsuite>
EOF
"""


async def test_reports_from_a_container_decide_retry_and_quarantine(
        agent: Agent, sample_repo) -> None:
    repo = sample_repo("junit-shop")
    repo.commit("junit tests", {"test.sh": TEST_SH, "it.sh": IT_SH})
    service = add_service(agent, repo, dockerfile=None, compose_file=None,
                          integration_test_command="sh it.sh",
                          tests=TestsConfig(retry_flaky=True))
    first = await wait_run(agent, push(agent, service, repo.head_sha).id)

    assert stage_statuses(first)["Unit Test"] == "failed"
    unit = next(s for s in first.stages if s.name == "Unit Test")
    assert unit.error == ("Unit Test: the command passed but its test reports show 2 failed "
                          "test(s): shop.payments::test_refund, shop.db::test_db")
    db = agent.store.find_test(service.id, "shop.db::test_db")
    agent.store.quarantine_test(db, "alice", "db container flaky on this host")

    # A commit that changes no file: test_refund passes now — it flipped on the same code.
    git(repo.path, "commit", "-q", "--allow-empty", "-m", "retrigger")
    second = await wait_run(agent, push(agent, service, repo.head_sha).id)
    assert second.status is RunStatus.success, second.error
    refund = agent.store.find_test(service.id, "test_refund")
    assert agent.store.flaky_score(refund) == 0.5

    # A real change: test_refund fails once, is a known flake: retried, and passes.
    repo.commit("change", {"app/version": "v2\n"})
    third = await wait_run(agent, push(agent, service, repo.head_sha).id)
    assert third.status is RunStatus.success, third.error
    log = log_text(agent, third.id, "Unit Test")
    assert "shop.payments::test_refund attempt 3" in log
    assert "shop.payments::test_refund attempt 4" in log
    summary = agent.store.run_test_summary(third.id)
    counts = {s.stage: (s.attempts, s.passed, s.flaky, s.quarantined, s.failed)
              for s in summary.stages}
    assert counts == {"Unit Test": (2, 1, 1, 1, 0), "Integration Test": (1, 2, 0, 0, 0)}
    first_failure = summary.failures[0]
    assert (first_failure.name, first_failure.quarantined) == ("test_db", True)
    flaky = next(f for f in summary.failures if f.name == "test_refund")
    assert flaky.outcome.value == "flaky" and flaky.message == "refund timed out"
    assert flaky.log_line is not None  # where its output starts in the stage log
