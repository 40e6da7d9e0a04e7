"""What a new user waits for: a fresh clone's cold `make demo`, and `seamless-tui` start-up
from a fresh wheel install.

1. `git clone` this repository into a temporary directory (fresh venv, nothing built);
   `make runtime` (the install `make demo` does) and `make demo ARGS=--headless` timed to
   the story's start (where the TUI opens: `demo_usable_s`) and to its first check
   (`demo_cold_s`, the whole story included). The demo agent is kept for step 3.
2. `pip wheel` of the clone, installed into another fresh venv (`wheel_install_s`).
3. The installed `seamless-tui` in a pseudo-terminal, against the demo agent, until the
   dashboard shows the shop's services (`tui_start_s`, first and median of 3), against
   `python -c 'import textual.app'` in the same venv (`tui_vs_import_textual`).
Baseline in the same run (`--dev-baseline`): the clone's old install with the dev extras
(`pip install -e .[dev]`), which `make demo` used to do (`runtime_vs_dev_install`).

pip's download cache is used as the machine has it (`pip_cache: warm`); `--no-pip-cache`
turns it off (every package downloaded). The machine is shared: CPU seconds of the
installs (user+sys of the children) are printed beside wall time.
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO_ROOT, parser, report

from tests.install.pty_screen import PtyProgram
from tests.install.wheel_venv import build_wheel, clean_env, install_into_fresh_venv

CHECK_LINE = re.compile(r"\]\s+(ok  |FAIL) ")
STORY_START = "registered pipeline"
TIMEOUT_S = 900


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command that must succeed."""
    cpu, started = children_cpu(), time.monotonic()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}"
                         f"{result.stderr[-2000:]}")
    return time.monotonic() - started, children_cpu() - cpu


def demo_headless(clone: Path, env: dict[str, str], suffix: str) -> tuple[float, float, float]:
    """(story start, first check, whole demo) seconds of `make demo ARGS=--headless`."""
    started = time.monotonic()
    proc = subprocess.Popen(["make", "-s", "demo", f"ARGS=--headless --keep --suffix {suffix}"],
                            cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    story = check = None
    output = []
    assert proc.stdout is not None
    for line in proc.stdout:
        output.append(line)
        now = time.monotonic() - started
        if story is None and STORY_START in line:
            story = now
        if check is None and CHECK_LINE.search(line):
            check = now
    if proc.wait(TIMEOUT_S) != 0 or story is None or check is None:
        raise SystemExit("make demo ARGS=--headless failed:\n" + "".join(output[-40:]))
    return story, check, time.monotonic() - started


def tui_start(venv: Path, url: str, token: str, home: Path, needle: str) -> float:
    env = clean_env(home, SEAMLESS_TOKEN=token)
    tui = PtyProgram([str(venv / "bin" / "seamless-tui"), "--agent", url], cwd=home, env=env)
    try:
        took = tui.wait_for(needle, timeout=120)
        tui.press("q")
        tui.wait_exit(timeout=30)
        return took
    finally:
        tui.close()


def import_textual(venv: Path, home: Path) -> float:
    started = time.monotonic()
    subprocess.run([str(venv / "bin" / "python"), "-c", "import textual.app"], check=True,
                   cwd=home, env=clean_env(home), timeout=120)
    return time.monotonic() - started


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--no-pip-cache", action="store_true", help="download every package")
    p.add_argument("--dev-baseline", action="store_true",
                   help="also time the old `pip install -e .[dev]` (minutes on this machine)")
    p.add_argument("--keep-dir", action="store_true", help="leave the temporary directory")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="seamless-first-run-", dir="/tmp"))
    home = tmp / "home"
    home.mkdir()
    env = clean_env(home)
    # HOME is the fresh one: pip's cache is the machine's unless turned off.
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    if args.no_pip_cache:
        env["PIP_NO_CACHE_DIR"] = "1"
    clone = tmp / "seamless"
    suffix = "fr" + secrets.token_hex(3)
    figures: dict[str, object] = {"pip_cache": "off" if args.no_pip_cache else "warm"}
    try:
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True,
                       timeout=300)
        install_s, install_cpu = timed(["make", "-s", "runtime"], clone, env)
        story, check, whole = demo_headless(clone, env, suffix)
        state = json.loads((clone / ".demo" / "demo.json").read_text())
        figures.update(runtime_install_s=round(install_s, 1),
                       runtime_install_cpu_s=round(install_cpu, 1),
                       demo_usable_s=round(install_s + story, 1),
                       demo_cold_s=round(install_s + check, 1),
                       demo_whole_s=round(install_s + whole, 1))

        wheel = build_wheel(tmp / "dist", clone)
        cpu = children_cpu()
        installed = install_into_fresh_venv(wheel, tmp / "wheel-venv", env)
        figures.update(wheel_install_s=round(installed.install_s, 1),
                       wheel_install_cpu_s=round(children_cpu() - cpu, 1))
        first_service = state["services"][0]
        starts = [tui_start(installed.venv, state["url"], state["token"], home,
                            first_service[:8]) for _ in range(3)]
        textual_s = statistics.median(import_textual(installed.venv, home) for _ in range(3))
        figures.update(tui_start_s=round(statistics.median(starts), 2),
                       tui_first_start_s=round(starts[0], 2),
                       import_textual_s=round(textual_s, 2),
                       tui_vs_import_textual=round(statistics.median(starts) / textual_s, 1))

        if args.dev_baseline:
            dev_venv = tmp / "dev-venv"
            subprocess.run([sys.executable, "-m", "venv", str(dev_venv)], check=True)
            dev_s, dev_cpu = timed([str(dev_venv / "bin" / "pip"), "install", "-q", "-e",
                                    f"{clone}[dev]"], clone, env)
            figures.update(dev_install_s=round(dev_s, 1), dev_install_cpu_s=round(dev_cpu, 1),
                           runtime_vs_dev_install=round(install_s / dev_s, 2))
    finally:
        if (clone / "Makefile").exists():
            subprocess.run(["make", "-s", "demo-clean"], cwd=clone, env=env,
                           capture_output=True, timeout=300)
        if not args.keep_dir:
            shutil.rmtree(tmp, ignore_errors=True)
    figures["load_average"] = round(os.getloadavg()[0], 1)
    report("first run: fresh clone, fresh venvs", list(figures.items()), figures, args.json)


if __name__ == "__main__":
    main()
