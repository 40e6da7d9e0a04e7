"""The whole first-five-minutes story, headless: `make demo ARGS=--headless` in CI.

The demo builds its shop of three git repositories, starts a real `seamless-agent
serve`, triggers every run with signed push webhooks, approves, rolls back and then
verifies each outcome through the REST API and the services' stable ports; it exits
non-zero unless every one of them happened.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, free_port

DEMO_TIMEOUT_S = 420


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_headless_demo_reaches_every_expected_outcome(
        tmp_path: Path, requires_docker: None, base_image: str) -> None:
    demo_dir = tmp_path / "demo"
    # A suffix on the service names keeps this demo apart from one a developer is running.
    cmd = [sys.executable, "-m", "agent.demo", "--headless", "--dir", str(demo_dir),
           "--port", str(free_port()), "--suffix", uuid.uuid4().hex[:8]]
    instance = ""
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=DEMO_TIMEOUT_S)
    finally:
        with contextlib.suppress(OSError, ValueError):
            instance = json.loads((demo_dir / "demo.json").read_text())["instance"] or ""
        subprocess.run([str(REPO_ROOT / "scripts" / "demo-clean.sh"), str(demo_dir)],
                       cwd=REPO_ROOT, capture_output=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "checks passed" in proc.stdout
    assert "FAIL " not in proc.stdout
    assert not demo_dir.exists(), "demo-clean left the demo directory behind"
    # Everything the demo's agent made carries its instance id; demo-clean took all of it.
    assert instance
    label = f"label=io.seamless.agent={instance}"
    for listing in (["ps", "-aq"], ["network", "ls", "-q"], ["images", "-q"]):
        left = subprocess.run(["docker", *listing, "--filter", label], capture_output=True,
                              text=True, timeout=60).stdout.split()
        assert left == [], f"demo-clean left {listing[0]} {left}"
