"""Abort from the TUI, end to end: a real agent, a real canary held at its first step on
the real Docker engine, `x` and the confirm on the canary screen, traffic back on stable."""

from __future__ import annotations

import contextlib
import threading

import httpx
import pytest
from textual.widgets import Button

from agent.deploy.deployer import RollbackError
from agent.logs.logger import LoggingStageLog
from seamless_tui.screens.canary import CanaryScreen
from seamless_tui.screens.confirm import ConfirmModal
from store.models import (
    CanaryConfig,
    DockerTargetConfig,
    RunKind,
    ServiceConfig,
    Trigger,
)
from tests.helpers import unique_name
from tests.tui.conftest import start_live_agent, wait_for
from tests.tui.images import (
    build_catalog_images,
    remove_front,
    remove_images,
    remove_networks,
)
from tests.tui.seed import sha

# No request will reach 10,000: the first step is inconclusive and holds until aborted.
HELD = CanaryConfig(steps=[10, 100], bake_s=1, min_requests=10_000, hold_timeout_s=600)


@pytest.fixture
def canary_agent(tmp_path, docker_client, base_image):
    repo = unique_name("seamless-tui-test")
    catalog = unique_name("catalog")  # deployed for real: its colours are this test's alone
    tags = build_catalog_images(docker_client, base_image, repo, [sha(0x2f1), sha(0x2f2)],
                                catalog)
    live = start_live_agent(tmp_path, image_repo=repo, catalog=catalog)
    agent = live.server.agent
    service = agent.store.get_service(catalog)
    config = ServiceConfig(**{k: getattr(service, k) for k in ServiceConfig.model_fields})
    config.production = DockerTargetConfig(strategy="canary", canary=HELD)
    service = agent.store.update_service(catalog, config)
    # A live colour first (a rollback to a recorded image: straight in), then a deploy
    # of the other image (a canary: rollbacks never are), which holds at 10 %.
    agent.deployer.rollback(service, "production", sha(0x2f1), actor="ops")
    agent.deployer.wait_idle()
    service = agent.deployer.unpin(service, "production")  # the rollback pinned it
    pipeline = agent.store.get_pipeline(service.pipeline)
    run = agent.store.create_run(service.id, trigger=Trigger.manual, kind=RunKind.full,
                                 sha=sha(0x2f2), author="ana", message="the canary")
    log = LoggingStageLog("canary")
    deploy = threading.Thread(target=agent.deployer.deploy_stage, daemon=True, args=(
        run, service, pipeline, "production", tags[1], log))
    deploy.start()
    yield live
    with contextlib.suppress(RollbackError):  # the test failed before its abort
        agent.deployer.steer_canary(service, "production", "abort", "teardown")
    deploy.join(60)
    live.server.stop()
    remove_front(docker_client, catalog, tmp_path)
    remove_images(docker_client, tags)
    remove_networks(docker_client, catalog)


async def test_abort_from_the_tui_sends_every_request_back_to_stable(canary_agent):
    live = canary_agent
    catalog = live.seeded.catalog
    app = live.app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        app.open_service(catalog)
        await wait_for(pilot, lambda: getattr(app.screen, "service_name", None) == catalog,
                       "the service screen")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CanaryScreen)
                       and app.screen.status is not None and app.screen.status.running
                       and sorted(app.screen.status.weights.values()) == [10, 90],
                       "the canary held at 10 %", 120)
        screen = app.screen
        stable = max(screen.status.weights, key=screen.status.weights.get)
        assert "canary running" in str(screen.query_one("#summary").render())
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirm dialog")
        focused = app.screen.focused
        assert isinstance(focused, Button) and focused.id == "cancel"  # never by accident
        await pilot.press("tab", "enter")
        await wait_for(pilot, lambda: screen.status is not None
                       and not screen.status.running and screen.status.deployment is not None
                       and screen.status.deployment.status.value == "failed", "the abort", 60)
        dep = screen.status.deployment
        assert "aborted by admin-tui at step 1 (10%)" in (dep.error or ""), dep.error
        assert screen.status.weights.get(stable) == 100
        assert all(w == 0 for c, w in screen.status.weights.items() if c != stable)
    with live.http() as http:
        current = http.get(f"/api/v1/services/{catalog}/deployments",
                           params={"environment": "production"}).json()
        audit = http.get("/api/v1/audit").json()
    active = next(d for d in current if d["status"] == "active")
    assert active["sha"] == sha(0x2f1)  # stable still serves
    address = live.server.agent.store.deployment_target_state(active["id"])["address"]
    assert httpx.get(f"{address}/health", timeout=10).status_code == 200
    assert any((a["actor"], a["action"], a["target"]) == ("admin-tui", "canary abort",
                                                          f"{catalog}/production")
               for a in audit), audit
