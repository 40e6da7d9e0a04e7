"""Test results: a 20,000-case JUnit report (~30 MB) ingested after a test stage — found in
the checkout, parsed, masked, stored, failures' log lines looked up, the stage decided —
against parsing the same file with junitparser alone, in the same run (goal: ratio ≤ 1.5;
also as CPU seconds, steadier on a busy machine);
then a test's 100-run history with 1,000 runs stored (goal: p99 < 20 ms).

    .venv/bin/python bench/test_results.py [--json] [--cases 20000] [--runs 1000]
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parser, report  # noqa: E402
from junitparser import JUnitXml  # noqa: E402

from agent.engine.test_stage import TestResults, TestStageRun  # noqa: E402
from agent.logs.secretbook import SecretBook  # noqa: E402
from agent.stage_result import StageResult  # noqa: E402
from store.models import (  # noqa: E402
    STAGE_UNIT_TEST,
    PipelineConfig,
    RunKind,
    ServiceConfig,
    TestOutcome,
    Trigger,
)
from store.store import Store  # noqa: E402
from store.tests import Attempt, CaseRecord  # noqa: E402
from tests.harness.fakes import ListLog  # noqa: E402
from tests.junit_fixtures import junit_xml  # noqa: E402

OUTPUT = "captured output line of a passing test, as pytest -rA keeps it\n" * 18


def write_report(path: Path, cases: int) -> None:
    """`cases` test cases over 200 classes, 1% failing, each with ~1.3 KB of output."""
    rows = [(f"tests.test_module_{i % 200}.TestPart", f"test_case_{i}",
             "failed" if i % 100 == 7 else "passed") for i in range(cases)]
    xml = junit_xml(rows, trace="Traceback:\n" + "  frame\n" * 60 + "AssertionError")
    out = f"<system-out>{OUTPUT}</system-out>"
    # The same output on every case, as -o junit_logging=all writes it.
    path.write_text(xml.replace('time="0.012"/>', f'time="0.012">{out}</testcase>'))


def parse_alone(path: Path, collector: bool = True) -> float:
    """junitparser's own work: the file parsed, every case's name, class, time, result.
    With `collector` False the cycle collector is paused, as the agent's ingest pauses it:
    the baseline with the same advantage, so the ratio is not flattered by it."""
    if not collector:
        gc.disable()
    try:
        return _parse_alone(path, "alone" if collector else "alone_no_gc")
    finally:
        gc.enable()


def _parse_alone(path: Path, key: str) -> float:
    started, cpu = time.perf_counter(), time.process_time()
    count = 0
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            _ = (case.name, case.classname, case.time, case.result)
            count += 1
    assert count
    CPU_S[key].append(time.process_time() - cpu)
    return time.perf_counter() - started


def ingest(store: Store, service_id: int, run_id: int, workspace: Path, source: Path,
           attempt_stage: str) -> float:
    """One test stage's collection after its command: the command itself (copying the
    report into the checkout) is not counted."""
    command_s = 0.0

    command_cpu_s = 0.0

    def run_once(command: str | None) -> StageResult:
        nonlocal command_s, command_cpu_s
        started, cpu = time.perf_counter(), time.process_time()
        shutil.copyfile(source, workspace / "junit.xml")
        command_s += time.perf_counter() - started
        command_cpu_s += time.process_time() - cpu
        return StageResult(exit_code=1)

    record = store.record_tests
    recording = 0.0

    def timed_record(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal recording
        started = time.perf_counter()
        try:
            return record(*args, **kwargs)
        finally:
            recording += time.perf_counter() - started

    store.record_tests = timed_record  # type: ignore[method-assign]
    where = TestStageRun(run_id=run_id, service_id=service_id, stage=attempt_stage,
                         sha="a" * 40, workspace=workspace, reports_dir=workspace,
                         paths=["**"], config=store.get_service_by_id(service_id).tests)
    started, cpu = time.perf_counter(), time.process_time()
    result = TestResults(store).run(where, ListLog(), run_once, lambda: False)
    total = time.perf_counter() - started
    CPU_S["ingest"].append(time.process_time() - cpu - command_cpu_s)
    store.record_tests = record  # type: ignore[method-assign]
    assert result.error and "failed test(s)" in result.error, result
    STORE_S.append(recording)
    return total - command_s


STORE_S: list[float] = []  # of each ingest: the part spent storing the cases
# CPU seconds of each round (this process's): steadier than wall time on a busy machine.
CPU_S: dict[str, list[float]] = {"alone": [], "alone_no_gc": [], "ingest": []}


def history_p99(store: Store, service_id: int, runs: int, cases: int, queries: int
                ) -> tuple[float, float]:
    """`runs` runs of `cases` tests each stored, then a test's 100-run history `queries`
    times: (p50, p99) in ms."""
    service = store.get_service_by_id(service_id)
    for n in range(runs):
        run = store.create_run(service_id, trigger=Trigger.push, kind=RunKind.full,
                               sha=f"{n:040x}", branch="main")
        outcome = TestOutcome.failed if n % 17 == 0 else TestOutcome.passed
        store.record_tests(Attempt(run.id, STAGE_UNIT_TEST, 1, service.id, f"{n:040x}", 1.0),
                           [CaseRecord("tests.test_hist", f"test_{i}",
                                       outcome if i == 0 else TestOutcome.passed, 0.01,
                                       "boom" if outcome.failing and i == 0 else None)
                            for i in range(cases)])
    test_id = store.find_test(service_id, "tests.test_hist::test_0")
    timings = []
    for _ in range(queries):
        started = time.perf_counter()
        history = store.test_history(test_id, limit=100)
        timings.append((time.perf_counter() - started) * 1000)
        assert len(history.entries) == 100
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.99) - 1]


def main() -> None:
    args_parser = parser(__doc__ or "")
    args_parser.add_argument("--cases", type=int, default=20_000)
    args_parser.add_argument("--runs", type=int, default=1_000)
    args_parser.add_argument("--rounds", type=int, default=3)
    args = args_parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seamless-bench-tests-") as tmp:
        root = Path(tmp)
        source = root / "report.xml"
        write_report(source, args.cases)
        size_mb = source.stat().st_size / 1048576
        store = Store(root / "data" / "seamless.db")
        store.create_pipeline(PipelineConfig(name="bench"))
        service = store.create_service(ServiceConfig(
            name="shop", pipeline="bench", repo_url="https://example.invalid/shop.git",
            unit_test_command="pytest", secrets={"API_TOKEN": "s3cr3t-value-for-masking"}))
        store.redact = SecretBook(store).mask  # as the agent sets it: every stored text masked
        workspace = root / "checkout"
        workspace.mkdir()

        alone, alone_no_gc, ingested = [], [], []
        for _ in range(args.rounds):  # interleaved: both see the same machine load
            alone.append(parse_alone(source))
            alone_no_gc.append(parse_alone(source, collector=False))
            run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full,
                                   sha="a" * 40, branch="main")
            ingested.append(ingest(store, service.id, run.id, workspace, source,
                                   STAGE_UNIT_TEST))
            os.unlink(workspace / "junit.xml")
        alone_s, ingest_s = min(alone), min(ingested)
        store_s = STORE_S[ingested.index(ingest_s)]

        history_store = Store(root / "history" / "seamless.db")
        history_store.create_pipeline(PipelineConfig(name="bench"))
        hist_service = history_store.create_service(ServiceConfig(
            name="hist", pipeline="bench", repo_url="https://example.invalid/hist.git"))
        p50, p99 = history_p99(history_store, hist_service.id, args.runs, 50, 200)
        store.close()
        history_store.close()

    figures = {"cases": args.cases, "report_mb": round(size_mb, 1),
               "ingest_s": round(ingest_s, 3), "junitparser_s": round(alone_s, 3),
               "ratio": round(ingest_s / alone_s, 2), "store_s": round(store_s, 3),
               "junitparser_no_gc_s": round(min(alone_no_gc), 3),
               "ratio_same_gc": round(ingest_s / min(alone_no_gc), 2),
               "ingest_cpu_s": round(min(CPU_S["ingest"]), 3),
               "junitparser_cpu_s": round(min(CPU_S["alone"]), 3),
               "ratio_cpu": round(min(CPU_S["ingest"]) / min(CPU_S["alone"]), 2),
               "history_runs": args.runs,
               "history_p50_ms": round(p50, 2), "history_p99_ms": round(p99, 2),
               "load_avg_1m": round(os.getloadavg()[0], 1)}
    report(f"Test results: {args.cases:,} cases ({size_mb:.0f} MB), history over "
           f"{args.runs:,} runs", [
               ("ingest after the stage (s, best of rounds)", ingest_s),
               ("  of which storing the cases (s)", store_s),
               ("junitparser alone, same file (s)", alone_s),
               ("ratio (goal <= 1.5)", ingest_s / alone_s),
               ("junitparser alone, collector paused as in ingest (s)", min(alone_no_gc)),
               ("ratio against that (s / s)", ingest_s / min(alone_no_gc)),
               ("ratio of CPU seconds (best of rounds each)",
                min(CPU_S["ingest"]) / min(CPU_S["alone"])),
               ("history of 100 runs, p50 (ms)", p50),
               ("history of 100 runs, p99 (ms, goal < 20)", p99),
               ("load average (1 min)", os.getloadavg()[0]),
           ], figures, args.json)


if __name__ == "__main__":
    main()
