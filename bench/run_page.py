"""Run page in headless Chromium: a 1,000,000-line stage log served by a real agent process.

Figures (Debian's chromium driven by Playwright, never a downloaded browser):
- first_paint_ms: navigation to the painted tail (the last line's row in the DOM and two
  animation frames after it), against the same page of a 1,000-line log (baseline);
- line_latency_p99_ms: from a line written to the stage's log (the writer batches, stores,
  then publishes) to its row painted in the tab, while the stage prints 1,000 lines/s;
- tab_mb: the tab's own memory right after the flood: the USS of its renderer process
  (the one that grows when the page allocates 64 MB, never "the largest renderer": the
  browser's own WebUI renderer is larger than a small tab), pages only it holds;
  `tab_rss_mb` adds the shared libraries every tab maps. Beside it the DOM nodes and JS
  heap (CDP Performance.getMetrics), the peak during the flood (`tab_peak_mb`, sampled
  twice a second: Blink collects garbage in a sawtooth, so one sample lands anywhere on
  it), and the same after a forced garbage collection (`tab_after_gc_mb`: not the figure,
  what the rest is made of), against the small log's tab.
Goals (#23): first paint < 1,000 ms, p99 < 500 ms, tab < 150 MB.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import flood, hidden_option, parser, report, spawn_server

LINES = 1_000_000
SMALL = 1_000
STAGE = "Unit Test"
CHROMIUM = "/usr/bin/chromium"


# -- the agent process ------------------------------------------------------------------------
def serve(data_dir: Path, lines: int) -> None:
    """Serve, seed two running runs (a big and a small log), print `READY url big small`,
    then obey `flood <run> <rate> <seconds>`."""
    from agent.run_links import RunLinks
    from store.models import RunKind, RunStatus, StageStatus, Trigger
    from store.store import Store
    from tests.helpers import free_port
    from tests.tui.agent_server import AgentServer
    from tests.tui.seed import add_log, seed

    store = Store(data_dir / "seamless.db")
    seeded = seed(store)
    store.close()
    server = AgentServer(data_dir, free_port()).start()
    store = server.agent.store
    service = store.get_service("checkout")
    runs = []
    for count in (lines, SMALL):
        # Made after the start: restart recovery would end a run left running before it.
        run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full,
                               sha="b" * 40, branch="main", message="bench")
        store.set_run_status(run.id, RunStatus.running)
        store.set_stage_status(run.id, STAGE, StageStatus.in_progress)
        add_log(store, run.id, STAGE, count, batch=50_000, text="bench line {i}: module {m} ok")
        runs.append(run.id)
    links: RunLinks = server.agent.links
    print(f"READY {links.url(runs[0])} {links.url(runs[1])} {seeded.tokens['admin']}",
          flush=True)
    for command in sys.stdin:
        parts = command.split()
        if parts and parts[0] == "flood":
            threading.Thread(target=_flood, args=(server, int(parts[1]), float(parts[2]),
                                                  float(parts[3])), daemon=True).start()
    server.stop()


def _flood(server: Any, run_id: int, rate: float, seconds: float) -> None:
    """`rate` lines a second, each carrying the wall-clock time it was written."""
    flood(server.agent.logs.stage_log(run_id, STAGE, []), rate, seconds,
          lambda n: f"\x1b[36mlive\x1b[0m line {n} t={time.time():.6f}", tick_s=0.005)


# -- the browser side --------------------------------------------------------------------------
_WATCH_ROWS = """() => {
  window.__lat = [];
  const lines = document.getElementById('lines');
  new MutationObserver(records => {
    const stamps = [];
    for (const r of records) for (const n of r.addedNodes) {
      // a row, or a chunk of rows: every line's stamp
      for (const m of (n.textContent || "").matchAll(/t=(\\d+\\.\\d+)/g)) {
        stamps.push(parseFloat(m[1]));
      }
    }
    if (!stamps.length) return;
    requestAnimationFrame(() => setTimeout(() => {
      const painted = Date.now() / 1000;  // the wall clock the agent stamped with
      for (const t of stamps) window.__lat.push((painted - t) * 1000);
    }, 0));
  }).observe(lines, {childList: true});
}"""
_TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def _renderers() -> dict[int, tuple[float, float]]:
    """(RSS, USS) in MB of every renderer process of the browser. USS counts only the
    pages that process alone holds; RSS adds the shared libraries every tab maps."""
    import psutil

    out = {}
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "--type=renderer" in proc.cmdline():
                info = proc.memory_full_info()
                out[proc.pid] = (info.rss / 1e6, info.uss / 1e6)
        except psutil.Error:
            continue
    return out


def _tab_pid(page: Any) -> int:
    """The renderer process of `page`'s tab: the one that grows by 64 MB while the page
    holds a 64 MB array (called after the figures are read). Not "the largest renderer":
    the browser's own UI runs a WebUI renderer of ~45 MB, larger than a small page's tab,
    and a closing tab's renderer may still be there."""
    before = _renderers()
    page.evaluate("() => { window.__mark = new Uint8Array(64e6).fill(1); }")
    after = _renderers()
    page.evaluate("() => { window.__mark = null; }")
    return max(after, key=lambda pid: after[pid][1] - before.get(pid, (0.0, 0.0))[1])


