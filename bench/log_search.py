"""Log search (`GET /runs/{id}/logs/search`, store.search_log) on one stage log of 1,000,000
lines: how long the first page of matches takes (with the match counter), the next page,
and a term that matches nothing. The baseline, measured in the same run, is one plain
count of the stage's lines (the floor of any scan of the log).

Terms of 3+ characters read the trigram index (store.log_index); a shorter term scans
the stage (`short`: shown, not in the worst figure, which is the goal's).

Goal (issue #14): the first page of a search in < ~300 ms.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from _common import parser, report

LINES = 1_000_000
TERMS = {  # what a user types, and how often it is there (see tests.tui.seed.add_log)
    "rare": "ERROR",  # 20 lines
    "common": "module 42",  # every 97th line: 10,309
    "none": "no such text",
    "short": "42",  # under a trigram: the scan (every 97th line and a few more)
}


def timed(call, rounds: int = 3) -> float:  # type: ignore[no-untyped-def]
    """The median of `rounds` calls, in seconds."""
    took = []
    for _ in range(rounds):
        t = time.perf_counter()
        call()
        took.append(time.perf_counter() - t)
    return statistics.median(took)


def main() -> None:
    from store.store import Store
    from tests.tui.seed import add_log, seed

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=LINES)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="seamless-bench-search-") as tmp:
        store = Store(Path(tmp) / "seamless.db")
        run_id = seed(store).runs["checkout"]
        t = time.perf_counter()
        add_log(store, run_id, "Build", args.lines)
        seed_s = time.perf_counter() - t
        baseline = timed(lambda: store._count("run_id=? AND stage=?", (run_id, "Build")))
        figures: dict[str, object] = {"lines": args.lines, "seed_s": seed_s,
                                      "count_lines_ms": baseline * 1000}
        for name, term in TERMS.items():
            first = store.search_log(run_id, "Build", term)
            figures[f"{name}_matches"] = first.total
            figures[f"{name}_first_page_ms"] = timed(
                lambda term=term: store.search_log(run_id, "Build", term)) * 1000
            if first.next_cursor:
                cursor = first.next_cursor
                figures[f"{name}_next_page_ms"] = timed(lambda term=term, cursor=cursor:
                    store.search_log(run_id, "Build", term, after=cursor,
                                     with_total=False)) * 1000
        figures["worst_first_page_ms"] = max(  # of the terms the index serves
            float(figures[f"{n}_first_page_ms"]) for n in TERMS  # type: ignore[arg-type]
            if len(TERMS[n]) >= 3)
        figures["worst_over_count"] = float(figures["worst_first_page_ms"]) / max(
            baseline * 1000, 1e-6)  # type: ignore[arg-type]
        store.close()
    report(f"Log search over one stage log of {args.lines:,} lines",
           list(figures.items()), figures, args.json)


if __name__ == "__main__":
    main()
