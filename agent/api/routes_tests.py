"""Test results: a run's summary and failures, a test's history, quarantines, and a
service's figures. The run summary is `store.run_test_summary(run_id)`: any page (the
web run page too) calls that same function."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from agent.api.auth import Deployer, Viewer, audit
from agent.api.deps import agent_of
from agent.api.errors import ERROR_RESPONSES
from store.configs import NotFound
from store.models import (
    Quarantine,
    QuarantineRequest,
    RunTestSummary,
    ServiceTestFigures,
    TestHistory,
    test_key,
)

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)

TestName = Annotated[str, Query(min_length=1, max_length=2000,
                                description="classname::name, a unique name, or the test id")]


@router.get("/runs/{run_id}/tests", response_model=RunTestSummary, tags=["tests"])
def run_tests(request: Request, run_id: int, _: Viewer,
              limit: Annotated[int, Query(ge=1, le=2000)] = 200) -> RunTestSummary:
    """Per stage with JUnit reports: passed, failed, flaky, skipped, quarantined, attempts
    and the time of retried attempts; then the failing tests first (message, trace, the log
    line where each one's output starts, its recent history ✓✗), quarantined failures,
    flaky passes."""
    store = agent_of(request).store
    store.get_run(run_id)
    return store.run_test_summary(run_id, limit=limit)


@router.get("/tests/{test_id}/history", response_model=TestHistory, tags=["tests"])
def test_history_by_id(request: Request, test_id: int, _: Viewer,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> TestHistory:
    return _history(request, test_id, limit)


@router.get("/services/{service}/tests/history", response_model=TestHistory, tags=["tests"])
def test_history(request: Request, service: str, test: TestName, _: Viewer,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> TestHistory:
    """A test's outcomes across runs, newest first, with its flakiness score and
    quarantine."""
    store = agent_of(request).store
    return _history(request, store.find_test(store.get_service(service).id, test), limit)


def _history(request: Request, test_id: int, limit: int) -> TestHistory:
    return agent_of(request).store.test_history(test_id, limit=limit)


@router.get("/services/{service}/tests/figures", response_model=ServiceTestFigures,
            tags=["tests"])
def test_figures(request: Request, service: str, _: Viewer,
                 days: Annotated[int, Query(ge=1, le=365)] = 30) -> ServiceTestFigures:
    """Failure rate, flaky rate, slowest tests and time lost to retries over `days`."""
    store = agent_of(request).store
    found = store.get_service(service)
    return store.service_test_figures(found.id, found.name, days=days)


@router.get("/services/{service}/tests/quarantine", response_model=list[Quarantine],
            tags=["tests"])
def list_quarantine(request: Request, service: str, _: Viewer) -> list[Quarantine]:
    store = agent_of(request).store
    return store.list_quarantines(store.get_service(service).id)


@router.post("/services/{service}/tests/quarantine", response_model=Quarantine,
             status_code=201, tags=["tests"])
def quarantine(request: Request, service: str, body: QuarantineRequest,
               token: Deployer) -> Quarantine:
    """Quarantine (or renew) a test: its failures no longer fail a stage (they show and
    are counted) until it expires (default 14 days)."""
    store = agent_of(request).store
    test_id = store.find_test(store.get_service(service).id, body.test)
    held = store.quarantine_test(test_id, token.name, body.reason, days=body.days)
    audit(request, token, "test.quarantine", f"{service} {test_key(held.classname, held.name)}",
          f"until {held.expires_at:%Y-%m-%d}: {body.reason}")
    return held


@router.delete("/services/{service}/tests/quarantine", status_code=204, tags=["tests"])
def release(request: Request, service: str, test: TestName, token: Deployer) -> None:
    """End a test's quarantine: its failures fail the stage again."""
    store = agent_of(request).store
    test_id = store.find_test(store.get_service(service).id, test)
    history = store.test_history(test_id, limit=1)
    if not store.release_test(test_id):
        raise NotFound(f"{test_key(history.classname, history.name)} is not quarantined")
    audit(request, token, "test.release", f"{service} "
          f"{test_key(history.classname, history.name)}")
