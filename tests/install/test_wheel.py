"""The wheel is the product: built with `pip wheel`, installed into a fresh virtualenv,
both programs run from /tmp without the source tree. `seamless-tui` paints the
dashboard and quits; `seamless-agent` serves and runs a pipeline on the Docker engine;
a file missing from the install is a clear error with a non-zero exit."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from store.models import RunStatus
from tests.harness import wait_until
from tests.helpers import free_port, http_get, unique_name
from tests.install.pty_screen import PtyProgram
from tests.install.wheel_venv import (
    PACKAGES,
    REPO_ROOT,
    Installed,
    clean_env,
    shared_install,
    using,
)
from tests.sample_repo import make_sample_service_repo

# The first test here also builds the wheel and installs it into a fresh venv (the session
# fixture, its steps each bounded by INSTALL_TIMEOUT_S): under heavy load that alone took
# ~290 s, so the suite's 300 s per-test bound is raised for these to catch only a hang.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    # The parent of the base temp dir is common to all xdist workers: one build for all.
    return shared_install(tmp_path_factory.getbasetemp().parent / "seamless-wheel")


@pytest.fixture
def wheel(shared: Installed) -> Path:
    return next((shared.venv.parent / "dist").glob("seamless-*.whl"))


@pytest.fixture
def installed(shared: Installed) -> Iterator[Installed]:
    with using(shared) as installed:
        yield installed


@pytest.fixture
def outside() -> Iterator[Path]:
    """A working directory under /tmp with no trace of the source tree."""
    path = Path(tempfile.mkdtemp(prefix="seamless-user-", dir="/tmp"))
    assert not str(path).startswith(str(REPO_ROOT))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tracked_package_files() -> set[str]:
    out = subprocess.run(["git", "ls-files", *PACKAGES], cwd=REPO_ROOT, check=True,
                         capture_output=True, text=True).stdout.split()
    return {p for p in out if not p.endswith(".py") and "/tests/" not in p}


def test_the_wheel_carries_every_package_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    data_files = tracked_package_files()
    assert "seamless_tui/themes/seamless.tcss" in data_files
    assert data_files - names == set(), "package files left out of the wheel"


def test_programs_import_from_the_install_not_the_source(installed: Installed,
                                                         outside: Path) -> None:
    probe = subprocess.run(
        [installed.bin("python"), "-c",
         "import agent, store, seamless_tui; print(agent.__file__, seamless_tui.__file__)"],
        cwd=outside, env=clean_env(outside), capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    for path in probe.stdout.split():
        assert path.startswith(str(installed.venv)), path
    helps = [subprocess.run([installed.bin(p), "--help"], cwd=outside, env=clean_env(outside),
                            capture_output=True, text=True, timeout=60)
             for p in ("seamless-agent", "seamless-tui")]
    assert [h.returncode for h in helps] == [0, 0], [h.stderr for h in helps]


def start_agent(installed: Installed, home: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    data_dir = home / "data"
    port = free_port()
    config = home / "agent.toml"
    config.write_text(f'data_dir = "{data_dir}"\nport = {port}\nexecutor = "docker"\n'
                      "poll_enabled = false\n")
    log = open(home / "agent.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([installed.bin("seamless-agent"), "serve", "--config", str(config)],
                            cwd=home, env=clean_env(home), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (home / "agent.log").read_text()
        return http_get(f"{url}/healthz") is not None and (data_dir / "admin-token").exists()

    wait_until(ready, timeout=60, what="the installed agent did not start")
    return proc, url, data_dir


@pytest.fixture
def served(installed: Installed, outside: Path) -> Iterator[tuple[str, str, Path]]:
    proc, url, data_dir = start_agent(installed, outside)
    try:
        yield url, (data_dir / "admin-token").read_text().strip(), outside
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_installed_agent_runs_a_pipeline_and_the_tui_shows_it(
        installed: Installed, served: tuple[str, str, Path], base_image: str,
        docker_client) -> None:
    url, token, home = served
    env = clean_env(home, SEAMLESS_AGENT_URL=url, SEAMLESS_TOKEN=token)
    name = unique_name("wheel")
    repo = make_sample_service_repo(home / "repo", name)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([installed.bin("seamless-agent"), *args], cwd=home, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    (home / "pipeline.toml").write_text(
        f'name = "{name}"\nstage_image = "{base_image}"\n'
        'staging = { kind = "none" }\nproduction = { kind = "none" }\n')
    (home / "service.toml").write_text(
        'code_quality_command = "sh lint.sh"\nunit_test_command = "sh test.sh"\n')
    cli("pipeline", "add", "--file", str(home / "pipeline.toml"))
    cli("service", "add", "--name", name, "--pipeline", name, "--repo", repo.url,
        "--file", str(home / "service.toml"))
    run = json.loads(cli("trigger", name, "--partial", "--json").stdout)
    try:
        def finished() -> dict | None:
            shown = json.loads(cli("runs", "--service", name, "--json").stdout)[0]
            return shown if RunStatus(shown["status"]).finished else None

        final = wait_until(finished, timeout=240, interval=1.0,
                           what="the run did not finish")
        logs = cli("logs", str(run["id"])).stdout
        assert final["status"] == "success", logs
        assert "[Unit Test] 4 passed" in logs
        # The run page from the installed package: its templates and assets are in the wheel.
        link = cli("runs", str(run["id"]), "--url").stdout.strip()
        page = httpx.get(link, timeout=30)
        assert page.status_code == 200 and "Unit Test" in page.text, page.text[:500]
        for asset in ("/assets/run.css", "/assets/run.js"):
            assert httpx.get(url + asset, timeout=30).status_code == 200, asset

        tui = PtyProgram([installed.bin("seamless-tui"), "--agent", url], cwd=home, env=env)
        try:
            # The dashboard row: the service (its name cut to the column) and its last run.
            tui.wait_for("✓ success", timeout=60)
            assert name[:11] in tui.text
            tui.press("q")
            assert tui.wait_exit(timeout=30) == 0, tui.text
        finally:
            tui.close()
    finally:
        for image in docker_client.images.list(name=f"seamless/{name}"):
            for tag in image.tags:
                docker_client.images.remove(tag, force=True)


def installed_stylesheets(installed: Installed) -> list[Path]:
    (package,) = installed.venv.glob("lib/python*/site-packages/seamless_tui")
    return sorted(package.rglob("*.tcss"))


def test_a_file_missing_from_the_install_is_a_clear_error(shared: Installed,
                                                          outside: Path) -> None:
    with using(shared, exclusive=True) as installed:
        stylesheets = installed_stylesheets(installed)
        assert len(stylesheets) >= 2  # the themes' and the screens'/widgets' own
        results = [run_without(path, installed, outside) for path in stylesheets]
    for path, result in zip(stylesheets, results, strict=True):
        assert result.returncode != 0, path
        assert path.name in result.stderr and "reinstall" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr + result.stdout


def run_without(stylesheet: Path, installed: Installed, outside: Path
                ) -> subprocess.CompletedProcess[str]:
    hidden = stylesheet.with_suffix(".hidden")
    stylesheet.rename(hidden)
    try:
        result = subprocess.run(
            [installed.bin("seamless-tui"), "--agent", "http://127.0.0.1:9"], cwd=outside,
            env=clean_env(outside, SEAMLESS_TOKEN="x"), capture_output=True, text=True,
            timeout=60)
    finally:
        hidden.rename(stylesheet)
    return result

