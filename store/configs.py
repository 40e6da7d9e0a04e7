"""Pipelines and services: validated configs stored as JSON, looked up by name."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from store.crypto import SecretCipher
from store.db import Database, iso
from store.log_index import unindex_lines
from store.models import Pipeline, PipelineConfig, Service, ServiceConfig
from store.models.repos import normalize_repo_url

T = TypeVar("T")


class NotFound(LookupError):
    """A named thing is not in the store."""


class InvalidDependencies(ValueError):
    """`depends_on_services` naming an unknown service, one of another repository, or
    making a cycle: refused at config time (answered 422)."""


class Conflict(ValueError):
    """The write would break a uniqueness or reference rule."""


def _changes_configs(method: Callable[..., T]) -> Callable[..., T]:
    """Bump `config_version` once the write is committed (or failed)."""

    @functools.wraps(method)
    def wrapper(self: ConfigQueries, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        finally:
            self._configs_changed()

    return wrapper


# The config fields that are secrets: encrypted at rest when the store has a cipher.
SERVICE_SECRET_FIELDS = ("webhook_secret",)  # plus every value of `secrets`
PIPELINE_SECRET_FIELDS = ("notify_slack_webhook_url",)


def _convert(data: dict[str, Any], is_service: bool, change: Callable[[str], str]) -> None:
    """Apply `change` (encrypt or decrypt) to every secret value of a config dict."""
    if is_service:
        data["secrets"] = {k: change(v) for k, v in (data.get("secrets") or {}).items()}
    for field in SERVICE_SECRET_FIELDS if is_service else PIPELINE_SECRET_FIELDS:
        if data.get(field):
            data[field] = change(data[field])


def _config_json(config: PipelineConfig | ServiceConfig, cipher: SecretCipher | None) -> str:
    """Only the config fields (a stored `Service`/`Pipeline` may be passed back in),
    secrets encrypted."""
    is_service = isinstance(config, ServiceConfig)
    base = ServiceConfig if is_service else PipelineConfig
    if cipher is None:
        return config.model_dump_json(include=set(base.model_fields))
    data = config.model_dump(mode="json", include=set(base.model_fields))
    _convert(data, is_service, cipher.encrypt)
    return json.dumps(data)


def _config(raw: str, is_service: bool, cipher: SecretCipher | None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    if cipher is not None:
        _convert(data, is_service, cipher.decrypt)
    return data


def _cycle_from(start: str, graph: dict[str, list[str]]) -> list[str] | None:
    """A path start -> ... -> start through `graph`, if there is one (depth first)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


