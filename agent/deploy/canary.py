"""Canary analysis from the front's own figures: measure a window, judge it, say why.

Counts (requests, 5xx, connection and response failures) are differences of HAProxy's
`show stat` counters per server between the window's start and end: exact, whatever
the log drops. Response times come from HAProxy's per-request log (`%Ta`, the total
time HAProxy spent on the request), read back from the front container's output and
cut to the same window: p50/p95 are computed over those lines per colour (HAProxy's
own `rtime`/`ttime` are averages over the last 1,024 requests, not percentiles).

A window with too few canary requests, or no response times, is *inconclusive*: the
step holds and says so; it never promotes. A failing rule fails at once (fail fast),
a pass needs the whole bake time (pass slow).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.deploy.front import Front, ServerStat
from store.models import CanaryConfig, CanaryMeasurement

CHECK_INTERVAL_S = 0.5  # how often a bake looks for a failing rule


@dataclass
class Figures:
    """One colour's traffic in one window."""

    colour: str
    requests: int = 0
    errors: int = 0
    times_ms: list[int] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.times_ms:
            return None
        ordered = sorted(self.times_ms)
        return float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)])

    def line(self) -> str:
        p50, p95 = self.percentile(0.5), self.percentile(0.95)
        times = (f"p50 {p50:.0f} ms, p95 {p95:.0f} ms" if p95 is not None
                 else "no response times")
        return (f"{self.colour}: {self.requests} requests, {self.errors} errors"
                f" ({self.error_rate:.1%}), {times}")


@dataclass
class Verdict:
    verdict: str  # pass | fail | inconclusive
    rule: str  # which rule decided, with the numbers


def judge(canary: Figures, stable: Figures, cfg: CanaryConfig) -> Verdict:
    if canary.requests < cfg.min_requests:
        return Verdict("inconclusive", f"{canary.requests} canary requests"
                                       f" < min_requests {cfg.min_requests}")
    rate, stable_rate = canary.error_rate, stable.error_rate
    if rate > cfg.max_error_rate:
        return Verdict("fail", f"error rate {rate:.1%} > max_error_rate {cfg.max_error_rate:.1%}")
    stable_known = stable.requests >= cfg.min_requests
    if stable_known and rate - stable_rate > cfg.max_error_rate_increase:
        return Verdict("fail", f"error rate {rate:.1%} vs stable {stable_rate:.1%}:"
                               f" more than +{cfg.max_error_rate_increase:.1%}")
    p95, stable_p95 = canary.percentile(0.95), stable.percentile(0.95)
    if p95 is None:
        return Verdict("inconclusive", "no response times logged for the canary")
    if cfg.max_p95_ms is not None and p95 > cfg.max_p95_ms:
        return Verdict("fail", f"p95 {p95:.0f} ms > max_p95_ms {cfg.max_p95_ms:.0f}")
    if not stable_known or stable_p95 is None:
        return Verdict("inconclusive", f"{stable.requests} stable requests"
                                       f" < min_requests {cfg.min_requests}: nothing to compare")
    limit = stable_p95 * cfg.max_p95_ratio + cfg.p95_slack_ms
    if p95 > limit:
        return Verdict("fail", f"p95 {p95:.0f} ms > stable p95 {stable_p95:.0f} ms"
                               f" × {cfg.max_p95_ratio:g} + {cfg.p95_slack_ms:.0f} ms")
    return Verdict("pass", f"error rate {rate:.1%} (stable {stable_rate:.1%}), p95 {p95:.0f} ms"
                           f" ≤ {limit:.0f} ms")


def read_times(front: Front, since: float, until: float) -> dict[str, list[int]]:
    """Per colour, the `%Ta` of each request the front logged in [since, until)."""
    container = front.container()
    if container is None:
        return {}
    raw = container.logs(stdout=True, stderr=False, since=int(since) - 1,
                         until=int(until) + 2).decode(errors="replace")
    times: dict[str, list[int]] = {}
    for line in raw.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        try:
            ts, colour, total = float(parts[0]), parts[1], int(parts[3])
        except ValueError:
            continue  # a notice, not a request line
        if since <= ts < until and total >= 0:
            times.setdefault(colour, []).append(total)
    return times


def window_figures(front: Front, before: dict[str, ServerStat], after: dict[str, ServerStat],
                   since: float, until: float) -> dict[str, Figures]:
    times = read_times(front, since, until)
    out = {}
    for colour, end in after.items():
        start = before.get(colour)
        requests = end.requests - (start.requests if start else 0)
        errors = end.errors - (start.errors if start else 0)
        out[colour] = Figures(colour, max(requests, 0), max(errors, 0), times.get(colour, []))
    return out


