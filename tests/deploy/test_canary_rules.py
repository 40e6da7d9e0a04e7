"""The canary verdict rules on given figures (no engine): what decides, and when
there is too little to decide."""

from __future__ import annotations

from agent.deploy.canary import Figures, judge
from store.models import CanaryConfig

CFG = CanaryConfig(min_requests=8)  # min_latency_samples: the default (20)


def _figures(colour: str, times_ms: list[int], errors: int = 0) -> Figures:
    return Figures.from_times(colour, len(times_ms), errors, times_ms)


STABLE = _figures("blue", [10] * 200)


def test_one_stalled_request_among_few_is_no_latency_verdict_yet():
    # 7 good requests and one stalled for 1.6 s: p95 over 8 is the stalled one.
    canary = _figures("green", [10] * 7 + [1600])
    verdict = judge(canary, STABLE, CFG)
    assert verdict.verdict == "inconclusive"
    assert "8 canary response times < min_latency_samples 20" in verdict.rule


def test_one_stalled_request_among_enough_good_ones_passes():
    canary = _figures("green", [10] * 19 + [1600])
    verdict = judge(canary, STABLE, CFG)
    assert verdict.verdict == "pass", verdict.rule


def test_a_slow_build_fails_once_enough_requests_are_timed():
    few = _figures("green", [310] * 19)
    assert judge(few, STABLE, CFG).verdict == "inconclusive"
    enough = _figures("green", [310] * 20)
    verdict = judge(enough, STABLE, CFG)
    assert verdict.verdict == "fail" and "p95 310 ms > stable p95 10 ms" in verdict.rule


def test_errors_fail_fast_without_waiting_for_latency_samples():
    canary = _figures("green", [10] * 8, errors=3)
    verdict = judge(canary, STABLE, CFG)
    assert verdict.verdict == "fail" and "error rate" in verdict.rule


def test_a_stable_colour_with_too_few_timed_requests_gives_nothing_to_compare():
    canary = _figures("green", [10] * 30)
    stable = Figures("blue", requests=100, errors=0, samples=5, p50_ms=10, p95_ms=10)
    verdict = judge(canary, stable, CFG)
    assert verdict.verdict == "inconclusive" and "nothing to compare" in verdict.rule


def test_no_reported_times_pass_only_where_the_source_cannot_report_them():
    canary = Figures("green", requests=50, errors=0)
    assert judge(canary, STABLE, CFG).verdict == "inconclusive"
    relaxed = judge(canary, STABLE, CFG, times_required=False)
    assert relaxed.verdict == "pass" and "no p95 reported" in relaxed.rule
