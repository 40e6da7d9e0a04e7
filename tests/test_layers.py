"""The TUI runs on a laptop against a remote agent: importing it must not drag in the
agent's libraries (Docker, the web server, AWS, SQLite). The static side of this is the
import-linter contract in pyproject.toml; this test checks what really gets loaded."""

from __future__ import annotations

import json
import subprocess
import sys

AGENT_SIDE = ("docker", "fastapi", "boto3", "botocore", "sqlite3", "_sqlite3",
              "uvicorn", "agent")

PROBE = """
import importlib, json, pkgutil, sys
import seamless_tui
for info in pkgutil.walk_packages(seamless_tui.__path__, "seamless_tui."):
    importlib.import_module(info.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_importing_every_tui_module_loads_no_agent_side_library() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "seamless_tui" in loaded and "textual" in loaded  # the probe did import the TUI
    assert sorted(loaded & set(AGENT_SIDE)) == []
