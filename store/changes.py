"""Change decisions of monorepo services (why each ran or not) and what they compare
against: the sha of a service's last successful run on its branch."""

from __future__ import annotations

import json
import sqlite3

from store.configs import NotFound
from store.db import Database, iso
from store.models import ChangeDecision, RunKind, RunStatus

_SELECT = ("SELECT d.*, s.name AS service FROM change_decisions d"
           " JOIN services s ON s.id=d.service_id")
MAX_MATCHED_STORED = 50


def _decision(row: sqlite3.Row) -> ChangeDecision:
    data = {k: row[k] for k in ChangeDecision.model_fields if k != "matched"}
    return ChangeDecision(**data, matched=json.loads(row["matched"]))


class ChangeQueries(Database):
    def last_success_sha(self, service_id: int, branch: str) -> str | None:
        """The sha of the service's last successful full run on `branch`."""
        row = self.query_one(
            "SELECT sha FROM runs WHERE service_id=? AND branch=? AND status=? AND kind=?"
            " ORDER BY id DESC LIMIT 1",
            (service_id, branch, RunStatus.success.value, RunKind.full.value))
        return str(row["sha"]) if row else None

    def record_decision(self, *, batch: str, service_id: int, trigger: str, sha: str,
                        branch: str | None, base_sha: str | None, base_kind: str, ran: bool,
                        reason: str, matched: list[str], changed_count: int | None,
                        run_id: int | None = None) -> ChangeDecision:
        with self.write() as conn:
            cur = conn.execute(
                "INSERT INTO change_decisions (batch, service_id, trigger, sha, branch,"
                " base_sha, base_kind, ran, reason, matched, matched_count, changed_count,"
                " run_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (batch, service_id, trigger, sha, branch, base_sha, base_kind, int(ran),
                 reason, json.dumps(matched[:MAX_MATCHED_STORED]), len(matched),
                 changed_count, run_id, iso()))
            decision_id = int(cur.lastrowid or 0)
        return self.get_decision(decision_id)

    def set_decision_run(self, decision_id: int, run_id: int) -> None:
        with self.write() as conn:
            conn.execute("UPDATE change_decisions SET run_id=? WHERE id=?",
                         (run_id, decision_id))

    def get_decision(self, decision_id: int) -> ChangeDecision:
        row = self.query_one(f"{_SELECT} WHERE d.id=?", (decision_id,))
        if row is None:
            raise NotFound(f"no change decision {decision_id}")
        return _decision(row)

    def list_decisions(self, *, service_id: int | None = None, sha: str | None = None,
                       batch: str | None = None, limit: int = 50) -> list[ChangeDecision]:
        where, params = [], []
        for column, value in (("d.service_id", service_id), ("d.batch", batch)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        if sha is not None:
            where.append("d.sha LIKE ?")
            params.append(f"{sha}%")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.query(f"{_SELECT}{clause} ORDER BY d.id DESC LIMIT ?", (*params, limit))
        return [_decision(r) for r in rows]

    def decision_for_run(self, run_id: int) -> ChangeDecision | None:
        row = self.query_one(f"{_SELECT} WHERE d.run_id=? ORDER BY d.id DESC LIMIT 1",
                             (run_id,))
        return _decision(row) if row else None
