"""The demo's pieces without Docker: its repositories' scripts and its signed pushes."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from agent.demo.pushes import push_payload, signed_request
from agent.demo.shop import create_shop
from agent.triggers.github import plan_push, services_for, verify_signature
from store.models import Service


def _sh(repo: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", script], cwd=repo, capture_output=True, text=True, timeout=30)


def _service(name: str, repo_url: str) -> Service:
    ts = datetime.now(UTC)
    return Service(id=1, name=name, pipeline="shop", repo_url=repo_url, webhook_secret="s3cret",
                   created_at=ts, updated_at=ts)


def test_shop_scripts_pass_until_a_commit_breaks_the_unit_tests(tmp_path: Path) -> None:
    repos = create_shop(tmp_path)
    inventory = repos["inventory"]
    assert _sh(inventory.path, "lint.sh").returncode == 0
    assert _sh(inventory.path, "test.sh").returncode == 0
    inventory.break_unit_tests("v3", "inventory: count reserved stock twice")
    broken = _sh(inventory.path, "test.sh")
    assert broken.returncode == 1
    assert "test_version ... FAILED" in broken.stdout
    assert _sh(inventory.path, "lint.sh").returncode == 0


def test_suffix_names_every_service_apart(tmp_path: Path) -> None:
    repos = create_shop(tmp_path, suffix="t1")
    assert sorted(r.name for r in repos.values()) == [
        "inventory-t1", "notifications-t1", "payments-t1"]
    assert (tmp_path / "payments-t1" / "Dockerfile").is_file()


def test_signed_push_is_one_the_agent_accepts_for_the_right_service(tmp_path: Path) -> None:
    repos = create_shop(tmp_path)
    payments = repos["payments"]
    before = payments.head
    after = payments.release("v2", "payments: release v2")
    body, headers = signed_request("s3cret", push_payload(payments, before, after))

    assert verify_signature("s3cret", body, headers["X-Hub-Signature-256"])
    assert not verify_signature("other", body, headers["X-Hub-Signature-256"])
    assert headers["X-GitHub-Event"] == "push" and headers["X-GitHub-Delivery"]

    payload = json.loads(body)
    services = [_service(r.name, r.url) for r in repos.values()]
    assert [s.name for s in services_for(services, payload)] == ["payments"]
    plan = plan_push(services[0], payload)
    assert plan.run and plan.sha == after and plan.branch == "main"
    assert plan.message == "payments: release v2" and plan.author == "Dana Demo"
    assert payload["head_commit"]["modified"] == ["app/index.html", "app/version"]


def test_the_storefront_monorepo_runs_its_scripts_from_each_service_folder(
        tmp_path: Path) -> None:
    from agent.demo.shop import create_monorepo

    mono = create_monorepo(tmp_path, suffix="t1")
    assert mono.name == "storefront-t1" and mono.names == {"catalog": "catalog-t1",
                                                           "web": "web-t1"}
    for role in ("catalog", "web"):
        folder = mono.path / mono.folder(role)
        assert (folder / "Dockerfile").is_file()
        assert _sh(folder, "lint.sh").returncode == 0
        assert _sh(folder, "test.sh").returncode == 0
    web_only = mono.release_service("web", "v2", "web: release v2")
    assert mono.changed_files(web_only)["modified"] == [
        "services/web/app/index.html", "services/web/app/version"]
    library = mono.change_library("SHOP_CURRENCY=USD\n", "libs/common: dollars")
    assert mono.changed_files(library)["modified"] == ["libs/common/currency.sh"]
