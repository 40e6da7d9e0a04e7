"""Twenty services pushed at once on a 2-core machine: every five-stage run finishes,
none is lost, they start in submission order, and the run list keeps answering."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import pytest

from tests.reliability.served import ServedAgent, summary
from tests.reliability.storm import FIVE_STAGES, make_services, storm

SERVICES = 20
PARALLEL = 4


@pytest.mark.slow
def test_twenty_services_pushed_at_once_all_finish_in_fair_order(serve, tmp_path: Path) -> None:
    agent: ServedAgent = serve(max_parallel=PARALLEL)
    services = make_services(agent, tmp_path / "repos", SERVICES, f"storm-{uuid.uuid4().hex[:6]}")
    result = storm(agent, services, timeout_s=240)
    print(f"\nstorm: {SERVICES} runs in {result.wall_s:.1f} s; GET /api/v1/runs "
          f"p50 {result.p(0.5):.1f} ms, p99 {result.p(0.99):.1f} ms "
          f"over {len(result.list_latencies_ms)} requests")

    assert len(result.runs) == SERVICES
    assert len(agent.runs()) == SERVICES  # none lost, none duplicated
    for run in result.runs:
        assert run["status"] == "success", summary(run)
        executed = [s["name"] for s in run["stages"] if s["status"] == "success"]
        assert executed == FIVE_STAGES, summary(run)
    # fair: the queue hands out slots oldest first
    by_id = sorted(result.runs, key=lambda r: r["id"])
    starts = [datetime.fromisoformat(r["started_at"]) for r in by_id]
    assert starts == sorted(starts), [(r["id"], r["started_at"]) for r in by_id]
    assert result.list_latencies_ms
    assert agent.integrity_check() == "ok"
