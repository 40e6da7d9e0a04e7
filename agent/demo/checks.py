"""Headless verification: every outcome of the story, checked through the REST API and
the services' stable ports (what a user would see in the TUI or with curl)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from agent.demo.agentproc import Api
from agent.demo.scenario import APPROVAL_SERVICE, FAILING_SERVICE, ROLLBACK_SERVICE, Story
from agent.demo.shop import MONO_SERVICES, SERVICE_NAMES
from store.models import (
    STAGE_BUILD,
    STAGE_DEPLOY_PRODUCTION,
    STAGE_DEPLOY_STAGING,
    STAGE_UNIT_TEST,
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


# What each environment serves at the end of the story.
EXPECTED_LIVE: dict[str, dict[str, str]] = {
    "payments": {"staging": "v2", "production": "v1"},  # production rolled back
    "inventory": {"staging": "v2", "production": "v2"},  # v3 failed its unit tests
    "notifications": {"staging": "v2", "production": "v1"},  # v2 awaits approval
}
# The storefront monorepo: (version served, the push whose sha is live) per service.
# Round 2 touched only web; round 3 changed the shared library: both deployed it.
MONO_LIVE: dict[str, tuple[str, str]] = {"catalog": ("v1", "v3"), "web": ("v2", "v3")}


def expected_run_status(service: str, label: str) -> str:
    if service == FAILING_SERVICE and label == "v3":
        return "failed"
    if service == APPROVAL_SERVICE and label == "v2":
        return "awaiting_approval"
    return "success"


def fetch_version(port: int) -> str:
    try:
        resp = httpx.get(f"http://127.0.0.1:{port}/version", timeout=5.0)
    except httpx.HTTPError as exc:
        return f"<no answer: {type(exc).__name__}>"
    return resp.text.strip() if resp.status_code == 200 else f"<HTTP {resp.status_code}>"


class Verifier:
    def __init__(self, api: Api, story: Story) -> None:
        self.api, self.story = api, story
        self.checks: list[Check] = []

    def check(self, name: str, fn: Callable[[], tuple[bool, str]]) -> None:
        try:
            ok, detail = fn()
        except Exception as exc:  # a failing query is a failed check, not a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self.checks.append(Check(name, ok, detail))

    def run(self, service: str, label: str) -> dict[str, Any]:
        run_id = self.story.runs[self.story.shas[service][label]]
        return dict(self.api.get(f"/api/v1/runs/{run_id}"))

    def deployments(self, role: str, env: str | None = None) -> list[dict[str, Any]]:
        name = self.story.names[role]
        return list(self.api.get(f"/api/v1/services/{name}/deployments", environment=env))

    # -- the checks --------------------------------------------------------------------------
    def run_statuses(self, service: str) -> tuple[bool, str]:
        got = {label: self.run(service, label)["status"] for label in self.story.shas[service]}
        want = {label: expected_run_status(service, label) for label in got}
        return got == want, ", ".join(f"{k}={v}" for k, v in got.items())

    def failed_unit_test(self) -> tuple[bool, str]:
        run = self.run(FAILING_SERVICE, "v3")
        stages = {s["name"]: s["status"] for s in run["stages"]}
        ok = (run["status"] == "failed" and stages.get(STAGE_UNIT_TEST) == "failed"
              and stages.get(STAGE_BUILD) != "success")
        page = self.api.get(f"/api/v1/runs/{run['id']}/logs", stage=STAGE_UNIT_TEST, limit=200)
        failed_line = next((ln["text"] for ln in page["lines"] if "FAILED" in ln["text"]), None)
        ok = ok and failed_line is not None
        return ok, f"Unit Test {stages.get(STAGE_UNIT_TEST)}, log: {failed_line!r}"

    def history(self, service: str) -> tuple[bool, str]:
        deps = self.deployments(service)
        images = {d["image"] for d in deps if d["status"] != "failed"}
        per_env = {env: sum(1 for d in deps if d["environment"] == env)
                   for env in ("staging", "production")}
        return len(images) >= 2, f"{len(images)} images; deployments per env {per_env}"

    def live(self, service: str, env: str) -> tuple[bool, str]:
        label = EXPECTED_LIVE[service][env]
        return self._serves(service, env, label, self.story.shas[service][label], label)

    def _serves(self, role: str, env: str, label: str, sha: str, version: str
                ) -> tuple[bool, str]:
        """The active deployment of `role` in `env` is `sha`, and its port answers
        `version`."""
        current = next((d for d in self.deployments(role, env) if d["status"] == "active"),
                       None)
        served = fetch_version(self.story.ports[role][env])
        ok = current is not None and current["sha"] == sha and served == version
        shown = current["sha"][:8] if current else "none"
        return ok, (f"active {shown} (want {label} {sha[:8]}); "
                    f":{self.story.ports[role][env]}/version -> {served}")

    def pending_approval(self) -> tuple[bool, str]:
        sha = self.story.shas[APPROVAL_SERVICE]["v2"]
        pending = self.api.get("/api/v1/approvals", status="pending")
        mine = [a for a in pending if a["service"] == self.story.names[APPROVAL_SERVICE]]
        ok = any(a["candidate_sha"] == sha for a in mine)
        return ok, f"{len(pending)} pending; {APPROVAL_SERVICE} candidate {sha[:8]}: {ok}"

    def rollback(self) -> tuple[bool, str]:
        sha = self.story.shas[ROLLBACK_SERVICE]["v1"]
        deps = self.deployments(ROLLBACK_SERVICE, "production")
        rb = next((d for d in deps if d["id"] == self.story.rollback_id), None)
        replaced = [d for d in deps if d["status"] == "rolled_back"]
        ok = (rb is not None and rb["kind"] == "rollback" and rb["status"] == "active"
              and rb["sha"] == sha and len(replaced) >= 1)
        state = f"{rb['kind']} {rb['status']} {rb['sha'][:8]}" if rb else "missing"
        return ok, f"rollback deployment: {state}; rolled_back rows: {len(replaced)}"

    # -- the storefront monorepo ---------------------------------------------------------------
    def mono_ran(self, label: str, want: set[str]) -> tuple[bool, str]:
        decided = self.story.mono_decisions[label]
        ran = {role for role, d in decided.items() if d["ran"]}
        detail = "; ".join(f"{role}: {d['reason']}" for role, d in sorted(decided.items()))
        ok = ran == want
        for role, decision in decided.items():
            if role not in want:  # it says why not, naming what it compared with
                ok = ok and decision["reason"].startswith(
                    f"no changes for {self.story.names[role]} since")
            elif decision["run_id"]:
                ok = ok and self.api.get(f"/api/v1/runs/{decision['run_id']}")[
                    "status"] == "success"
        return ok, detail

    def mono_deploy_order(self, label: str) -> tuple[bool, str]:
        """web (depends on catalog) deployed to each environment after catalog did."""
        decided = self.story.mono_decisions[label]
        runs = {role: self.api.get(f"/api/v1/runs/{decided[role]['run_id']}")
                for role in MONO_SERVICES}
        details, ok = [], True
        for stage in (STAGE_DEPLOY_STAGING, STAGE_DEPLOY_PRODUCTION):
            catalog = next(s for s in runs["catalog"]["stages"] if s["name"] == stage)
            web = next(s for s in runs["web"]["stages"] if s["name"] == stage)
            after = bool(catalog["finished_at"] and web["started_at"]
                         and web["started_at"] >= catalog["finished_at"])
            ok = ok and after
            details.append(f"{stage}: catalog done {catalog['finished_at']}, web started "
                           f"{web['started_at']}")
        return ok, "; ".join(details)

    def mono_live(self, role: str, env: str) -> tuple[bool, str]:
        version, label = MONO_LIVE[role]
        return self._serves(role, env, label, self.story.mono_shas[label], version)

    def overview(self) -> tuple[bool, str]:
        rows = self.api.get("/api/v1/overview")
        names = sorted(r["service"]["name"] for r in rows)
        return names == sorted(self.story.names.values()), f"dashboard rows: {names}"

    def all(self) -> list[Check]:
        for service in SERVICE_NAMES:
            self.check(f"{service}: run statuses", partial(self.run_statuses, service))
        self.check(f"{FAILING_SERVICE}: later commit fails its unit tests", self.failed_unit_test)
        for service in SERVICE_NAMES:
            self.check(f"{service}: deployment history has >= 2 images",
                       partial(self.history, service))
            for env in ("staging", "production"):
                self.check(f"{service}: {env} serves {EXPECTED_LIVE[service][env]}",
                           partial(self.live, service, env))
        self.check(f"{APPROVAL_SERVICE}: v2 waits for approval", self.pending_approval)
        self.check(f"{ROLLBACK_SERVICE}: production rolled back to v1", self.rollback)
        if self.story.mono_decisions:
            self.check("storefront: the first push runs catalog and web",
                       partial(self.mono_ran, "v1", {"catalog", "web"}))
            self.check("storefront: a push touching only web runs web, not catalog",
                       partial(self.mono_ran, "v2", {"web"}))
            self.check("storefront: a change to libs/common runs catalog and web",
                       partial(self.mono_ran, "v3", {"catalog", "web"}))
            self.check("storefront: web deploys after catalog (depends_on_services)",
                       partial(self.mono_deploy_order, "v3"))
            for role in MONO_SERVICES:
                for env in ("staging", "production"):
                    self.check(f"{role}: {env} serves {MONO_LIVE[role][0]}",
                               partial(self.mono_live, role, env))
        self.check("dashboard lists every service", self.overview)
        return self.checks


def served_without_agent(story: Story) -> list[Check]:
    """With the agent stopped: every environment still serves its build, through the
    HAProxy fronts that run outside the agent."""
    wanted = [(service, env, EXPECTED_LIVE[service][env]) for service in SERVICE_NAMES
              for env in ("staging", "production")]
    if story.mono_decisions:
        wanted += [(role, env, MONO_LIVE[role][0]) for role in MONO_SERVICES
                   for env in ("staging", "production")]
    checks = []
    for service, env, want in wanted:
        port = story.ports[service][env]
        version = fetch_version(port)
        checks.append(Check(f"{service}: {env} serves {want} with no agent running",
                            version == want, f":{port}/version -> {version}"))
    return checks


def report(checks: list[Check], say: Callable[[str], None]) -> bool:
    width = max(len(c.name) for c in checks)
    for c in checks:
        say(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<{width}}  {c.detail}")
    failed = [c for c in checks if not c.ok]
    say(f"{len(checks) - len(failed)}/{len(checks)} checks passed")
    return not failed