class ConfigQueries(Database):
    cipher: SecretCipher | None = None  # set by the agent (store/crypto.py)

    def _pipeline(self, row: sqlite3.Row) -> Pipeline:
        return Pipeline(id=row["id"], created_at=row["created_at"],
                        updated_at=row["updated_at"],
                        **_config(row["config"], False, self.cipher))

    def _service(self, row: sqlite3.Row) -> Service:
        return Service(id=row["id"], created_at=row["created_at"],
                       updated_at=row["updated_at"], pinned=json.loads(row["pinned"]),
                       **_config(row["config"], True, self.cipher))

    def encrypt_stored_secrets(self) -> int:
        """Encrypt with the newest key every secret stored in plaintext or under an older
        key (the agent's start, a key rotation); how many configs were rewritten."""
        assert self.cipher is not None
        cipher = self.cipher
        changed = 0
        # Overwrite what the old values leave behind (freed cells and pages), then fold the
        # WAL into the file: no copy of a plaintext secret stays on disk.
        with self._write_lock:
            self._write_conn.execute("PRAGMA secure_delete=ON")
        try:
            changed = self._rewrite_secrets(cipher)
        finally:
            with self._write_lock:
                self._write_conn.execute("PRAGMA secure_delete=OFF")
        if changed:
            with self._write_lock:
                self._write_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._configs_changed()
        return changed

    def _rewrite_secrets(self, cipher: SecretCipher) -> int:
        changed = 0
        with self.write() as conn:
            for table, is_service in (("services", True), ("pipelines", False)):
                for row in conn.execute(f"SELECT id, config FROM {table}").fetchall():
                    data = json.loads(row["config"])
                    _convert(data, is_service, cipher.rotate)
                    raw = json.dumps(data)
                    if raw != row["config"]:
                        conn.execute(f"UPDATE {table} SET config=? WHERE id=?", (raw, row["id"]))
                        changed += 1
        return changed

    # Bumped by every pipeline/service write in this process: whoever caches something
    # derived from the configs (the secret masker) knows when to rebuild it.
    config_version = 0

    def _configs_changed(self) -> None:
        self.config_version += 1

    def secret_values(self) -> list[str]:
        """Every secret the configs hold: service secrets, webhook secrets, Slack URLs."""
        values: list[str] = []
        for service in self.list_services():
            values.extend(service.secrets.values())
            if service.webhook_secret:
                values.append(service.webhook_secret)
        values.extend(p.notify_slack_webhook_url for p in self.list_pipelines()
                      if p.notify_slack_webhook_url)
        return values

    # -- pipelines --------------------------------------------------------------
    @_changes_configs
    def create_pipeline(self, config: PipelineConfig) -> Pipeline:
        stamp = iso()
        with self.write() as conn:
            if conn.execute("SELECT 1 FROM pipelines WHERE name=?", (config.name,)).fetchone():
                raise Conflict(f"pipeline {config.name!r} already exists")
            cur = conn.execute(
                "INSERT INTO pipelines (name, config, created_at, updated_at) VALUES (?,?,?,?)",
                (config.name, _config_json(config, self.cipher), stamp, stamp))
            return self.get_pipeline_by_id(int(cur.lastrowid or 0))

    @_changes_configs
    def update_pipeline(self, name: str, config: PipelineConfig) -> Pipeline:
        if config.name != name:
            raise Conflict("a pipeline cannot be renamed")
        with self.write() as conn:
            cur = conn.execute("UPDATE pipelines SET config=?, updated_at=? WHERE name=?",
                               (_config_json(config, self.cipher), iso(), name))
            if cur.rowcount == 0:
                raise NotFound(f"no pipeline named {name!r}")
        return self.get_pipeline(name)

    @_changes_configs
    def delete_pipeline(self, name: str) -> None:
        with self.write() as conn:
            pipeline = self.get_pipeline(name)
            if conn.execute("SELECT 1 FROM services WHERE pipeline_id=?",
                            (pipeline.id,)).fetchone():
                raise Conflict(f"pipeline {name!r} still has services")
            conn.execute("DELETE FROM pipelines WHERE id=?", (pipeline.id,))

    def get_pipeline(self, name: str) -> Pipeline:
        row = self.query_one("SELECT * FROM pipelines WHERE name=?", (name,))
        if row is None:
            raise NotFound(f"no pipeline named {name!r}")
        return self._pipeline(row)

    def get_pipeline_by_id(self, pipeline_id: int) -> Pipeline:
        row = self.query_one("SELECT * FROM pipelines WHERE id=?", (pipeline_id,))
        if row is None:
            raise NotFound(f"no pipeline with id {pipeline_id}")
        return self._pipeline(row)

    def list_pipelines(self) -> list[Pipeline]:
        return [self._pipeline(r) for r in self.query("SELECT * FROM pipelines ORDER BY name")]

    # -- services ------------------------------------------------------------------
    @_changes_configs
    def create_service(self, config: ServiceConfig) -> Service:
        stamp = iso()
        with self.write() as conn:
            pipeline = self.get_pipeline(config.pipeline)
            if conn.execute("SELECT 1 FROM services WHERE name=?", (config.name,)).fetchone():
                raise Conflict(f"service {config.name!r} already exists")
            self._check_dependencies(config)
            cur = conn.execute(
                "INSERT INTO services (name, pipeline_id, config, created_at, updated_at)"
                " VALUES (?,?,?,?,?)",
                (config.name, pipeline.id, _config_json(config, self.cipher), stamp, stamp))
            return self.get_service_by_id(int(cur.lastrowid or 0))

    @_changes_configs
    def update_service(self, name: str, config: ServiceConfig) -> Service:
        if config.name != name:
            raise Conflict("a service cannot be renamed")
        with self.write() as conn:
            pipeline = self.get_pipeline(config.pipeline)
            self._check_dependencies(config)
            cur = conn.execute(
                "UPDATE services SET config=?, pipeline_id=?, updated_at=? WHERE name=?",
                (_config_json(config, self.cipher), pipeline.id, iso(), name))
            if cur.rowcount == 0:
                raise NotFound(f"no service named {name!r}")
        return self.get_service(name)

    @_changes_configs
    def delete_service(self, name: str) -> None:
        """Delete a service with its whole history."""
        with self.write() as conn:
            service = self.get_service(name)
            dependents = [s.name for s in self.list_services() if name in s.depends_on_services]
            if dependents:
                raise Conflict(f"{', '.join(dependents)} depend(s) on {name}: remove it from "
                               "their depends_on_services first")
            run_ids = "SELECT id FROM runs WHERE service_id=?"
            unindex_lines(conn, f"l.run_id IN ({run_ids})", (service.id,))
            conn.execute(f"DELETE FROM log_search_scopes WHERE run_id IN ({run_ids})",
                         (service.id,))  # a run id used again starts a fresh scope
            conn.execute(f"DELETE FROM log_lines WHERE run_id IN ({run_ids})", (service.id,))
            conn.execute(f"DELETE FROM approvals WHERE run_id IN ({run_ids})", (service.id,))
            conn.execute(f"DELETE FROM stages WHERE run_id IN ({run_ids})", (service.id,))
            conn.execute("UPDATE runs SET rerun_of=NULL WHERE rerun_of IN "
                         f"({run_ids})", (service.id,))
            conn.execute("DELETE FROM runs WHERE service_id=?", (service.id,))
            conn.execute("DELETE FROM deployments WHERE service_id=?", (service.id,))
            conn.execute("DELETE FROM poll_state WHERE service_id=?", (service.id,))
            conn.execute("DELETE FROM change_decisions WHERE service_id=?", (service.id,))
            conn.execute("DELETE FROM services WHERE id=?", (service.id,))

    def _check_dependencies(self, config: ServiceConfig) -> None:
        """Every service named in depends_on_services exists, shares the repository, and
        no chain of dependencies leads back to `config` (deploy order needs no cycle)."""
        if not config.depends_on_services:
            return
        others = {s.name: s for s in self.list_services() if s.name != config.name}
        repo = normalize_repo_url(config.repo_url)
        for name in config.depends_on_services:
            other = others.get(name)
            if other is None:
                raise InvalidDependencies(f"depends_on_services: no service named {name!r}")
            if normalize_repo_url(other.repo_url) != repo:
                raise InvalidDependencies(
                    f"depends_on_services: {name} is in another repository "
                    f"({other.repo_url}); deploy order is kept within one repository")
        graph = {n: list(s.depends_on_services) for n, s in others.items()}
        graph[config.name] = list(config.depends_on_services)
        path = _cycle_from(config.name, graph)
        if path:
            raise InvalidDependencies("depends_on_services makes a cycle: "
                                      + " -> ".join(path))

    def get_service(self, name: str) -> Service:
        row = self.query_one("SELECT * FROM services WHERE name=?", (name,))
        if row is None:
            raise NotFound(f"no service named {name!r}")
        return self._service(row)

    def get_service_by_id(self, service_id: int) -> Service:
        row = self.query_one("SELECT * FROM services WHERE id=?", (service_id,))
        if row is None:
            raise NotFound(f"no service with id {service_id}")
        return self._service(row)

    def list_services(self, pipeline: str | None = None) -> list[Service]:
        if pipeline is None:
            rows = self.query("SELECT * FROM services ORDER BY name")
        else:
            rows = self.query(
                "SELECT s.* FROM services s JOIN pipelines p ON p.id=s.pipeline_id"
                " WHERE p.name=? ORDER BY s.name", (pipeline,))
        return [self._service(r) for r in rows]

    def set_pin(self, service_id: int, environment: str, sha: str | None) -> None:
        """Pin (or, with None, unpin) an environment to a sha after a rollback."""
        with self.write() as conn:
            row = conn.execute("SELECT pinned FROM services WHERE id=?", (service_id,)).fetchone()
            if row is None:
                raise NotFound(f"no service with id {service_id}")
            pinned = json.loads(row["pinned"])
            if sha is None:
                pinned.pop(environment, None)
            else:
                pinned[environment] = sha
            conn.execute("UPDATE services SET pinned=? WHERE id=?",
                         (json.dumps(pinned), service_id))
