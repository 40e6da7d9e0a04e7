"""Real pytest in the Python stage image (seamless/python:3, built from Debian's packages
by scripts/build-python-image.sh when missing) writing --junitxml: its failure is named
with pytest's own message and trace, its skip counted, and once quarantined the same
failure no longer fails the stage (pytest still exits 1)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent.runtime import Agent
from store.models import RunStatus
from tests.engine.conftest import add_service, log_text, push, wait_run

IMAGE = "seamless/python:3"
REPO_ROOT = Path(__file__).resolve().parents[2]
# pytest and its pure-Python dependencies, vendored into the fixture repository: the image
# has no pytest and no stage can reach a package index here.
VENDORED = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py.py")

TESTS = '''import pytest


def test_charge():
    assert 2 + 2 == 4


def test_refund():
    refunds = []
    assert len(refunds) == 1, "refund not recorded"


@pytest.mark.skip(reason="needs the bank sandbox")
def test_bank():
    pass
'''


@pytest.fixture(scope="session")
def python_image(docker_client) -> str:
    subprocess.run([str(REPO_ROOT / "scripts" / "build-python-image.sh")], check=True,
                   timeout=1800)
    return IMAGE


def vendor(target: Path) -> None:
    site = Path(pytest.__file__).resolve().parents[1]
    for name in VENDORED:
        source = site / name
        if source.is_dir():
            shutil.copytree(source, target / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / name)


async def test_real_pytest_reports_decide_the_stage_and_quarantine_holds_its_failure(
        agent: Agent, sample_repo, python_image: str, tmp_path: Path) -> None:
    repo = sample_repo("pyshop")
    vendor(repo.path / "vendor")
    repo.commit("pytest tests", {"tests/__init__.py": "", "tests/test_shop.py": TESTS})
    service = add_service(
        agent, repo, stage_image=python_image, dockerfile=None, compose_file=None,
        integration_test_command=None,
        unit_test_command="PYTHONPATH=vendor python3 -m pytest -q -p no:cacheprovider "
                          "--junitxml=reports/junit.xml tests")
    run = await wait_run(agent, push(agent, service, repo.head_sha).id)

    unit = next(s for s in run.stages if s.name == "Unit Test")
    assert unit.error == "1 failed test(s): tests.test_shop::test_refund (exit code 1)"
    assert "1 failed, 1 passed, 1 skipped" in log_text(agent, run.id, "Unit Test")
    summary = agent.store.run_test_summary(run.id)
    stage = summary.stages[0]
    assert (stage.passed, stage.failed, stage.skipped) == (1, 1, 1)
    failure = summary.failures[0]
    assert failure.message is not None and "refund not recorded" in failure.message
    assert failure.trace is not None and "assert len(refunds) == 1" in failure.trace
    assert failure.log_line is not None  # pytest's "test_refund" section in the log

    agent.store.quarantine_test(failure.test_id, "alice", "bank mock flaky")
    repo.commit("touch", {"README.md": "again\n"})
    again = await wait_run(agent, push(agent, service, repo.head_sha).id)
    assert again.status is RunStatus.success, again.error
    assert agent.store.run_test_summary(again.id).stages[0].quarantined == 1
