"""Change decisions of monorepo services (why each ran or not) and what they compare
against: the sha of a service's last successful run on its branch."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from store.configs import NotFound
from store.db import Database, iso
from store.models import ChangeDecision, RunKind, RunStatus

_SELECT = ("SELECT d.*, s.name AS service FROM change_decisions d"
           " JOIN services s ON s.id=d.service_id")
MAX_MATCHED_STORED = 50


def _decision(row: sqlite3.Row) -> ChangeDecision:
    data = {k: row[k] for k in ChangeDecision.model_fields if k != "matched"}
    return ChangeDecision(**data, matched=json.loads(row["matched"]))


@dataclass(frozen=True)
class DecisionRow:
    batch: str
    service_id: int
    trigger: str
    sha: str
    branch: str | None
    base_sha: str | None
    base_kind: str
    ran: bool
    reason: str
    matched: list[str] = field(default_factory=list)
    changed_count: int | None = None
    run_id: int | None = None


class ChangeQueries(Database):
    def last_success_sha(self, service_id: int, branch: str) -> str | None:
        """The sha of the service's last successful full run on `branch`."""
        row = self.query_one(
            "SELECT sha FROM runs WHERE service_id=? AND branch=? AND status=? AND kind=?"
            " ORDER BY id DESC LIMIT 1",
            (service_id, branch, RunStatus.success.value, RunKind.full.value))
        return str(row["sha"]) if row else None

    def record_decision(self, **fields: Any) -> ChangeDecision:
        """One decision (keywords: DecisionRow's fields)."""
        return self.record_decisions([DecisionRow(**fields)])[0]

    def record_decisions(self, rows: list[DecisionRow]) -> list[ChangeDecision]:
        """A batch's decisions, in one transaction (a push may decide for 200 services)."""
        ids = []
        stamp = iso()
        with self.write() as conn:
            for row in rows:
                cur = conn.execute(
                    "INSERT INTO change_decisions (batch, service_id, trigger, sha, branch,"
                    " base_sha, base_kind, ran, reason, matched, matched_count, changed_count,"
                    " run_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (row.batch, row.service_id, row.trigger, row.sha, row.branch, row.base_sha,
                     row.base_kind, int(row.ran), row.reason,
                     json.dumps(row.matched[:MAX_MATCHED_STORED]), len(row.matched),
                     row.changed_count, row.run_id, stamp))
                ids.append(int(cur.lastrowid or 0))
        marks = ",".join("?" * len(ids))
        found = {d.id: d for d in map(_decision, self.query(
            f"{_SELECT} WHERE d.id IN ({marks})", ids))} if ids else {}
        return [found[i] for i in ids]

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

    def forget_undecided_deliveries(self) -> list[str]:
        """Webhook deliveries answered `deciding` whose decision stored nothing (the agent
        stopped or died first; a batch is stored whole or not at all): forgotten, so
        GitHub's redelivery is decided instead of answered `duplicate`. For the start,
        before any decision runs. The delivery ids."""
        with self.write() as conn:
            rows = conn.execute(
                "SELECT delivery_id FROM webhook_deliveries d WHERE outcome='deciding'"
                " AND NOT EXISTS (SELECT 1 FROM change_decisions c"
                "  WHERE c.batch='delivery:' || d.delivery_id)").fetchall()
            conn.executemany("DELETE FROM webhook_deliveries WHERE delivery_id=?",
                             [(r[0],) for r in rows])
        return [str(r[0]) for r in rows]

    def batch_decision_for_run(self, run_id: int) -> ChangeDecision | None:
        """The decision that queued the run or, for a rerun, the run it reruns (a rerun
        belongs to its original's batch: a push, a poll, a `trigger --all`)."""
        seen: set[int] = set()
        current: int | None = run_id
        while current is not None and current not in seen:
            seen.add(current)
            decision = self.decision_for_run(current)
            if decision is not None:
                return decision
            row = self.query_one("SELECT rerun_of FROM runs WHERE id=?", (current,))
            current = row[0] if row else None
        return None

    def newest_rerun(self, run_id: int) -> int:
        """The newest run of the rerun chain that starts at `run_id` (reruns of it, of
        those, …), or `run_id` itself: what stands for that run now."""
        row = self.query_one("SELECT service_id FROM runs WHERE id=?", (run_id,))
        if row is None:
            return run_id
        chain = {run_id}
        for later, rerun_of in self.query(
                "SELECT id, rerun_of FROM runs WHERE service_id=? AND id>? ORDER BY id"
                " LIMIT 1000", (row[0], run_id)):
            if rerun_of in chain:
                chain.add(later)
        return max(chain)
