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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from agent.deploy.front import Front
from agent.deploy.front_api import ServerStat
from store.models import CanaryConfig, CanaryMeasurement

CHECK_INTERVAL_S = 0.5  # how often a bake looks for a failing rule


def percentile(values: list[int], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)])


@dataclass
class Figures:
    """One colour's traffic in one window: counts, and response-time percentiles over
    `samples` timed requests (None when no time was reported)."""

    colour: str
    requests: int = 0
    errors: int = 0
    samples: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None

    @classmethod
    def from_times(cls, colour: str, requests: int, errors: int,
                   times_ms: list[int]) -> Figures:
        return cls(colour, requests, errors, len(times_ms), percentile(times_ms, 0.5),
                   percentile(times_ms, 0.95))

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def line(self) -> str:
        times = (f"p50 {self.p50_ms:.0f} ms, p95 {self.p95_ms:.0f} ms over {self.samples}"
                 if self.p95_ms is not None and self.p50_ms is not None
                 else "no response times")
        return (f"{self.colour}: {self.requests} requests, {self.errors} errors"
                f" ({self.error_rate:.1%}), {times}")


@dataclass
class Verdict:
    verdict: str  # pass | fail | inconclusive
    rule: str  # which rule decided, with the numbers


def judge(canary: Figures, stable: Figures, cfg: CanaryConfig, *,
          times_required: bool = True) -> Verdict:
    """Error rules first, then latency rules. A latency verdict needs `min_latency_samples`
    timed requests on each side: a p95 over a handful of requests is the slowest of them,
    and one request stalled by a busy host must not fail a good build (it keeps measuring).
    `times_required=False`: a source that may report no times at all (CloudWatch without
    percentiles) passes on the error rules, saying so."""
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
    p95, stable_p95 = canary.p95_ms, stable.p95_ms
    if p95 is None:
        if not times_required:
            return Verdict("pass", f"error rate {rate:.1%} (stable {stable_rate:.1%}); no p95"
                                   " reported: latency left to the alarms")
        return Verdict("inconclusive", "no response times logged for the canary")
    if canary.samples < cfg.min_latency_samples:
        return Verdict("inconclusive", f"{canary.samples} canary response times"
                                       f" < min_latency_samples {cfg.min_latency_samples}")
    if cfg.max_p95_ms is not None and p95 > cfg.max_p95_ms:
        return Verdict("fail", f"p95 {p95:.0f} ms > max_p95_ms {cfg.max_p95_ms:.0f}")
    if not stable_known or stable_p95 is None or stable.samples < cfg.min_latency_samples:
        return Verdict("inconclusive", f"{stable.requests} stable requests, {stable.samples}"
                                       f" timed (min_requests {cfg.min_requests},"
                                       f" min_latency_samples {cfg.min_latency_samples}):"
                                       " nothing to compare")
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
        out[colour] = Figures.from_times(colour, max(requests, 0), max(errors, 0),
                                         times.get(colour, []))
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


class TrafficSplit(Protocol):
    """What splits a service's traffic between two colours and measures each: the HAProxy
    front on a Docker host (FrontSplit), an AWS load balancer's weighted target groups
    (agent/deploy/elb.py)."""

    check_interval_s: float  # how often a bake looks for a failing rule

    def apply(self, weights: dict[str, int]) -> None: ...

    def start_window(self) -> Any:
        """Whatever `measure` needs from a window's start (counters)."""

    def measure(self, start: Any, since: float, until: float) -> dict[str, Figures]: ...

    def verdict(self, canary: Figures, stable: Figures, cfg: CanaryConfig) -> Verdict: ...


class FrontSplit:
    """The HAProxy front: counters from `show stat`, times from its request log."""

    check_interval_s = CHECK_INTERVAL_S

    def __init__(self, front: Front) -> None:
        self.front = front

    def apply(self, weights: dict[str, int]) -> None:
        self.front.apply(weights)

    def start_window(self) -> dict[str, ServerStat]:
        return self.front.stats()

    def measure(self, start: dict[str, ServerStat], since: float,
                until: float) -> dict[str, Figures]:
        return window_figures(self.front, start, self.front.stats(), since, until)

    def verdict(self, canary: Figures, stable: Figures, cfg: CanaryConfig) -> Verdict:
        return judge(canary, stable, cfg)


def run_steps(split: TrafficSplit, stable: str, canary: str, cfg: CanaryConfig, *,
              control: CanaryControl, record: Record, say: Say,
              probe: Callable[[], Any] | None = None) -> None:
    """Walk the steps below 100 %; returns when the canary may take all traffic.

    Raises CanaryFailed (a failing rule, an abort, or inconclusive past hold_timeout_s);
    the caller then sets the canary's weight to 0 and drains it."""
    steps = [s for s in cfg.steps if s < 100]
    for number, weight in enumerate(steps, start=1):
        split.apply({stable: 100 - weight, canary: weight})
        say(f"canary step {number}/{len(cfg.steps)}: {weight}% of requests on {canary},"
            f" baking {cfg.bake_s:g} s")
        if _step(split, stable, canary, cfg, number, weight, control, record, say, probe):
            return  # promoted by hand


def _step(split: TrafficSplit, stable: str, canary: str, cfg: CanaryConfig, number: int,
          weight: int, control: CanaryControl, record: Record, say: Say,
          probe: Callable[[], Any] | None) -> bool:
    """One step: True when promoted by hand, False when it passed. An inconclusive
    window holds the step and keeps measuring from the step's start (a growing window)."""
    since, before = time.time(), split.start_window()
    started = time.monotonic()
    deadline = started + cfg.bake_s
    next_probe = started
    while True:
        now_mono = time.monotonic()
        if probe is not None and cfg.probe_rps and now_mono >= next_probe:
            probe()
            next_probe = now_mono + 1 / cfg.probe_rps
        wait = min(split.check_interval_s, max(0.0, deadline - now_mono))
        if probe is not None and cfg.probe_rps:
            wait = min(wait, max(0.0, next_probe - now_mono))
        if control.wake.wait(wait):
            if control.action == "abort":
                raise CanaryFailed(f"aborted by {control.actor} at step {number} ({weight}%)")
            say(f"promoted by {control.actor} at step {number} ({weight}%): skipping analysis")
            return True
        until = time.time()
        baked = time.monotonic() >= deadline
        figures = split.measure(before, since, until)
        c, s = figures.get(canary, Figures(canary)), figures.get(stable, Figures(stable))
        verdict = split.verdict(c, s, cfg)
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
            requests=f.requests, errors=f.errors, p50_ms=f.p50_ms, p95_ms=f.p95_ms,
            verdict=verdict.verdict, rule=verdict.rule))
