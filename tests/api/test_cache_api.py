"""A service's dependency cache over REST: its size, and a clear (deployer)."""

from __future__ import annotations

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
