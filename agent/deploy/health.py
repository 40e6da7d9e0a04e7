"""Health checks of a freshly started colour: HTTP path + status, or the image's HEALTHCHECK."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from store.models import HealthCheck


@dataclass
class HealthResult:
    ok: bool
    detail: str  # one line for the stage log, the deployment and the approval record


def check_http(base_url: str, check: HealthCheck, container: object | None = None) -> HealthResult:
    """Poll GET base_url+path until it answers `expected_status`, the container dies,
    or `timeout_s` passes."""
    assert check.path is not None
    url = base_url + check.path
    start = time.monotonic()
    deadline = start + check.timeout_s
    last = "no answer"
    with httpx.Client(timeout=2.0) as http:
        while True:
            try:
                resp = http.get(url)
                if resp.status_code == check.expected_status:
                    took = time.monotonic() - start
                    return HealthResult(True, f"GET {check.path} → {resp.status_code}"
                                              f" in {took:.1f} s")
                body = resp.text.strip().replace("\n", " ")[:200]
                last = f"{resp.status_code} (expected {check.expected_status}): {body}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            exited = _exited(container)
            if exited:
                return HealthResult(False, f"GET {check.path}: container exited ({exited});"
                                           f" last answer: {last}")
            if time.monotonic() >= deadline:
                return HealthResult(False, f"GET {check.path} → {last}; not healthy after"
                                           f" {check.timeout_s:g} s")
            time.sleep(check.interval_s)


def check_docker_healthcheck(container: object, check: HealthCheck) -> HealthResult:
    """Wait for the image's own HEALTHCHECK to report healthy (path is None)."""
    start = time.monotonic()
    deadline = start + check.timeout_s
    while True:
        container.reload()  # type: ignore[attr-defined]
        state = container.attrs.get("State", {})  # type: ignore[attr-defined]
        health = state.get("Health")
        if health is None:
            return HealthResult(False, "health check path is unset and the image has no"
                                       " HEALTHCHECK: nothing to check")
        status = health.get("Status")
        if status == "healthy":
            return HealthResult(True, f"HEALTHCHECK healthy in {time.monotonic() - start:.1f} s")
        runs = health.get("Log") or []
        output = (runs[-1].get("Output") or "").strip()[:300] if runs else ""
        if status == "unhealthy" or not state.get("Running", False):
            return HealthResult(False, f"HEALTHCHECK {status}: {output}")
        if time.monotonic() >= deadline:
            return HealthResult(False, f"HEALTHCHECK still {status} after"
                                       f" {check.timeout_s:g} s: {output}")
        time.sleep(check.interval_s)


def _exited(container: object | None) -> str | None:
    if container is None:
        return None
    try:
        container.reload()  # type: ignore[attr-defined]
    except Exception:
        return "container vanished"
    state = container.attrs.get("State", {})  # type: ignore[attr-defined]
    if state.get("Running", True):
        return None
    return f"exit code {state.get('ExitCode')}"