def _dom(page: Any) -> tuple[float, float]:
    """(DOM nodes, JS heap MB) by CDP Performance.getMetrics; nodes removed from the page
    count until a garbage collection frees them."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return float(metrics.get("Nodes", 0)), metrics.get("JSHeapUsedSize", 0) / 1e6


def _open(browser: Any, url: str) -> tuple[Any, float]:
    """A fresh tab on `url`: (page, ms from navigation to the painted tail)."""
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector("#lines .l:last-of-type", state="attached", timeout=60_000)
    page.evaluate(_TWO_FRAMES)
    return page, (time.perf_counter() - start) * 1000


def measure(big: str, small: str, agent: subprocess.Popen[str], flood_s: float,
            rounds: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            paints, base = [], []
            _open(browser, small)[0].context.close()  # warm-up: the browser's first tab
            for _ in range(rounds):
                page, ms = _open(browser, small)
                base.append(ms)
                page.context.close()
                page, ms = _open(browser, big)
                paints.append(ms)
                page.context.close()
            out["first_paint_ms"] = statistics.median(paints)
            out["first_paint_small_log_ms"] = statistics.median(base)
            out["first_paint_ratio"] = out["first_paint_ms"] / out["first_paint_small_log_ms"]

            small_page, _ = _open(browser, small)
            small = _renderers()
            out["tab_small_log_mb"] = small[_tab_pid(small_page)][1]
            small_page.context.close()
            page, _ = _open(browser, big)
            page.evaluate(_WATCH_ROWS)
            run_id = big.split("/runs/")[1].split("?")[0]
            assert agent.stdin is not None
            agent.stdin.write(f"flood {run_id} 1000 {flood_s}\n")
            agent.stdin.flush()
            samples = []  # every renderer's memory twice a second: the tab's peak
            deadline = time.monotonic() + flood_s + 2
            while time.monotonic() < deadline:
                samples.append(_renderers())
                time.sleep(0.5)
            latencies = page.evaluate("() => window.__lat")
            if len(latencies) < 100:
                raise SystemExit(f"only {len(latencies)} live lines reached the page")
            out["line_latency_p50_ms"] = statistics.median(latencies)
            out["line_latency_p99_ms"] = statistics.quantiles(latencies, n=100)[98]
            out["live_lines_painted"] = float(len(latencies))
            out["dom_nodes"], out["js_heap_mb"] = _dom(page)
            flooded = _renderers()
            # Beside it, not instead: what a full garbage collection leaves (the rest is
            # rows and layouts the page let go of, not yet collected).
            page.context.new_cdp_session(page).send("HeapProfiler.collectGarbage")
            out["dom_nodes_after_gc"], _ = _dom(page)
            collected = _renderers()
            tab = _tab_pid(page)
            out["tab_rss_mb"], out["tab_mb"] = flooded[tab]
            out["tab_after_gc_mb"] = collected[tab][1]
            out["tab_peak_mb"] = max(m[tab][1] for m in [*samples, flooded] if tab in m)
            out["tab_ratio"] = out["tab_mb"] / out["tab_small_log_mb"]
        finally:
            browser.close()
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=LINES)
    p.add_argument("--flood-seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--serve", type=Path, help=hidden_option())
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.lines)
        return
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"{CHROMIUM} is missing: make test-tools (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="seamless-bench-page-") as tmp:
        t = time.perf_counter()
        agent, ready = spawn_server(__file__, tmp, args.lines)
        seed_s = time.perf_counter() - t
        try:
            figures = measure(ready[0], ready[1], agent, args.flood_seconds, args.rounds)
        finally:
            assert agent.stdin is not None
            agent.stdin.close()
            agent.wait(timeout=60)
    figures.update({"log_lines": float(args.lines), "seed_and_serve_s": seed_s,
                    "load_avg_1m": os.getloadavg()[0]})
    report(f"Run page in Chromium, {args.lines:,}-line stage log", list(figures.items()),
           figures, args.json)


if __name__ == "__main__":
    main()
