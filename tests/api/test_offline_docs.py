"""/api/v1/docs works with no internet: the page loads nothing from another host, and
every script, stylesheet and icon it names is served by the agent itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.api.app import create_app
from tests.api.conftest import local_agent
from tests.harness.server import ServerThread


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    agent = local_agent(tmp_path / "data")
    server = ServerThread(create_app(agent)).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_the_docs_page_and_its_assets_come_from_the_agent(served: str) -> None:
    page = httpx.get(f"{served}/api/v1/docs", timeout=10)
    assert page.status_code == 200 and "swagger" in page.text.lower()
    named = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
    named += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)  # the OpenAPI document
    assert named, page.text
    elsewhere = [u for u in named if re.match(r"(https?:)?//", u)]
    assert elsewhere == [], f"the docs page loads from other hosts: {elsewhere}"
    kinds = set()
    for url in named:
        asset = httpx.get(f"{served}{url}", timeout=10)
        assert asset.status_code == 200 and asset.content, url
        kinds.add(asset.headers["content-type"].split(";")[0])
    assert {"text/javascript", "text/css", "application/json"} <= kinds, kinds
