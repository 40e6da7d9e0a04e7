"""REST over a real server: roles, validation errors field by field, CRUD, audit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from store.db import now
from store.models import (
    SECRET_MASK,
    DeploymentKind,
    DeploymentStatus,
    PipelineConfig,
    Role,
    RunKind,
    RunStatus,
    ServiceConfig,
    Trigger,
)
from tests.api.conftest import LiveApi, add_service
from tests.harness import wait_until

SERVICE = {"name": "payments", "pipeline": "shop",
           "repo_url": "https://github.com/acme/payments.git",
           "secrets": {"STRIPE_KEY": "sk_live_very_secret"}, "webhook_secret": "hook-secret"}


def test_health_and_openapi_need_no_token(api: LiveApi) -> None:
    with api.client(None) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        spec = c.get("/api/v1/openapi.json").json()
        assert "/api/v1/runs" in spec["paths"] and "/webhooks/github" in spec["paths"]
        assert c.get("/api/v1/runs").status_code == 401


def test_unknown_token_is_401_with_json_error(api: LiveApi) -> None:
    with api.client(None) as c:
        r = c.get("/api/v1/me", headers={"Authorization": "Bearer sls_nope"})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"


@pytest.mark.parametrize(("role", "method", "path", "allowed"), [
    (Role.viewer, "GET", "/api/v1/services", True),
    (Role.viewer, "POST", "/api/v1/pipelines", False),
    (Role.deployer, "POST", "/api/v1/pipelines", False),
    (Role.admin, "POST", "/api/v1/pipelines", True),
    (Role.viewer, "POST", "/api/v1/runs/1/cancel", False),
    (Role.deployer, "POST", "/api/v1/runs/1/cancel", True),
    (Role.viewer, "POST", "/api/v1/rollbacks", False),
    (Role.deployer, "GET", "/api/v1/tokens", False),
    (Role.admin, "GET", "/api/v1/audit", True),
])
def test_roles_gate_each_action(api: LiveApi, role: Role, method: str, path: str,
                                allowed: bool) -> None:
    body = {"name": "shop"} if path.endswith("pipelines") else None
    if path.endswith("rollbacks"):
        body = {"service": "x", "environment": "staging", "sha": "abcdef1"}
    with api.client(role) as c:
        r = c.request(method, path, json=body)
    if allowed:
        assert r.status_code != 403, r.text
    else:
        assert r.status_code == 403
        assert r.json()["error"] == "forbidden"


def test_service_validation_errors_name_each_field(api: LiveApi) -> None:
    bad = {"name": "Not A Slug", "pipeline": "shop", "repo_url": "ftp://x y",
           "branch": "../etc", "container_port": 70000, "surprise": 1}
    with api.client() as c:
        r = c.post("/api/v1/services", json=bad)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    fields = {e["field"] for e in body["detail"]}
    assert {"name", "repo_url", "branch", "container_port", "surprise"} <= fields
    assert all(e["message"] for e in body["detail"])


def test_malformed_json_body_is_400(api: LiveApi) -> None:
    with api.client() as c:
        r = c.post("/api/v1/pipelines", content=b"{not json",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "malformed_json"


def test_service_crud_masks_secrets_and_is_audited(api: LiveApi) -> None:
    with api.client() as c:
        assert c.post("/api/v1/pipelines", json={"name": "shop"}).status_code == 201
        # The repository is made up: skip the ls-remote check (tests/api/test_repo_check.py).
        created = c.post("/api/v1/services?check=false", json=SERVICE)
        assert created.status_code == 201, created.text
        assert created.json()["secrets"] == {"STRIPE_KEY": SECRET_MASK}
        assert created.json()["webhook_secret"] == SECRET_MASK
        assert "sk_live_very_secret" not in c.get("/api/v1/services").text
        # PUT back what GET returned: masked values keep the stored secrets.
        got = c.get("/api/v1/services/payments").json()
        config = {k: v for k, v in got.items()
                  if k not in ("id", "created_at", "updated_at", "pinned")}
        config["branch"] = "release"
        updated = c.put("/api/v1/services/payments?check=false", json=config)
        assert updated.status_code == 200, updated.text
        assert updated.json()["branch"] == "release"
        assert c.post("/api/v1/services?check=false", json=SERVICE).status_code == 409
        assert c.delete("/api/v1/services/payments").status_code == 204
        missing = c.get("/api/v1/services/payments")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        actions = [(e["actor"], e["action"]) for e in c.get("/api/v1/audit").json()]
    stored = api.agent.store
    assert ("admin-token", "service.create") in actions
    assert ("admin-token", "service.update") in actions
    assert ("admin-token", "service.delete") in actions
    assert stored.list_services() == []


def test_put_with_masked_secrets_keeps_the_real_values(api: LiveApi) -> None:
    add_service(api.agent.store, secrets={"K": "real"}, webhook_secret="w")
    with api.client() as c:
        got = c.get("/api/v1/services/payments").json()
        config = {k: v for k, v in got.items()
                  if k not in ("id", "created_at", "updated_at", "pinned")}
        assert c.put("/api/v1/services/payments", json=config).status_code == 200
    service = api.agent.store.get_service("payments")
    assert service.secrets == {"K": "real"} and service.webhook_secret == "w"


def test_runs_list_pages_by_cursor_and_filters(api: LiveApi) -> None:
    store = api.agent.store
    svc = add_service(store)
    other = add_service(store, "billing")
    # Seeded as finished, so the running engine leaves them as they are.
    for i in range(7):
        run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha=f"{i:07x}")
        store.set_run_status(run.id, RunStatus.success)
    run = store.create_run(other.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef0")
    store.set_run_status(run.id, RunStatus.failed)
    seen = []
    with api.client(Role.viewer) as c:
        cursor = None
        while True:
            params: dict[str, str | int] = {"service": "payments", "limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/api/v1/runs", params=params).json()
            seen += [r["number"] for r in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(c.get("/api/v1/runs", params={"status": "success"}).json()["items"]) == 7
        bad = c.get("/api/v1/runs", params={"limit": 0, "cursor": "x", "status": "bogus"})
        run = c.get("/api/v1/runs/1").json()
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["detail"]} == {"limit", "cursor", "status"}
    assert [s["name"] for s in run["stages"]][0] == "Prepare"


def test_cancel_of_finished_run_is_409_and_audited_when_allowed(api: LiveApi) -> None:
    store = api.agent.store
    svc = add_service(store)
    # Queued behind the engine's back (no wake-up): it waits until cancelled.
    run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef1")
    done = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef2")
    store.set_run_status(done.id, RunStatus.success)
    with api.client(Role.deployer) as c:
        ok = c.post(f"/api/v1/runs/{run.id}/cancel")
        again = c.post(f"/api/v1/runs/{run.id}/cancel")
        finished = c.post(f"/api/v1/runs/{done.id}/cancel")
        missing = c.post("/api/v1/runs/999/cancel")
    assert ok.status_code == 200 and ok.json()["status"] == RunStatus.cancelled
    assert [s["status"] for s in ok.json()["stages"]] == ["skipped"] * 7
    assert again.status_code == 409 and "already finished" in again.json()["detail"]
    assert finished.status_code == 409
    assert finished.json()["detail"] == f"run {done.id} already finished (success)"
    assert missing.status_code == 404
    audit = store.list_audit()
    assert [(a.actor, a.action) for a in audit] == [("deployer-token", "run.cancel")]


def test_manual_trigger_queues_run_with_actor(api: LiveApi) -> None:
    add_service(api.agent.store)
    sha = "9fceb02d0ae598e95dc970b74767f19372d61af8"
    with api.client(Role.deployer) as c:
        r = c.post("/api/v1/services/payments/trigger", json={"sha": sha, "kind": "partial"})
        bad = c.post("/api/v1/services/payments/trigger", json={"sha": "XYZ"})
    assert r.status_code == 201, r.text
    assert r.json()["trigger"] == "manual" and r.json()["actor"] == "deployer-token"
    assert r.json()["kind"] == "partial" and r.json()["sha"] == sha
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "sha"
    [run] = api.runs("payments")
    assert (run["id"], run["trigger"], run["kind"], run["sha"], run["actor"]) == (
        r.json()["id"], "manual", "partial", sha, "deployer-token")


def failed_at_prepare(api: LiveApi, run_id: int) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        with api.client(Role.viewer) as c:
            run: dict[str, Any] = c.get(f"/api/v1/runs/{run_id}").json()
        return run if run["status"] not in ("queued", "running") else None
    return wait_until(finished, timeout=30, what=f"run {run_id} to finish")


def test_a_run_failed_at_prepare_can_be_rerun_but_not_cancelled(api: LiveApi) -> None:
    add_service(api.agent.store)  # a repository URL nobody can clone
    with api.client(Role.deployer) as c:
        first = c.post("/api/v1/services/payments/trigger", json={"sha": "abcdef1"}).json()
        run = failed_at_prepare(api, first["id"])
        cancel = c.post(f"/api/v1/runs/{run['id']}/cancel")
        from_unit = c.post(f"/api/v1/runs/{run['id']}/rerun", json={"from_stage": "Unit Test"})
        from_nowhere = c.post(f"/api/v1/runs/{run['id']}/rerun", json={"from_stage": "Nope"})
        rerun = c.post(f"/api/v1/runs/{run['id']}/rerun", json={})
    assert run["status"] == "failed"
    assert [(s["name"], s["status"]) for s in run["stages"][:2]] == [
        ("Prepare", "failed"), ("Code Quality", "skipped")]
    assert cancel.status_code == 409
    assert cancel.json()["detail"] == f"run {run['id']} already finished (failed)"
    assert from_unit.status_code == 409
    assert "earlier stage Prepare did not succeed" in from_unit.json()["detail"]
    assert from_nowhere.status_code == 422
    assert from_nowhere.json()["detail"][0]["field"] == "from_stage"
    assert rerun.status_code == 201, rerun.text
    runs = api.runs("payments")
    assert [(r["id"], r["trigger"], r["sha"], r["rerun_of"]) for r in runs] == [
        (rerun.json()["id"], "rerun", "abcdef1", run["id"]), (run["id"], "manual", "abcdef1", None)]


def test_rollback_to_a_sha_never_deployed_is_refused_clearly(api: LiveApi) -> None:
    add_service(api.agent.store)
    with api.client(Role.deployer) as c:
        r = c.post("/api/v1/rollbacks", json={"service": "payments",
                                              "environment": "production", "sha": "abcdef1"})
        unknown = c.post("/api/v1/rollbacks", json={"service": "nope",
                                                    "environment": "production",
                                                    "sha": "abcdef1"})
    assert r.status_code == 409
    assert r.json()["detail"] == "abcdef1 was never live in production of payments"
    assert unknown.status_code == 404
    assert api.agent.store.list_deployments(service_id=1) == []
    assert api.agent.store.list_audit() == []


def deployed(store: Any, service_id: int, sha: str, status: DeploymentStatus,
             kind: DeploymentKind = DeploymentKind.deploy) -> None:
    """A finished production deployment, as the deployer records one."""
    dep = store.create_deployment(service_id=service_id, environment="production", sha=sha,
                                  image=f"registry.local/app:{sha}", kind=kind,
                                  committed_at=now() - timedelta(hours=1))
    store.finish_deployment(dep.id, status)


def test_dora_figures_per_service_pipeline_and_overall(api: LiveApi) -> None:
    store = api.agent.store
    payments = add_service(store)
    store.create_pipeline(PipelineConfig(name="back-office"))
    billing = store.create_service(ServiceConfig(
        name="billing", pipeline="back-office", repo_url="https://github.com/acme/billing.git"))
    deployed(store, payments.id, "a" * 40, DeploymentStatus.active)
    deployed(store, payments.id, "b" * 40, DeploymentStatus.failed)
    deployed(store, payments.id, "c" * 40, DeploymentStatus.active)
    deployed(store, billing.id, "d" * 40, DeploymentStatus.active)
    with api.client(Role.viewer) as c:
        service = c.get("/api/v1/services/payments/dora", params={"days": 7}).json()
        shop = c.get("/api/v1/dora", params={"pipeline": "shop"}).json()
        overall = c.get("/api/v1/dora").json()
        unknown = c.get("/api/v1/dora", params={"pipeline": "nope"})
    assert (service["service"], service["window_days"], service["deployments"]) == (
        "payments", 7, 2)
    assert service["deployment_frequency_per_day"] == round(2 / 7, 4)
    assert service["change_failure_rate"] == round(1 / 3, 4)
    assert 3500 < service["lead_time_median_s"] < 3700
    assert service["time_to_restore_median_s"] is not None
    assert (shop["deployments"], overall["deployments"]) == (2, 3)
    assert overall["change_failure_rate"] == 0.25
    assert unknown.status_code == 404


def test_logs_page_by_cursor(api: LiveApi) -> None:
    from store.db import now
    from store.ids import new_ulid
    from store.models import LogLine, LogStream

    store = api.agent.store
    svc = add_service(store)
    run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef1")
    lines = [LogLine(id=new_ulid(), run_id=run.id, stage="Unit Test", stream=LogStream.stdout,
                     text=f"line {i}", ts=now()) for i in range(25)]
    store.insert_log_lines(lines)
    with api.client(Role.viewer) as c:
        first = c.get(f"/api/v1/runs/{run.id}/logs", params={"limit": 10}).json()
        rest = c.get(f"/api/v1/runs/{run.id}/logs",
                     params={"after": first["next_cursor"], "limit": 100}).json()
        bad = c.get(f"/api/v1/runs/{run.id}/logs", params={"after": "nope", "stage": "Nope"})
    texts = [ln["text"] for ln in first["lines"] + rest["lines"]]
    assert texts == [f"line {i}" for i in range(25)]
    assert bad.status_code == 422


def test_tokens_are_created_once_and_revocable(api: LiveApi) -> None:
    with api.client() as c:
        created = c.post("/api/v1/tokens", json={"name": "ci-bot", "role": "deployer"}).json()
        token = created["token"]
        me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
        listed = c.get("/api/v1/tokens").json()
        assert all("token" not in t for t in listed)
        assert c.delete(f"/api/v1/tokens/{created['info']['id']}").status_code == 204
        after = c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me == {"name": "ci-bot", "role": "deployer"}
    assert after.status_code == 401


def test_metrics_exposes_run_counts(api: LiveApi) -> None:
    store = api.agent.store
    svc = add_service(store)
    for sha in ("abcdef1", "abcdef2"):
        run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha=sha)
        store.set_run_status(run.id, RunStatus.failed)
    with api.client(None) as c:
        text = c.get("/metrics").text
    assert 'seamless_runs{status="failed"} 2.0' in text
    assert 'seamless_runs{status="queued"} 0.0' in text
    assert "seamless_queue_depth" in text and "seamless_stage_duration_seconds" in text
