"""The demo's story, driven only through the agent's public doors.

Runs are triggered by signed GitHub push webhooks; the approval and the rollback go
through the REST API, as a user (or the TUI) would do them:

1. v1 of every service is pushed; payments and inventory deploy to staging and
   production, notifications (auto-deploy off) waits for approval and is approved;
2. v2 of every service is pushed; notifications is left waiting for approval;
3. a commit to inventory breaks its unit tests, and payments' production is rolled
   back to v1 — so every screen of the TUI has something real to show.

Beside them the storefront monorepo (catalog and web in one repository): its first push
runs both; round 2 touches only web (catalog is not run: "no changes for catalog since
…"); round 3 changes the shared library, which runs both, web deploying after catalog.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.demo.agentproc import Api
from agent.demo.pushes import push_payload, signed_request
from agent.demo.shop import (
    IMAGE_PREFIX,
    MONO_SERVICES,
    SERVICE_NAMES,
    MonoRepo,
    ShopRepo,
)

PIPELINE = "shop"
APPROVAL_SERVICE = "notifications"  # auto-deploy off: production waits for a human
FAILING_SERVICE = "inventory"  # a later commit fails its unit tests
ROLLBACK_SERVICE = "payments"  # production is rolled back to v1
RUN_TIMEOUT_S = 300.0
FINISHED = {"success", "failed", "cancelled", "rejected", "superseded"}

Say = Callable[[str], None]


@dataclass
class Story:
    """What the scenario did: the shas per service and version, and the runs per sha.
    Keyed by role (payments, inventory, notifications); `names` gives the service names."""

    names: dict[str, str]  # role -> service name
    ports: dict[str, dict[str, int]]  # role -> environment -> stable port
    secrets: dict[str, str]  # role -> webhook secret
    shas: dict[str, dict[str, str]] = field(default_factory=dict)  # role -> label -> sha
    runs: dict[str, int] = field(default_factory=dict)  # sha -> run id
    rollback_id: int | None = None
    # The storefront monorepo: label -> sha, and label -> role -> its change decision.
    mono_shas: dict[str, str] = field(default_factory=dict)
    mono_decisions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


def pipeline_body() -> dict[str, Any]:
    return {"name": PIPELINE, "stage_timeout_s": 300, "max_parallel_runs": 4,
            "auto_deploy": True, "staging": {"kind": "docker"},
            "production": {"kind": "docker"}}


def service_body(role: str, repo: ShopRepo, story: Story) -> dict[str, Any]:
    ports = story.ports[role]
    name = story.names[role]
    return {
        "name": name, "pipeline": PIPELINE, "repo_url": repo.url, "branch": "main",
        "triggers": {"push": True, "pull_request": True},
        "code_quality_command": "sh lint.sh", "unit_test_command": "sh test.sh",
        "dockerfile": "Dockerfile", "compose_file": "compose.yaml",
        "integration_test_command": "sh integration.sh",
        "image_repository": f"{IMAGE_PREFIX}/{name}", "container_port": 8080,
        "health_check": {"path": "/health", "timeout_s": 30},
        "auto_deploy": False if role == APPROVAL_SERVICE else None,
        "env": {"SHOP_SERVICE": name},
        "webhook_secret": story.secrets[role],
        "staging": {"kind": "docker", "port": ports["staging"]},
        "production": {"kind": "docker", "port": ports["production"]},
    }


def mono_service_body(role: str, repo: MonoRepo, story: Story) -> dict[str, Any]:
    """A service of the storefront monorepo: its folder, its own paths, the shared library,
    and (web) the service it deploys after."""
    body = service_body(role, repo, story)
    folder = repo.folder(role)
    body.update(root=folder, paths=[f"{folder}/**"], depends_on_paths=["libs/common/**"],
                depends_on_services=[story.names[d] for d in MONO_DEPENDS.get(role, ())])
    return body


MONO_DEPENDS = {"web": ("catalog",)}  # web deploys after catalog


class Scenario:
    def __init__(self, api: Api, repos: dict[str, ShopRepo], story: Story, say: Say,
                 mono: MonoRepo | None = None) -> None:
        self.api, self.repos, self.story, self.say = api, repos, story, say
        self.mono = mono
        self._seen: dict[tuple[int, str], str] = {}  # stage statuses already reported

    def register(self) -> None:
        self.api.post("/api/v1/pipelines", pipeline_body())
        for role in SERVICE_NAMES:
            self.api.post("/api/v1/services", service_body(role, self.repos[role], self.story))
        if self.mono is not None:
            for role in MONO_SERVICES:  # catalog first: web depends on it
                self.api.post("/api/v1/services", mono_service_body(role, self.mono,
                                                                    self.story))
        names = ", ".join(self.story.names.values())
        self.say(f"registered pipeline {PIPELINE!r} with {names}")

    # -- triggers ---------------------------------------------------------------------------
    def push(self, role: str, label: str, before: str | None) -> int:
        """Send the signed `push` webhook for the head of `role`; returns the queued run id."""
        repo = self.repos[role]
        name, sha = repo.name, repo.head
        self.story.shas.setdefault(role, {})[label] = sha
        body, headers = signed_request(self.story.secrets[role], push_payload(repo, before, sha))
        resp = self.api.raw_post("/webhooks/github", body, headers)
        answer = resp.json() if resp.content else {}
        runs = answer.get("runs") or []
        if resp.status_code != 200 or answer.get("status") != "queued" or not runs:
            raise RuntimeError(f"push webhook for {name}@{sha[:8]} was not queued: "
                               f"{resp.status_code} {resp.text[:300]}")
        run_id = int(runs[0]["id"])
        self.story.runs[sha] = run_id
        self.say(f"push {name} {label} ({sha[:8]}) -> run #{runs[0]['number']}")
        return run_id

    def push_mono(self, label: str, before: str | None) -> dict[int, str]:
        """The storefront's signed push: answered at once ("deciding"), then the agent
        decides which of its services the change touches. Returns the runs it queued."""
        assert self.mono is not None
        repo, sha = self.mono, self.mono.head
        self.story.mono_shas[label] = sha
        secret = self.story.secrets[MONO_SERVICES[0]]
        body, headers = signed_request(secret, push_payload(repo, before, sha))
        resp = self.api.raw_post("/webhooks/github", body, headers)
        answer = resp.json() if resp.content else {}
        if resp.status_code != 202 or answer.get("status") != "deciding":
            raise RuntimeError(f"push webhook for {repo.name}@{sha[:8]} was not accepted: "
                               f"{resp.status_code} {resp.text[:300]}")
        names = {self.story.names[role]: role for role in MONO_SERVICES}
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            found = {d["service"]: d for d in self.api.get("/api/v1/decisions", sha=sha)}
            if set(names) <= set(found):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no decision for {repo.name}@{sha[:8]} within "
                                   f"{RUN_TIMEOUT_S:g} s")
            time.sleep(0.2)
        decided = {names[name]: found[name] for name in names}
        self.story.mono_decisions[label] = decided
        for role, decision in decided.items():
            self.say(f"push {repo.name} {label} ({sha[:8]}): {self.story.names[role]} "
                     f"{'runs' if decision['ran'] else 'not run'} - {decision['reason']}")
        return {int(d["run_id"]): "success" for d in decided.values() if d["run_id"]}

    # -- waiting ------------------------------------------------------------------------------
    def wait_runs(self, expected: dict[int, str]) -> None:
        """Wait until every run reaches its expected status (and stop at a wrong end)."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        pending = dict(expected)
        while pending:
            for run_id, want in list(pending.items()):
                run = self.api.get(f"/api/v1/runs/{run_id}")
                self._report_stages(run, self._seen)
                if run["status"] == want:
                    self.say(f"{run['service']} run #{run['number']}: {want}")
                    del pending[run_id]
                elif run["status"] in FINISHED:
                    raise RuntimeError(self._explain(run, want))
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"runs {sorted(pending)} did not finish within "
                                   f"{RUN_TIMEOUT_S:g} s")
            if pending:
                time.sleep(0.5)

    def _report_stages(self, run: dict[str, Any], seen: dict[tuple[int, str], str]) -> None:
        for stage in run.get("stages", []):
            key = (run["id"], stage["name"])
            status = stage["status"]
            if status in ("success", "failed", "skipped", "awaiting_approval") \
                    and seen.get(key) != status:
                seen[key] = status
                self.say(f"  {run['service']:<13} #{run['number']} {stage['name']:<20} {status}")

    def _explain(self, run: dict[str, Any], want: str) -> str:
        failed = [s for s in run.get("stages", []) if s["status"] == "failed"]
        text = (f"{run['service']} run #{run['number']} ended {run['status']}, expected {want}"
                f" ({run.get('error') or 'no error recorded'})")
        for stage in failed:
            page = self.api.get(f"/api/v1/runs/{run['id']}/logs", stage=stage["name"],
                                tail="true", limit=25)
            lines = "\n    ".join(line["text"] for line in page.get("lines", []))
            text += f"\n  {stage['name']} failed: {stage.get('error')}\n    {lines}"
        return text

    def wait_deployment(self, service: str, deployment_id: int) -> dict[str, Any]:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            for dep in self.api.get(f"/api/v1/services/{service}/deployments"):
                if dep["id"] == deployment_id and dep["status"] != "in_progress":
                    if dep["status"] != "active":
                        raise RuntimeError(f"deployment {deployment_id} of {service} ended "
                                           f"{dep['status']}: {dep.get('error')}")
                    return dep
            time.sleep(0.5)
        raise RuntimeError(f"deployment {deployment_id} of {service} did not finish")

    # -- the story ------------------------------------------------------------------------------
    def expected_after_push(self, role: str) -> str:
        return "awaiting_approval" if role == APPROVAL_SERVICE else "success"

    def release_round(self, label: str) -> dict[str, int]:
        """Push `label` of every service at once; wait for staging (and production) deploys.
        The storefront's v1 is its first push; its v2 touches only web."""
        runs: dict[str, int] = {}
        for role in SERVICE_NAMES:
            repo = self.repos[role]
            before = None  # the first push creates the branch
            if label != "v1":
                before = repo.head
                repo.release(label, f"{repo.name}: release {label}")
            runs[role] = self.push(role, label, before)
        mono_runs: dict[int, str] = {}
        if self.mono is not None:
            before = None
            if label != "v1":
                before = self.mono.head
                self.mono.release_service("web", label, f"web: release {label}")
            mono_runs = self.push_mono(label, before)
        self.wait_runs({**{runs[n]: self.expected_after_push(n) for n in SERVICE_NAMES},
                        **mono_runs})
        return runs

    def library_change(self, label: str) -> dict[int, str]:
        """A change to the storefront's shared library: both its services run."""
        assert self.mono is not None
        before = self.mono.head
        self.mono.change_library("SHOP_CURRENCY=EUR\nSHOP_ROUNDING=0.05\n",
                                 "libs/common: round prices to 5 cents")
        return self.push_mono(label, before)

    def approve(self, run_id: int, comment: str) -> None:
        approval = self.api.post(f"/api/v1/runs/{run_id}/approve", {"comment": comment})
        self.say(f"approved {approval['service']} {approval['candidate_sha'][:8]} for production")
        self.wait_runs({run_id: "success"})

    def rollback(self, role: str, label: str) -> None:
        sha = self.story.shas[role][label]
        service = self.story.names[role]
        dep = self.api.post("/api/v1/rollbacks", {"service": service,
                                                  "environment": "production", "sha": sha})
        self.story.rollback_id = int(dep["id"])
        self.say(f"rolling back {service} production to {label} ({sha[:8]})")
        self.wait_deployment(service, self.story.rollback_id)
        self.say(f"{service} production serves {label} again")

    def run(self) -> None:
        self.register()
        self.say("round 1: v1 of every service")
        first = self.release_round("v1")
        self.approve(first[APPROVAL_SERVICE], "first release: notifications go live")
        self.say("round 2: v2 of every service")
        self.release_round("v2")
        self.say(f"round 3: a commit that breaks {FAILING_SERVICE}'s unit tests; "
                 f"{ROLLBACK_SERVICE} is rolled back")
        repo = self.repos[FAILING_SERVICE]
        before = repo.head
        repo.break_unit_tests("v3", f"{repo.name}: count reserved stock twice")
        broken = self.push(FAILING_SERVICE, "v3", before)
        library = self.library_change("v3") if self.mono is not None else {}
        self.rollback(ROLLBACK_SERVICE, "v1")
        self.wait_runs({broken: "failed", **library})
