"""Runs with stored logs for the run-page tests, made straight in the store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from store.db import now
from store.ids import new_ulid
from store.models import LogLine, LogStream, RunKind, RunStatus, StageStatus, Trigger
from tests.api.conftest import add_service

SECRET = "hunter2-s3cr3t-value"


def lines(run_id: int, stage: str, texts: list[str], stream: LogStream = LogStream.stdout
          ) -> list[LogLine]:
    start = now()
    return [LogLine(id=new_ulid((start + timedelta(microseconds=i)).timestamp()), run_id=run_id,
                    stage=stage, stream=stream, text=text, ts=start)
            for i, text in enumerate(texts)]


def failed_run(store: Any, *, log_lines: int = 1200, message: str = "Fix the cart") -> Any:
    """A finished run of service `shop-web` (on GitHub): Prepare and Code Quality passed,
    Unit Test failed with `log_lines` lines (an error at line 700), the rest skipped."""
    try:
        service = store.get_service("shop-web")
    except LookupError:
        service = add_service(store, "shop-web", secrets={"API_KEY": SECRET})
    run = store.create_run(service.id, trigger=Trigger.push, kind=RunKind.full,
                           sha="0123456789abcdef0123456789abcdef01234567", branch="main",
                           author="Ada Lovelace", message=message)
    store.set_run_status(run.id, RunStatus.running)
    for name in ("Prepare", "Code Quality"):
        store.set_stage_status(run.id, name, StageStatus.in_progress)
        store.set_stage_status(run.id, name, StageStatus.success, exit_code=0)
        store.insert_log_lines(lines(run.id, name, [f"{name} line {i}" for i in range(3)]))
    store.set_stage_status(run.id, "Unit Test", StageStatus.in_progress)
    texts = [f"test_{i} \x1b[32mok\x1b[0m" for i in range(1, log_lines + 1)]
    texts[699] = "test_700 \x1b[1;31mFAILED\x1b[0m AssertionError: total was 41"
    store.insert_log_lines(lines(run.id, "Unit Test", texts))
    store.set_stage_status(run.id, "Unit Test", StageStatus.failed, exit_code=1,
                           error="exit code 1")
    for name in ("Build", "Integration Test", "Deploy to Staging", "Deploy to Production"):
        store.set_stage_status(run.id, name, StageStatus.skipped,
                               error="an earlier stage failed")
    return store.set_run_status(run.id, RunStatus.failed, error="Unit Test failed")
