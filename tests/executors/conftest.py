"""A real store + log writer, and stage specs with unique container names."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.executors.base import StageSpec, stage_labels
from store.store import Store


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def make_spec(workspace: Path, base_image: str) -> Callable[..., StageSpec]:
    """A StageSpec for a fresh run id (tests share one engine: ids and names are unique)."""

    def make(command: str, **overrides: object) -> StageSpec:
        run_id = int(uuid.uuid4().int % 1_000_000_000) + 1_000_000
        stage = str(overrides.pop("stage", "Unit Test"))
        fields: dict[str, object] = dict(
            run_id=run_id, stage=stage, service="svc", image=base_image, command=command,
            workspace=workspace, timeout_s=120.0,
            container_name=f"seamless-test-run{run_id}-{uuid.uuid4().hex[:8]}",
            labels=stage_labels(run_id, stage, "svc"))
        fields.update(overrides)
        return StageSpec(**fields)  # type: ignore[arg-type]

    return make


def stored(store: Store, run_id: int) -> list[tuple[str, str]]:
    return [(ln.stream.value, ln.text)
            for ln in store.log_page(run_id, limit=100_000).lines]
