"""Rollback picker → confirm → a real rollback deployment on a real Docker engine."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Static

from seamless_tui.screens.confirm import ConfirmModal
from seamless_tui.screens.rollback import RollbackScreen
from tests.helpers import unique_name
from tests.tui.conftest import start_live_agent, wait_for
from tests.tui.images import (
    build_catalog_images,
    remove_front,
    remove_images,
    remove_networks,
)
from tests.tui.seed import sha


@pytest.fixture
def rollback_agent(tmp_path, docker_client, base_image):
    repo = unique_name("seamless-tui-test")
    catalog = unique_name("catalog")  # deployed for real: its colours are this test's alone
    tags = build_catalog_images(docker_client, base_image, repo, [sha(0x2f1), sha(0x2f2)],
                                catalog)
    live = start_live_agent(tmp_path, image_repo=repo, catalog=catalog)
    yield live
    live.server.stop()
    remove_front(docker_client, catalog, tmp_path)
    remove_images(docker_client, tags)
    remove_networks(docker_client, catalog)


async def test_rollback_from_the_picker_creates_a_rollback_deployment(rollback_agent):
    live = rollback_agent
    catalog = live.seeded.catalog
    app = live.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        app.open_rollback(catalog)
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackScreen)
                       and len(app.screen.deployments) == 2, "the production images")
        picker = app.screen
        assert picker.deployments[0].current and picker.deployments[0].sha == sha(0x2f2)
        await pilot.press("j", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirm dialog")
        focused = app.screen.focused
        assert isinstance(focused, Button) and focused.id == "cancel"
        question = str(app.screen.query_one("#question", Static).render())
        assert catalog in question and "production" in question
        assert sha(0x2f2)[:7] in question and sha(0x2f1)[:7] in question
        await pilot.press("tab", "enter")  # move to "Roll back" on purpose, confirm
        progress = picker.query_one("#progress", Static)
        await wait_for(pilot, lambda: "live and healthy" in str(progress.render())
                       or "failed" in str(progress.render()), "the rollback to finish", 60)
        assert "live and healthy" in str(progress.render()), str(progress.render())
    with live.http() as http:
        deps = http.get(f"/api/v1/services/{catalog}/deployments",
                        params={"environment": "production"}).json()
    assert deps[0]["kind"] == "rollback" and deps[0]["sha"] == sha(0x2f1)
    assert deps[0]["status"] == "active" and deps[0]["actor"] == "admin-tui"
