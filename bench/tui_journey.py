"""The README journey through `seamless-tui` in tmux, 3 times, while a stage streams 10,000
lines/s: how fast each key is answered in a real terminal.

Each key's answer time runs from `tmux send-keys` to the captured screen showing what the
key should change (tests/tui_terminal/journey.py: the same journey as the tests). A key
unanswered within 10 s is a frozen TUI. The floor of the measurement, one screen capture
(`capture-pane` twice: text and colours), is measured in the same run, and the host's
1-minute load average at the start and the end is reported with the figures.

Goals (issue #14): frozen 0, key p99 < 150 ms, max < 1 s.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import parser, report

RATE = 10_000  # lines per second from the streaming stage


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def one_journey(tmp: Path, client, base_image: str, seconds: float):  # type: ignore[no-untyped-def]
    from tests.tui_terminal.journey import Journey, journey_agent, start_tui, walk
    from tests.tui_terminal.terminal import Frozen

    with journey_agent(tmp, client, base_image, rate=RATE, seconds=seconds) as agent:
        run = agent.start_run()
        term = start_tui(agent, tmp / "home", 200, 50)
        try:
            floor = [_timed(term.screen) for _ in range(20)]
            try:
                walk(Journey(term, agent, run["number"]), (80, 24))
                frozen = None
            except Frozen as exc:
                frozen = str(exc).splitlines()[0]
            return term.answers, frozen, floor
        finally:
            term.close()


def _timed(call) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def main() -> None:
    import docker

    from tests.helpers import ensure_base_image

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--stream-seconds", type=float, default=120.0,
                   help="how long each run's Unit Test streams")
    args = p.parse_args()
    client = docker.from_env()
    base_image = ensure_base_image(client)
    load_start = os.getloadavg()[0]  # key times on a shared host say little without it
    answers: list[tuple[str, float]] = []
    floor: list[float] = []
    frozen: list[str] = []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix=f"seamless-bench-journey-{n}-") as tmp:
            got, stuck, capture = one_journey(Path(tmp), client, base_image,
                                              args.stream_seconds)
        answers += got
        floor += capture
        if stuck:
            frozen.append(stuck)
            print(f"round {n + 1}: {stuck}")
    ms = [seconds * 1000 for _, seconds in answers]
    slowest = max(answers, key=lambda a: a[1]) if answers else ("-", 0.0)
    figures = {
        "steps": len(ms), "key_p50_ms": percentile(ms, 0.5), "key_p99_ms": percentile(ms, 0.99),
        "max_key_ms": max(ms, default=0.0), "slowest_step": slowest[0],
        "frozen": len(frozen), "capture_floor_ms": statistics.median(floor) * 1000,
        "stream_lines_per_s": RATE, "rounds": args.rounds,
        "load_1m_start": round(load_start, 2), "load_1m_end": round(os.getloadavg()[0], 2),
    }
    figures["p99_over_floor"] = figures["key_p99_ms"] / max(figures["capture_floor_ms"], 1e-6)
    slowest_steps = [(f"  slow: {name} (ms)", seconds * 1000)
                     for name, seconds in sorted(answers, key=lambda a: -a[1])[:8]]
    report(f"TUI journey in tmux x{args.rounds}, a stage streaming {RATE:,} lines/s",
           list(figures.items()) + slowest_steps, figures, args.json)


if __name__ == "__main__":
    main()
