"""DORA figures on a hand-made production history (answers worked out by hand below)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.deploy.dora import compute_dora
from store.models import Deployment, DeploymentKind, DeploymentStatus

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def dep(id_: int, day: int, hour: int, *, kind=DeploymentKind.deploy,
        status=DeploymentStatus.superseded, lead_h: float | None = 2, env="production",
        service_id: int = 1) -> Deployment:
    finished = datetime(2026, 3, day, hour, tzinfo=UTC)
    return Deployment(id=id_, service_id=service_id, service=f"s{service_id}", environment=env,
                      sha=f"{id_:07x}", image="x", status=status, kind=kind,
                      started_at=finished - timedelta(minutes=1), finished_at=finished,
                      committed_at=finished - timedelta(hours=lead_h) if lead_h else None)


HISTORY = [
    dep(1, 1, 10),                                   # before the 10-day window: ignored
    dep(2, 22, 10, lead_h=1),                        # ok
    dep(3, 23, 10, lead_h=3, status=DeploymentStatus.rolled_back),  # bad: rolled back by 4
    dep(4, 23, 11, kind=DeploymentKind.rollback, lead_h=None),      # restore after 1 h
    dep(5, 25, 10, status=DeploymentStatus.failed, lead_h=5),       # failed health check
    dep(6, 25, 13, lead_h=4),                        # next success: restore 3 h after 5
    dep(7, 26, 10, lead_h=None, env="staging"),      # staging: ignored
    dep(8, 30, 10, lead_h=6, status=DeploymentStatus.active),
]


def test_dora_figures_match_a_hand_computed_history() -> None:
    figures = compute_dora(HISTORY, days=10, now=NOW, service="s1")
    # In the window (since Mar 21 12:00): production deploy attempts 2, 3, 5, 6, 8.
    # Live ones: 2, 3, 6, 8 → 4 deployments, 0.4 per day.
    assert figures.deployments == 4
    assert figures.deployment_frequency_per_day == 0.4
    # Lead times of 2, 3, 6, 8: 1 h, 3 h, 4 h, 6 h → median 3.5 h.
    assert figures.lead_time_median_s == 3.5 * 3600
    # Failures: 3 (followed by a rollback) and 5 (failed) → 2 of 5.
    assert figures.change_failure_rate == 0.4
    # Restores: 3 → rollback 4 after 1 h; 5 → deploy 6 after 3 h → median 2 h.
    assert figures.time_to_restore_median_s == 2 * 3600


def test_dora_of_an_empty_window_has_no_rates() -> None:
    figures = compute_dora(HISTORY, days=1, now=NOW)
    assert (figures.deployments, figures.deployment_frequency_per_day) == (0, 0.0)
    assert figures.lead_time_median_s is None and figures.change_failure_rate is None
    assert figures.time_to_restore_median_s is None


def test_next_deployment_is_looked_up_within_the_same_service() -> None:
    other = dep(9, 24, 10, kind=DeploymentKind.rollback, lead_h=None, service_id=2)
    history = [dep(2, 22, 10), other, dep(10, 24, 12)]
    figures = compute_dora(history, days=10, now=NOW)
    assert figures.change_failure_rate == 0.0  # service 2's rollback does not blame service 1
