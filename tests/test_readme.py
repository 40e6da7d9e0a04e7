"""The README's quickstart is exactly what CI and the demo run: `make demo`, `make test`."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import REPO_ROOT

README = REPO_ROOT / "README.md"


def _section(text: str, title: str) -> str:
    match = re.search(rf"^##\s+{title}\s*$(.*?)(?=^##\s|\Z)", text, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _code_blocks(text: str) -> list[list[str]]:
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)
    return [[ln.strip() for ln in b.splitlines() if ln.strip()] for b in blocks]


def _make_target(name: str) -> list[str]:
    """The recipe lines of a Makefile target."""
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(rf"^{name}:", ln))
    recipe = []
    for ln in lines[start + 1:]:
        if not ln.startswith("\t"):
            break
        recipe.append(ln.strip())
    return recipe


def test_quickstart_is_exactly_make_demo_then_make_test() -> None:
    blocks = _code_blocks(_section(README.read_text(), "Quickstart"))
    assert blocks == [["make demo", "make test"]]


def test_ci_runs_make_test() -> None:
    commands = [ln.strip() for ln in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    assert "make test" in commands


def test_make_demo_runs_the_demo_script_and_module() -> None:
    assert any(ln.startswith("scripts/demo.sh") for ln in _make_target("demo"))
    assert any(ln.startswith("scripts/demo-clean.sh") for ln in _make_target("demo-clean"))
    script = (REPO_ROOT / "scripts" / "demo.sh").read_text()
    assert re.search(r"^exec \.venv/bin/python -m agent\.demo \"\$@\"$", script, re.M)
    assert (REPO_ROOT / "agent" / "demo" / "__main__.py").exists()


def test_readme_screenshots_exist() -> None:
    for ref in re.findall(r"\]\((screenshots/[^)]+)\)", README.read_text()):
        assert Path(REPO_ROOT / ref).exists(), f"README shows a missing screenshot {ref}"