class CanaryControl:
    """Promote-now and abort from the API, seen by the running canary at once."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.action: str | None = None  # "promote" | "abort"
        self.actor: str | None = None

    def request(self, action: str, actor: str) -> None:
        self.action, self.actor = action, actor
        self.wake.set()


class CanaryFailed(RuntimeError):
    """The canary was stopped; the message carries the measured reason."""


Record = Callable[[CanaryMeasurement], None]
Say = Callable[[str], None]


def run_steps(front: Front, stable: str, canary: str, cfg: CanaryConfig, *,
              control: CanaryControl, record: Record, say: Say,
              probe: Callable[[], Any] | None = None) -> None:
    """Walk the steps below 100 %; returns when the canary may take all traffic.

    Raises CanaryFailed (a failing rule, an abort, or inconclusive past hold_timeout_s);
    the caller then sets the canary's weight to 0 and drains it."""
    steps = [s for s in cfg.steps if s < 100]
    for number, weight in enumerate(steps, start=1):
        front.apply({stable: 100 - weight, canary: weight})
        say(f"canary step {number}/{len(cfg.steps)}: {weight}% of requests on {canary},"
            f" baking {cfg.bake_s:g} s")
        if _step(front, stable, canary, cfg, number, weight, control, record, say, probe):
            return  # promoted by hand


def _step(front: Front, stable: str, canary: str, cfg: CanaryConfig, number: int,
          weight: int, control: CanaryControl, record: Record, say: Say,
          probe: Callable[[], Any] | None) -> bool:
    """One step: True when promoted by hand, False when it passed. An inconclusive
    window holds the step and keeps measuring from the step's start (a growing window)."""
    since, before = time.time(), front.stats()
    started = time.monotonic()
    deadline = started + cfg.bake_s
    next_probe = started
    while True:
        now_mono = time.monotonic()
        if probe is not None and cfg.probe_rps and now_mono >= next_probe:
            probe()
            next_probe = now_mono + 1 / cfg.probe_rps
        wait = min(CHECK_INTERVAL_S, max(0.0, deadline - now_mono))
        if probe is not None and cfg.probe_rps:
            wait = min(wait, max(0.0, next_probe - now_mono))
        if control.wake.wait(wait):
            if control.action == "abort":
                raise CanaryFailed(f"aborted by {control.actor} at step {number} ({weight}%)")
            say(f"promoted by {control.actor} at step {number} ({weight}%): skipping analysis")
            return True
        until = time.time()
        baked = time.monotonic() >= deadline
        figures = window_figures(front, before, front.stats(), since, until)
        c, s = figures.get(canary, Figures(canary)), figures.get(stable, Figures(stable))
        verdict = judge(c, s, cfg)
        if verdict.verdict != "fail" and not baked:
            continue  # fail fast, pass (or hold) only once the bake is over
        _store(record, number, weight, since, until, {"canary": c, "stable": s}, verdict)
        say(f"step {number} ({weight}%) over {until - since:.1f} s: {c.line()}; {s.line()}")
        say(f"verdict: {verdict.verdict} — {verdict.rule}")
        if verdict.verdict == "fail":
            raise CanaryFailed(f"step {number} ({weight}%) failed: {verdict.rule}"
                               f" ({c.line()}; {s.line()})")
        if verdict.verdict == "pass":
            return False
        held = time.monotonic() - started
        if held >= cfg.hold_timeout_s:
            raise CanaryFailed(f"step {number} ({weight}%) inconclusive for {held:.0f} s"
                               f" (hold_timeout_s {cfg.hold_timeout_s:g}): {verdict.rule};"
                               " not promoted")
        say(f"step {number} holds at {weight}%: inconclusive, measuring on")
        deadline = time.monotonic() + cfg.bake_s


def _store(record: Record, number: int, weight: int, since: float, until: float,
           figures: dict[str, Figures], verdict: Verdict) -> None:
    for role, f in figures.items():
        record(CanaryMeasurement(
            step=number, weight=weight, role=role, colour=f.colour,
            window_start=datetime.fromtimestamp(since, UTC),
            window_end=datetime.fromtimestamp(until, UTC),
            requests=f.requests, errors=f.errors, p50_ms=f.percentile(0.5),
            p95_ms=f.percentile(0.95), verdict=verdict.verdict, rule=verdict.rule))
