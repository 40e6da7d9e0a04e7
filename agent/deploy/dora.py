"""DORA delivery figures from the production deployment history.

Definitions (production only, deployments finished inside the window):
- deployments: successful production deploys of kind `deploy` (rollbacks are not changes);
  deployment frequency = that count / window days.
- lead time for changes: median of (deploy finished − commit time) over those deploys.
- change failure rate: failed changes / attempted changes, where an attempt is a finished
  production deploy of kind `deploy`, and it failed when it did not go live (health check,
  target error) or when the next production deployment after it is a rollback.
- time to restore: median, over failed changes with a later successful production
  deployment, of (that deployment finished − the failed change finished).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median

from store.models import Deployment, DeploymentKind, DeploymentStatus, DoraFigures

_LIVE = {DeploymentStatus.active, DeploymentStatus.superseded, DeploymentStatus.rolled_back}


def compute_dora(deployments: list[Deployment], *, days: int, now: datetime,
                 service: str | None = None) -> DoraFigures:
    prod = sorted((d for d in deployments
                   if d.environment == "production" and d.finished_at is not None),
                  key=lambda d: (_end(d), d.id))
    since = now - timedelta(days=days)
    # Per service: "the next deployment" only makes sense within one service's history.
    next_of: dict[int, Deployment | None] = {}
    by_service: dict[int, list[Deployment]] = {}
    for d in prod:
        by_service.setdefault(d.service_id, []).append(d)
    for history in by_service.values():
        for i, d in enumerate(history):
            next_of[d.id] = history[i + 1] if i + 1 < len(history) else None

    attempts = [d for d in prod if d.kind is DeploymentKind.deploy and _end(d) >= since]
    succeeded = [d for d in attempts if d.status in _LIVE]
    lead_times = [(_end(d) - d.committed_at).total_seconds()
                  for d in succeeded if d.committed_at is not None]

    failures: list[Deployment] = []
    for d in attempts:
        nxt = next_of[d.id]
        rolled_back = nxt is not None and nxt.kind is DeploymentKind.rollback
        if d.status is DeploymentStatus.failed or rolled_back:
            failures.append(d)
    restores = []
    for d in failures:
        fix = _next_success(d, by_service[d.service_id])
        if fix is not None:
            restores.append((_end(fix) - _end(d)).total_seconds())

    return DoraFigures(
        service=service, window_days=days, deployments=len(succeeded),
        deployment_frequency_per_day=round(len(succeeded) / days, 4) if days else 0.0,
        lead_time_median_s=median(lead_times) if lead_times else None,
        change_failure_rate=round(len(failures) / len(attempts), 4) if attempts else None,
        time_to_restore_median_s=median(restores) if restores else None)


def _end(d: Deployment) -> datetime:
    assert d.finished_at is not None  # only finished deployments get here
    return d.finished_at


def _next_success(failed: Deployment, history: list[Deployment]) -> Deployment | None:
    after = False
    for d in history:
        if after and d.status in _LIVE:
            return d
        after = after or d.id == failed.id
    return None
