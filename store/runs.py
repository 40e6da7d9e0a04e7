"""Runs and their stages. Every status transition is one committed write."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from store.configs import NotFound
from store.db import Database, iso
from store.models import (
    DEFAULT_STAGES,
    FINISHED_RUN_STATUSES,
    RunInfo,
    RunKind,
    RunStatus,
    StageInfo,
    StageStatus,
    Trigger,
)

_RUN_SELECT = (
    "SELECT r.*, s.name AS service, p.name AS pipeline FROM runs r"
    " JOIN services s ON s.id=r.service_id JOIN pipelines p ON p.id=s.pipeline_id"
)


def _stage(row: sqlite3.Row) -> StageInfo:
    return StageInfo(**{k: row[k] for k in StageInfo.model_fields})


def _run(row: sqlite3.Row, stages: list[StageInfo] | None = None) -> RunInfo:
    data = {k: row[k] for k in RunInfo.model_fields if k != "stages"}
    return RunInfo(**data, stages=stages or [])


class RunQueries(Database):
    def create_run(
        self,
        service_id: int,
        *,
        trigger: Trigger,
        kind: RunKind,
        sha: str,
        branch: str | None = None,
        pr_number: int | None = None,
        author: str | None = None,
        message: str | None = None,
        rerun_of: int | None = None,
        rerun_from_stage: str | None = None,
        actor: str | None = None,
        stage_names: tuple[str, ...] = DEFAULT_STAGES,
        config_hash: str | None = None,
    ) -> RunInfo:
        """A queued run with its stages idle, numbered per service."""
        stamp = iso()
        with self.write() as conn:
            row = conn.execute("SELECT next_run_number FROM services WHERE id=?",
                               (service_id,)).fetchone()
            if row is None:
                raise NotFound(f"no service with id {service_id}")
            number = row[0]
            conn.execute("UPDATE services SET next_run_number=? WHERE id=?",
                         (number + 1, service_id))
            cur = conn.execute(
                "INSERT INTO runs (service_id, number, trigger, kind, sha, branch, pr_number,"
                " author, message, status, created_at, rerun_of, rerun_from_stage, actor,"
                " config_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (service_id, number, trigger.value, kind.value, sha, branch, pr_number, author,
                 message, RunStatus.queued.value, stamp, rerun_of, rerun_from_stage, actor,
                 config_hash))
            run_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO stages (run_id, name, position, status) VALUES (?,?,?,?)",
                [(run_id, name, pos, StageStatus.idle.value)
                 for pos, name in enumerate(stage_names)])
            return self.get_run(run_id)

    def run_config_hash(self, run_id: int) -> str | None:
        """The fingerprint of the config the run was made with (None: made before 7)."""
        row = self.query_one("SELECT config_hash FROM runs WHERE id=?", (run_id,))
        return None if row is None else row[0]

    def get_run(self, run_id: int) -> RunInfo:
        row = self.query_one(_RUN_SELECT + " WHERE r.id=?", (run_id,))
        if row is None:
            raise NotFound(f"no run with id {run_id}")
        return _run(row, self.list_stages(run_id))

    def list_stages(self, run_id: int) -> list[StageInfo]:
        rows = self.query("SELECT * FROM stages WHERE run_id=? ORDER BY position", (run_id,))
        return [_stage(r) for r in rows]

    def get_stage(self, run_id: int, name: str) -> StageInfo:
        row = self.query_one("SELECT * FROM stages WHERE run_id=? AND name=?", (run_id, name))
        if row is None:
            raise NotFound(f"run {run_id} has no stage {name!r}")
        return _stage(row)

    def list_runs(
        self,
        *,
        service: str | None = None,
        status: RunStatus | None = None,
        branch: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
        with_stages: bool = True,
    ) -> list[RunInfo]:
        """Newest first; `before_id` is the cursor for the next page."""
        where: list[str] = []
        params: list[object] = []
        if service is not None:
            where.append("s.name=?")
            params.append(service)
        if status is not None:
            where.append("r.status=?")
            params.append(status.value)
        if branch is not None:
            where.append("r.branch=?")
            params.append(branch)
        if before_id is not None:
            where.append("r.id<?")
            params.append(before_id)
        sql = _RUN_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY r.id DESC LIMIT ?"
        rows = self.query(sql, (*params, limit))
        stages = self._stages_for([r["id"] for r in rows]) if with_stages else {}
        return [_run(r, stages.get(r["id"])) for r in rows]

    def _stages_for(self, run_ids: list[int]) -> dict[int, list[StageInfo]]:
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        rows = self.query(
            f"SELECT * FROM stages WHERE run_id IN ({marks}) ORDER BY run_id, position", run_ids)
        out: dict[int, list[StageInfo]] = {}
        for row in rows:
            out.setdefault(row["run_id"], []).append(_stage(row))
        return out

    def runs_with_status(self, *statuses: RunStatus, service_id: int | None = None
                         ) -> list[RunInfo]:
        marks = ",".join("?" * len(statuses))
        params: list[object] = [s.value for s in statuses]
        one = ""
        if service_id is not None:  # one service's: a push of 200 services reads 200, not 200²
            one = " AND r.service_id=?"
            params.append(service_id)
        rows = self.query(_RUN_SELECT + f" WHERE r.status IN ({marks}){one} ORDER BY r.id",
                          params)
        stages = self._stages_for([r["id"] for r in rows])
        return [_run(r, stages.get(r["id"])) for r in rows]

    def last_run_per_service(self) -> dict[int, RunInfo]:
        rows = self.query(
            _RUN_SELECT + " WHERE r.id IN (SELECT MAX(id) FROM runs GROUP BY service_id)")
        stages = self._stages_for([r["id"] for r in rows])
        return {r["service_id"]: _run(r, stages.get(r["id"])) for r in rows}

    def set_run_status(self, run_id: int, status: RunStatus, *, error: str | None = None
                       ) -> RunInfo:
        stamp = iso()
        fields: dict[str, Any] = {"status": status.value}
        if status is RunStatus.running:
            fields["started_at"] = stamp
        if status in FINISHED_RUN_STATUSES:
            fields["finished_at"] = stamp
        if error is not None:
            fields["error"] = self.redact(error)
        if status is not RunStatus.queued:  # started or ended: no longer waiting to start
            fields["waiting"] = fields["waiting_since"] = None
        with self.write() as conn:
            if status is RunStatus.running:
                # Keep the first start time when a run resumes after approval.
                conn.execute("UPDATE runs SET started_at=COALESCE(started_at, ?) WHERE id=?",
                             (stamp, run_id))
                fields.pop("started_at")
            sets = ", ".join(f"{k}=?" for k in fields)
            conn.execute(f"UPDATE runs SET {sets} WHERE id=?", (*fields.values(), run_id))
        return self.get_run(run_id)

    def set_run_waiting(self, run_id: int, waiting: str | None) -> RunInfo:
        """Why the queued run has not started (None: it is no longer held); since when
        is kept from the first time it was held (`waiting_since`)."""
        since = None if waiting is None else iso()
        with self.write() as conn:
            conn.execute("UPDATE runs SET waiting=?, waiting_since=CASE WHEN ? IS NULL THEN"
                         " NULL ELSE COALESCE(waiting_since, ?) END WHERE id=? AND status=?",
                         (waiting, since, since, run_id, RunStatus.queued.value))
        return self.get_run(run_id)

    def set_stage_status(
        self,
        run_id: int,
        name: str,
        status: StageStatus,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        container_id: str | None = None,
        reused_from_run: int | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> StageInfo:
        fields: dict[str, Any] = {"status": status.value}
        if status is StageStatus.in_progress:
            fields["started_at"] = iso(started_at)
        if status.finished:
            fields["finished_at"] = iso(finished_at)
        for key, value in (("exit_code", exit_code), ("error", error),
                           ("container_id", container_id),
                           ("reused_from_run", reused_from_run)):
            if value is not None:
                fields[key] = value
        if error is not None:
            fields["error"] = self.redact(error)
        if started_at is not None:
            fields["started_at"] = iso(started_at)
        sets = ", ".join(f"{k}=?" for k in fields)
        with self.write() as conn:
            cur = conn.execute(f"UPDATE stages SET {sets} WHERE run_id=? AND name=?",
                               (*fields.values(), run_id, name))
            if cur.rowcount == 0:
                raise NotFound(f"run {run_id} has no stage {name!r}")
        return self.get_stage(run_id, name)

    def set_stage_executor_state(self, run_id: int, name: str, state: dict[str, Any] | None
                                 ) -> None:
        """What an executor needs to find its work again after a restart."""
        self.execute("UPDATE stages SET executor_state=? WHERE run_id=? AND name=?",
                     (json.dumps(state) if state is not None else None, run_id, name))

    def set_stage_executor(self, run_id: int, name: str, executor: str) -> None:
        self.execute("UPDATE stages SET executor=? WHERE run_id=? AND name=?",
                     (executor, run_id, name))

    def get_stage_executor_state(self, run_id: int, name: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT executor_state FROM stages WHERE run_id=? AND name=?",
                             (run_id, name))
        if row is None or row[0] is None:
            return None
        return dict(json.loads(row[0]))

    def count_runs(self, status: RunStatus | None = None) -> dict[str, int]:
        rows = self.query("SELECT status, COUNT(*) FROM runs GROUP BY status")
        return {r[0]: r[1] for r in rows}
