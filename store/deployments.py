"""Deployments (the rollback picker reads these) and approvals."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from store.configs import NotFound
from store.db import Database, iso
from store.models import (
    Approval,
    ApprovalStatus,
    CanaryMeasurement,
    CommitSummary,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
)

_DEPLOY_SELECT = ("SELECT d.*, s.name AS service FROM deployments d"
                  " JOIN services s ON s.id=d.service_id")
_APPROVAL_SELECT = ("SELECT a.*, s.name AS service FROM approvals a JOIN runs r ON r.id=a.run_id"
                    " JOIN services s ON s.id=r.service_id")


def _deployment(row: sqlite3.Row) -> Deployment:
    data = {k: row[k] for k in Deployment.model_fields if k in row.keys()}
    data["current"] = row["status"] == DeploymentStatus.active.value
    return Deployment(**data)


def _approval(row: sqlite3.Row) -> Approval:
    data = {k: row[k] for k in Approval.model_fields if k != "commits"}
    commits = [CommitSummary(**c) for c in json.loads(row["commits"])]
    return Approval(**data, commits=commits)


class DeployQueries(Database):
    # -- canary figures -------------------------------------------------------------
    def add_canary_measurement(self, deployment_id: int, m: CanaryMeasurement) -> None:
        with self.write() as conn:
            conn.execute(
                "INSERT INTO canary_measurements (deployment_id, step, weight, role, colour,"
                " window_start, window_end, requests, errors, p50_ms, p95_ms, verdict, rule)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (deployment_id, m.step, m.weight, m.role, m.colour, iso(m.window_start),
                 iso(m.window_end), m.requests, m.errors, m.p50_ms, m.p95_ms, m.verdict,
                 m.rule))

    def list_canary_measurements(self, deployment_id: int) -> list[CanaryMeasurement]:
        rows = self.reader().execute(
            "SELECT * FROM canary_measurements WHERE deployment_id=? ORDER BY id",
            (deployment_id,)).fetchall()
        return [CanaryMeasurement(**{k: r[k] for k in CanaryMeasurement.model_fields})
                for r in rows]

    # -- deployments --------------------------------------------------------------
    def create_deployment(self, *, service_id: int, environment: str, sha: str, image: str,
                          kind: DeploymentKind, run_id: int | None = None,
                          actor: str | None = None, message: str | None = None,
                          author: str | None = None, committed_at: datetime | None = None
                          ) -> Deployment:
        with self.write() as conn:
            cur = conn.execute(
                "INSERT INTO deployments (service_id, environment, sha, image, run_id, status,"
                " kind, actor, message, author, committed_at, started_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (service_id, environment, sha, image, run_id, DeploymentStatus.in_progress.value,
                 kind.value, actor, message, author,
                 iso(committed_at) if committed_at else None, iso()))
            return self.get_deployment(int(cur.lastrowid or 0))

    def finish_deployment(self, deployment_id: int, status: DeploymentStatus, *,
                          error: str | None = None, target_state: dict[str, Any] | None = None
                          ) -> Deployment:
        """Mark a deployment done; a new active one supersedes the previous active one."""
        with self.write() as conn:
            dep = self.get_deployment(deployment_id)
            if status is DeploymentStatus.active:
                conn.execute(
                    "UPDATE deployments SET status=? WHERE service_id=? AND environment=?"
                    " AND status=? AND id<>?",
                    (DeploymentStatus.superseded.value, dep.service_id, dep.environment,
                     DeploymentStatus.active.value, deployment_id))
            conn.execute(
                "UPDATE deployments SET status=?, finished_at=?, error=?,"
                " target_state=COALESCE(?, target_state) WHERE id=?",
                (status.value, iso(), self.redact(error) if error else error,
                 self.redact(json.dumps(target_state)) if target_state is not None else None,
                 deployment_id))
            return self.get_deployment(deployment_id)

    def mark_rolled_back(self, deployment_id: int) -> Deployment:
        """A deployment a rollback replaced: shown as rolled back in the history (and DORA)."""
        with self.write() as conn:
            conn.execute("UPDATE deployments SET status=? WHERE id=?",
                         (DeploymentStatus.rolled_back.value, deployment_id))
        return self.get_deployment(deployment_id)

    def get_deployment(self, deployment_id: int) -> Deployment:
        row = self.query_one(_DEPLOY_SELECT + " WHERE d.id=?", (deployment_id,))
        if row is None:
            raise NotFound(f"no deployment with id {deployment_id}")
        return _deployment(row)

    def list_deployments(self, *, service_id: int | None = None,
                         environment: str | None = None, run_id: int | None = None,
                         limit: int = 100) -> list[Deployment]:
        where: list[str] = []
        params: list[object] = []
        if run_id is not None:
            where.append("d.run_id=?")
            params.append(run_id)
        if service_id is not None:
            where.append("d.service_id=?")
            params.append(service_id)
        if environment is not None:
            where.append("d.environment=?")
            params.append(environment)
        sql = _DEPLOY_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.query(sql + " ORDER BY d.id DESC LIMIT ?", (*params, limit))
        return [_deployment(r) for r in rows]

    def current_deployment(self, service_id: int, environment: str) -> Deployment | None:
        row = self.query_one(
            _DEPLOY_SELECT + " WHERE d.service_id=? AND d.environment=? AND d.status=?"
            " ORDER BY d.id DESC LIMIT 1",
            (service_id, environment, DeploymentStatus.active.value))
        return _deployment(row) if row else None

    def deployment_target_state(self, deployment_id: int) -> dict[str, Any] | None:
        row = self.query_one("SELECT target_state FROM deployments WHERE id=?", (deployment_id,))
        return json.loads(row[0]) if row and row[0] else None

    # -- approvals -------------------------------------------------------------------
    def create_approval(self, *, run_id: int, candidate_sha: str, production_sha: str | None,
                        commits: list[CommitSummary], staging_health: str | None,
                        expires_at: datetime | None) -> Approval:
        with self.write() as conn:
            conn.execute(
                "INSERT INTO approvals (run_id, status, candidate_sha, production_sha, commits,"
                " staging_health, requested_at, expires_at) VALUES (?,?,?,?,?,?,?,?)",
                (run_id, ApprovalStatus.pending.value, candidate_sha, production_sha,
                 json.dumps([c.model_dump(mode="json") for c in commits]),
                 self.redact(staging_health) if staging_health else staging_health,
                 iso(), iso(expires_at) if expires_at else None))
        return self.get_approval(run_id)

    def get_approval(self, run_id: int) -> Approval:
        row = self.query_one(_APPROVAL_SELECT + " WHERE a.run_id=?", (run_id,))
        if row is None:
            raise NotFound(f"run {run_id} has no approval")
        return _approval(row)

    def list_approvals(self, status: ApprovalStatus | None = ApprovalStatus.pending
                       ) -> list[Approval]:
        if status is None:
            rows = self.query(_APPROVAL_SELECT + " ORDER BY a.id DESC LIMIT 200")
        else:
            rows = self.query(_APPROVAL_SELECT + " WHERE a.status=? ORDER BY a.id",
                              (status.value,))
        return [_approval(r) for r in rows]

    def decide_approval(self, run_id: int, status: ApprovalStatus, *, actor: str,
                        comment: str | None = None) -> Approval:
        """Decide a pending approval; deciding twice is refused (the first word stands)."""
        with self.write() as conn:
            cur = conn.execute(
                "UPDATE approvals SET status=?, actor=?, decided_at=?, comment=?"
                " WHERE run_id=? AND status=?",
                (status.value, actor, iso(), comment, run_id, ApprovalStatus.pending.value))
            if cur.rowcount == 0:
                current = self.get_approval(run_id)
                raise ValueError(f"approval for run {run_id} is already {current.status.value}")
        return self.get_approval(run_id)
