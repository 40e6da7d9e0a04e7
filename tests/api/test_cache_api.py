"""A service's dependency cache over REST: its size, and a clear (deployer)."""

from __future__ import annotations

import docker
import pytest

from agent.executors.installed_deps import LABEL
from store.models import Role
from tests.api.conftest import LiveApi, add_service


def test_a_service_cache_is_shown_and_cleared(api: LiveApi) -> None:
    add_service(api.agent.store, "payments")
    wheel = api.agent.config.caches_dir / "payments" / "pip" / "wheel"
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"w" * 3000)

    with api.client(Role.viewer) as viewer:
        shown = viewer.get("/api/v1/services/payments/cache").json()
        assert viewer.delete("/api/v1/services/payments/cache").status_code == 403
    assert shown == {"service": "payments", "bytes": 3000, "max_bytes": 2048 * 1024 * 1024,
                     "freed_bytes": None}
    with api.client(Role.deployer) as deployer:
        cleared = deployer.delete("/api/v1/services/payments/cache").json()
        assert cleared["freed_bytes"] == 3000 and cleared["bytes"] == 0
        assert deployer.get("/api/v1/services/nope/cache").status_code == 404
    assert not wheel.exists()


def test_clearing_a_service_cache_removes_its_kept_installed_dependencies(
        api: LiveApi, base_image: str) -> None:
    add_service(api.agent.store, "payments")
    kept = api.agent.executors.caches.installed
    assert kept is not None
    engine = docker.from_env()
    helper = engine.containers.create(base_image, ["true"], labels={
        LABEL: "payments", "io.seamless.agent": kept.instance})
    tag = kept.tag("payments", "k1")
    try:
        helper.commit(*tag.split(":"))
        marker = api.agent.config.caches_dir / ".installed" / "payments" / "k1"
        marker.parent.mkdir(parents=True)
        marker.write_text("5000 Unit Test")

        with api.client(Role.deployer) as deployer:
            assert deployer.get("/api/v1/services/payments/cache").json()["bytes"] == 5000
            cleared = deployer.delete("/api/v1/services/payments/cache").json()
        assert cleared["freed_bytes"] == 5000 and cleared["bytes"] == 0
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(tag)
    finally:
        helper.remove(force=True)
        if engine.images.list(name=tag):  # the test failed before the clear
            engine.images.remove(tag, force=True)
        engine.close()
