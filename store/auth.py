"""API tokens (hashed at rest), the audit log, webhook deliveries, poll state."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3

from store.configs import NotFound
from store.db import Database, iso
from store.models import ApiToken, AuditEvent, Role, WebhookDelivery

TOKEN_PREFIX = "sls_"


def hash_token(token: str) -> str:
    # Tokens are 256-bit random: a plain SHA-256 is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


def _token(row: sqlite3.Row) -> ApiToken:
    return ApiToken(id=row["id"], name=row["name"], role=row["role"],
                    created_at=row["created_at"], last_used_at=row["last_used_at"],
                    revoked=bool(row["revoked"]))


class AuthQueries(Database):
    # -- tokens ----------------------------------------------------------------------
    def create_token(self, name: str, role: Role) -> tuple[str, ApiToken]:
        """A new token; the plain value is returned once and never stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.write() as conn:
            cur = conn.execute(
                "INSERT INTO api_tokens (name, role, token_hash, created_at) VALUES (?,?,?,?)",
                (name, role.value, hash_token(token), iso()))
            row = conn.execute("SELECT * FROM api_tokens WHERE id=?", (cur.lastrowid,)).fetchone()
        return token, _token(row)

    def authenticate(self, token: str) -> ApiToken | None:
        row = self.query_one("SELECT * FROM api_tokens WHERE token_hash=? AND revoked=0",
                             (hash_token(token),))
        if row is None:
            return None
        return _token(row)

    def get_token(self, token_id: int) -> ApiToken | None:
        row = self.query_one("SELECT * FROM api_tokens WHERE id=?", (token_id,))
        return _token(row) if row is not None else None

    def touch_token(self, token_id: int) -> None:
        self.execute("UPDATE api_tokens SET last_used_at=? WHERE id=?", (iso(), token_id))

    def list_tokens(self) -> list[ApiToken]:
        return [_token(r) for r in self.query("SELECT * FROM api_tokens ORDER BY id")]

    def revoke_token(self, token_id: int) -> None:
        cur = self.execute("UPDATE api_tokens SET revoked=1 WHERE id=?", (token_id,))
        if cur.rowcount == 0:
            raise NotFound(f"no token with id {token_id}")

    # -- audit ------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target: str, detail: str | None = None) -> None:
        self.execute("INSERT INTO audit_events (ts, actor, action, target, detail)"
                     " VALUES (?,?,?,?,?)", (iso(), actor, action, target, detail))

    def list_audit(self, limit: int = 100) -> list[AuditEvent]:
        rows = self.query("SELECT * FROM audit_events ORDER BY id DESC LIMIT ?", (limit,))
        return [AuditEvent(**dict(r)) for r in rows]

    # -- webhook deliveries ---------------------------------------------------------------
    def record_delivery(self, delivery_id: str, event: str, outcome: str,
                        service_id: int | None = None, run_id: int | None = None) -> bool:
        """Record a delivery; False when this delivery id was seen before (a redelivery)."""
        with self.write() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO webhook_deliveries (delivery_id, event, received_at,"
                " service_id, run_id, outcome) VALUES (?,?,?,?,?,?)",
                (delivery_id, event, iso(), service_id, run_id, outcome))
            return cur.rowcount == 1

    def update_delivery(self, delivery_id: str, outcome: str, service_id: int | None = None,
                        run_id: int | None = None) -> None:
        self.execute("UPDATE webhook_deliveries SET outcome=?, service_id=?, run_id=?"
                     " WHERE delivery_id=?", (outcome, service_id, run_id, delivery_id))

    def forget_delivery(self, delivery_id: str) -> None:
        """A delivery whose processing failed before it did anything: GitHub's redelivery
        of it is then processed again, not answered `duplicate`."""
        self.execute("DELETE FROM webhook_deliveries WHERE delivery_id=?", (delivery_id,))

    def list_deliveries(self, limit: int = 100) -> list[WebhookDelivery]:
        rows = self.query("SELECT * FROM webhook_deliveries ORDER BY received_at DESC LIMIT ?",
                          (limit,))
        return [WebhookDelivery(**dict(r)) for r in rows]

    # -- polling and small settings ---------------------------------------------------------
    def get_poll_sha(self, service_id: int, ref: str) -> str | None:
        row = self.query_one("SELECT sha FROM poll_state WHERE service_id=? AND ref=?",
                             (service_id, ref))
        return row[0] if row else None

    def set_poll_sha(self, service_id: int, ref: str, sha: str) -> None:
        self.execute("INSERT INTO poll_state (service_id, ref, sha, updated_at) VALUES (?,?,?,?)"
                     " ON CONFLICT(service_id, ref) DO UPDATE SET sha=excluded.sha,"
                     " updated_at=excluded.updated_at", (service_id, ref, sha, iso()))

    def instance_id(self) -> str:
        """This agent's short id, made on first start: it names and labels the agent's
        containers so agents (or test sessions) sharing one engine never collide."""
        with self.write() as conn:
            row = conn.execute("SELECT value FROM kv WHERE key='instance_id'").fetchone()
            if row is not None:
                return str(row[0])
            value = secrets.token_hex(4)
            conn.execute("INSERT INTO kv (key, value) VALUES ('instance_id', ?)", (value,))
            return value

    def get_setting(self, key: str) -> str | None:
        row = self.query_one("SELECT value FROM kv WHERE key=?", (key,))
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        self.execute("INSERT INTO kv (key, value) VALUES (?,?) ON CONFLICT(key)"
                     " DO UPDATE SET value=excluded.value", (key, value))

    def delete_setting(self, key: str) -> None:
        self.execute("DELETE FROM kv WHERE key=?", (key,))
