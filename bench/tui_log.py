"""TUI log pane at scale: a 1,000,000-line stage log served by a real agent process.

Figures: time from opening the run to the first painted log screen (the tail),
from `g` to the painted first line, the TUI's peak RSS, key-press latency while
10,000 lines/s arrive, and `seamless-tui` start-up to the first painted dashboard
against `python -c 'import textual'`. The agent (seeding, serving, flooding) runs in
its own process so the RSS is the TUI's alone.

Key latency is the time `Pilot.press` takes: the key is delivered, handled and the
screen has processed everything queued with it.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import REPO_ROOT, flood, hidden_option, parser, report, spawn_server

LINES = 1_000_000
STAGE = "Unit Test"


# -- the agent process ------------------------------------------------------------------------
def serve(data_dir: Path, lines: int) -> None:
    """Seed, serve, print `READY url token run_id`, then obey `flood <rate> <seconds>`."""
    from store.store import Store
    from tests.helpers import free_port
    from tests.tui.agent_server import AgentServer
    from tests.tui.seed import add_log, seed

    store = Store(data_dir / "seamless.db")
    seeded = seed(store)
    run_id = seeded.runs["checkout"]
    add_log(store, run_id, STAGE, lines, batch=50_000, text="bench line {i}: module {m} ok")
    store.close()
    server = AgentServer(data_dir, free_port()).start()
    print(f"READY {server.url} {seeded.tokens['admin']} {run_id}", flush=True)
    for command in sys.stdin:
        parts = command.split()
        if parts and parts[0] == "flood":
            threading.Thread(target=_flood, args=(server, run_id, float(parts[1]),
                                                  float(parts[2])), daemon=True).start()
    server.stop()


def _flood(server, run_id: int, rate: float, seconds: float) -> None:  # type: ignore[no-untyped-def]
    flood(server.agent.logs.stage_log(run_id, STAGE, []), rate, seconds,
          lambda n: f"\x1b[36mlive\x1b[0m line {n}")


# -- the TUI side ------------------------------------------------------------------------------
async def measure_tui(url: str, token: str, run_id: int, agent: subprocess.Popen[str],
                      flood_s: float) -> dict[str, float]:
    from seamless_tui.app import SeamlessApp
    from seamless_tui.client import AgentClient
    from seamless_tui.config import UserConfig
    from seamless_tui.widgets.log_view import LogView

    app = SeamlessApp(AgentClient(url, token), config=UserConfig(path=None))
    out: dict[str, float] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        while not getattr(app.screen, "rows", None):
            await pilot.pause(0.02)
        start = time.perf_counter()
        app.open_run(run_id)
        while not (app.screen.query(LogView) and app.screen.query_one(LogView).loaded_once):
            await asyncio.sleep(0.002)
        await pilot.pause()  # one full refresh: the tail is on screen
        out["first_paint_s"] = time.perf_counter() - start
        view = app.screen.query_one(LogView)
        view.focus()
        await pilot.pause()

        start = time.perf_counter()
        await pilot.press("g")
        while view.window.abs_start != 0 or view.fetching is not None:
            await asyncio.sleep(0.002)
        await pilot.pause()
        out["top_s"] = time.perf_counter() - start
        assert view.window.lines[0].text == "checkout Unit Test 1"  # the seeded first line

        await pilot.press("G")
        while not view.window.at_live_end or view.fetching is not None:
            await asyncio.sleep(0.005)
        assert agent.stdin is not None
        agent.stdin.write(f"flood 10000 {flood_s}\n")
        agent.stdin.flush()
        await pilot.pause(0.5)
        latencies, rate = await _key_latencies(app, view, flood_s - 1)
        out["key_p50_ms"] = statistics.median(latencies)
        out["key_p99_ms"] = statistics.quantiles(latencies, n=100)[98]
        out["keys_pressed"] = float(len(latencies))
        out["live_lines_per_s"] = rate
        out["window_lines"] = float(len(view.window))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


async def _key_latencies(app, view, seconds: float) -> tuple[list[float], float]:  # type: ignore[no-untyped-def]
    """Milliseconds from a key reaching the app to the repaint after its action.

    (Pilot.press waits for the whole process to go idle, which never happens while
    10,000 lines/s stream in, so it would measure the flood, not the key.)"""
    from textual import events

    done = asyncio.Event()
    original = type(view).action_scroll_by

    def timed_scroll(self, delta: int) -> None:  # type: ignore[no-untyped-def]
        original(self, delta)
        self.call_after_refresh(done.set)

    type(view).action_scroll_by = timed_scroll  # type: ignore[method-assign]
    received = [0]
    add_live = view.add_live

    def counting(raw):  # type: ignore[no-untyped-def]
        received[0] += len(raw)
        add_live(raw)

    view.add_live = counting  # type: ignore[method-assign]
    latencies: list[float] = []
    start = time.monotonic()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for key in ("k", "k", "j", "j", "pageup", "pagedown"):
                done.clear()
                t = time.perf_counter()
                app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
                await asyncio.wait_for(done.wait(), timeout=10)
                latencies.append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(0.03)
    finally:
        type(view).action_scroll_by = original  # type: ignore[method-assign]
        view.add_live = add_live  # type: ignore[method-assign]
    return latencies, received[0] / (time.monotonic() - start)


def startup(url: str, token: str, rounds: int = 3) -> tuple[float, float]:
    """Median wall time of `seamless-tui` to the first painted dashboard, and of
    `python -c 'import textual'`, each in a fresh interpreter."""
    config = Path(tempfile.mkdtemp(prefix="seamless-bench-tui-cfg-")) / "tui.toml"
    env = {**os.environ, "TERM": "xterm-256color", "SEAMLESS_TUI_CONFIG": str(config)}

    probe = [str(Path(__file__).parent / "_tui_startup_probe.py"), "--agent", url,
             "--token", token]

    def timed(args: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, env=env,
                       stdout=subprocess.DEVNULL, cwd=REPO_ROOT)
        return time.perf_counter() - t

    tui = statistics.median(timed(probe) for _ in range(rounds))
    base = statistics.median(timed(["-c", "import textual"]) for _ in range(rounds))
    return tui, base


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=LINES)
    p.add_argument("--flood-seconds", type=float, default=6.0)
    p.add_argument("--serve", type=Path, help=hidden_option())
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.lines)
        return
    with tempfile.TemporaryDirectory(prefix="seamless-bench-tui-") as tmp:
        t = time.perf_counter()
        agent, ready = spawn_server(__file__, tmp, args.lines)
        seed_s = time.perf_counter() - t
        url, token, run_id = ready[0], ready[1], int(ready[2])
        try:
            figures = asyncio.run(measure_tui(url, token, run_id, agent, args.flood_seconds))
            tui_s, textual_s = startup(url, token)
        finally:
            assert agent.stdin is not None
            agent.stdin.close()
            agent.wait(timeout=60)
    figures.update({"startup_s": tui_s, "import_textual_s": textual_s,
                    "startup_ratio": tui_s / textual_s, "log_lines": float(args.lines),
                    "seed_and_serve_s": seed_s})
    rows = [(k, v) for k, v in figures.items()]
    report(f"TUI log pane, {args.lines:,}-line stage log", rows, figures, args.json)


if __name__ == "__main__":
    main()
