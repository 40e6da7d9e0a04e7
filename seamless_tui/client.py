"""The TUI's only way to the agent: REST over httpx, streams over websockets.

Streams reconnect on their own and resume by cursor (the last log-line ULID),
so a dropped agent costs no lines and no duplicates. Callers learn about the
connection state through the `on_state` callback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import websockets
from pydantic import TypeAdapter

from store.models import (
    AgentInfo,
    Approval,
    CacheInfo,
    CanaryStatus,
    ChangeDecision,
    Deployment,
    DoraFigures,
    Event,
    FirstErrorAnswer,
    LogMatch,
    LogPage,
    LogSearchPage,
    Quarantine,
    RunInfo,
    RunPageLink,
    RunTestSummary,
    Service,
    ServiceOverview,
    ServiceTestFigures,
    TestHistory,
)

StateCallback = Callable[[str, str], None]  # (state: "connected"|"reconnecting", detail)

_ACTIONS = {  # first match wins: the specific paths come before /services
    "quarantine": "quarantine tests", "unpin": "unpin environments",
    "trigger": "trigger runs", "approve": "approve runs",
    "reject": "reject runs", "cancel": "cancel runs",
    "rerun": "rerun runs", "rollbacks": "roll back deployments", "/cache": "clear caches",
    "services": "edit services",
}


# An idle connection is dropped before the agent closes it (its keep-alive is 5 s, httpx's
# default the same): a request sent on a connection the agent is closing at that moment
# failed with ReadError ("agent unreachable") in the journey's rollback.
KEEPALIVE_S = 2.0
# A stream ends when its view or the TUI does: waiting longer for the agent's close frame
# (websockets' default is 10 s) only delays quitting, which waits for the streams to end.
CLOSE_TIMEOUT_S = 1.0
# WebSocket close codes the agent uses for refusals that a retry cannot fix.
_FATAL_CLOSE = {4401: 401, 4403: 403, 4404: 404, 4400: 400}


@dataclass
class RawContext:
    """A search or first-error answer's `context`: the lines around the line found, as
    the JSON has them (see `log_page_raw`)."""

    lines: list[dict[str, Any]]
    more_before: bool
    more_after: bool


class ApiError(Exception):
    """A refused or failed request, with a sentence fit for the status bar."""

    def __init__(self, status: int, code: str, detail: Any, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.detail, self.message = status, code, detail, message

    @property
    def field_errors(self) -> dict[str, str]:
        """422 bodies carry `[{field, message}]`; map them for a form."""
        if self.status != 422 or not isinstance(self.detail, list):
            return {}
        out: dict[str, str] = {}
        for item in self.detail:
            if isinstance(item, dict) and "field" in item:
                out[str(item["field"])] = str(item.get("message", "invalid"))
        return out


class AgentUnreachable(ApiError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, "unreachable", reason, f"agent at {url} unreachable: {reason}")


def _raw_context(data: Any) -> RawContext | None:
    """Takes `context` out of an answer: its lines stay dicts, not a model each."""
    context = data.pop("context", None) if isinstance(data, dict) else None
    if context is None:
        return None
    if not isinstance(context, dict) or not isinstance(context.get("lines"), list):
        raise ApiError(0, "bad_context", context, "the agent sent context without lines")
    return RawContext(context["lines"], bool(context.get("more_before")),
                      bool(context.get("more_after")))


def _error_message(status: int, body: Any, path: str) -> tuple[str, Any, str]:
    code = body.get("error", "") if isinstance(body, dict) else ""
    detail = body.get("detail") if isinstance(body, dict) else body
    if status == 401:
        return (code or "unauthorized", detail,
                "the agent rejected the token (run `seamless-tui login`)")
    if status == 403:
        verb = next((v for k, v in _ACTIONS.items() if k in path), "do that")
        why = f": {detail}" if isinstance(detail, str) and detail else ""
        return code or "forbidden", detail, f"your token's role may not {verb}{why}"
    if status == 422 and isinstance(detail, list):
        parts = [f"{d.get('field')}: {d.get('message')}" for d in detail if isinstance(d, dict)]
        return code or "invalid", detail, "invalid: " + "; ".join(parts)
    text = detail if isinstance(detail, str) else (code or f"HTTP {status}")
    return code or str(status), detail, str(text)


class AgentClient:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout,
                                       limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S))

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- REST -------------------------------------------------------------------------------
    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = await self._http.request(method, path, json=json_body, params=clean)
        except httpx.TransportError as exc:
            raise AgentUnreachable(self.base_url, str(exc) or type(exc).__name__) from exc
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
            code, detail, message = _error_message(resp.status_code, body, path)
            raise ApiError(resp.status_code, code, detail, message)
        return resp.json() if resp.content else None

    async def me(self) -> dict[str, str]:
        return dict(await self.request("GET", "/api/v1/me"))

    async def info(self) -> AgentInfo:
        return AgentInfo.model_validate(await self.request("GET", "/api/v1/info"))

    async def overview(self) -> list[ServiceOverview]:
        data = await self.request("GET", "/api/v1/overview")
        return TypeAdapter(list[ServiceOverview]).validate_python(data)

    async def service(self, name: str) -> Service:
        return Service.model_validate(await self.request("GET", f"/api/v1/services/{name}"))

    async def update_service(self, name: str, config: dict[str, Any]) -> Service:
        data = await self.request("PUT", f"/api/v1/services/{name}", json_body=config)
        return Service.model_validate(data)

    async def runs(self, service: str | None = None, limit: int = 50, *,
                   status: str | None = None, branch: str | None = None) -> list[RunInfo]:
        data = await self.request("GET", "/api/v1/runs", params={
            "service": service, "limit": limit, "status": status, "branch": branch})
        return TypeAdapter(list[RunInfo]).validate_python(data["items"])

    async def decisions(self, *, service: str | None = None, run: int | None = None,
                        limit: int = 20) -> list[ChangeDecision]:
        """Why services of a shared repository ran or not (newest first)."""
        data = await self.request("GET", "/api/v1/decisions", params={
            "service": service, "run": run, "limit": limit})
        return TypeAdapter(list[ChangeDecision]).validate_python(data)

    async def run(self, run_id: int) -> RunInfo:
        return RunInfo.model_validate(await self.request("GET", f"/api/v1/runs/{run_id}"))

    async def run_page_link(self, run_id: int) -> RunPageLink:
        return RunPageLink.model_validate(await self.request("GET",
                                                             f"/api/v1/runs/{run_id}/link"))

    # -- test results ---------------------------------------------------------------------
    async def run_tests(self, run_id: int) -> RunTestSummary:
        data = await self.request("GET", f"/api/v1/runs/{run_id}/tests")
        return RunTestSummary.model_validate(data)

    async def test_history(self, test_id: int, limit: int = 20) -> TestHistory:
        data = await self.request("GET", f"/api/v1/tests/{test_id}/history",
                                  params={"limit": limit})
        return TestHistory.model_validate(data)

    async def quarantine(self, service: str, test: str, reason: str) -> Quarantine:
        data = await self.request("POST", f"/api/v1/services/{service}/tests/quarantine",
                                  json_body={"test": test, "reason": reason})
        return Quarantine.model_validate(data)

    async def release_test(self, service: str, test: str) -> None:
        await self.request("DELETE", f"/api/v1/services/{service}/tests/quarantine",
                           params={"test": test})

    async def test_figures(self, service: str, days: int = 30) -> ServiceTestFigures:
        data = await self.request("GET", f"/api/v1/services/{service}/tests/figures",
                                  params={"days": days})
        return ServiceTestFigures.model_validate(data)

    async def cancel(self, run_id: int) -> RunInfo:
        data = await self.request("POST", f"/api/v1/runs/{run_id}/cancel")
        return RunInfo.model_validate(data)

    async def rerun(self, run_id: int, from_stage: str | None = None) -> RunInfo:
        data = await self.request("POST", f"/api/v1/runs/{run_id}/rerun",
                                  json_body={"from_stage": from_stage})
        return RunInfo.model_validate(data)

    async def trigger(self, service: str, branch: str | None = None) -> RunInfo:
        """A run of the branch head (the service's branch when None)."""
        data = await self.request("POST", f"/api/v1/services/{service}/trigger",
                                  json_body={"branch": branch} if branch else {})
        return RunInfo.model_validate(data)

    async def cache(self, service: str) -> CacheInfo:
        return CacheInfo.model_validate(await self.request(
            "GET", f"/api/v1/services/{service}/cache"))

    async def clear_cache(self, service: str) -> CacheInfo:
        return CacheInfo.model_validate(await self.request(
            "DELETE", f"/api/v1/services/{service}/cache"))

    async def unpin(self, service: str, environment: str) -> Service:
        data = await self.request("POST", f"/api/v1/services/{service}/unpin/{environment}")
        return Service.model_validate(data)

    async def deployments(self, service: str, environment: str | None = None
                          ) -> list[Deployment]:
        data = await self.request("GET", f"/api/v1/services/{service}/deployments",
                                  params={"environment": environment})
        return TypeAdapter(list[Deployment]).validate_python(data)

    async def dora(self, service: str, days: int = 30) -> DoraFigures:
        data = await self.request("GET", f"/api/v1/services/{service}/dora",
                                  params={"days": days})
        return DoraFigures.model_validate(data)

    async def approval(self, run_id: int) -> Approval:
        return Approval.model_validate(await self.request("GET", f"/api/v1/runs/{run_id}/approval"))

    async def approvals(self) -> list[Approval]:
        data = await self.request("GET", "/api/v1/approvals", params={"status": "pending"})
        return TypeAdapter(list[Approval]).validate_python(data)

    async def decide(self, run_id: int, approve: bool, comment: str | None = None) -> Approval:
        verb = "approve" if approve else "reject"
        data = await self.request("POST", f"/api/v1/runs/{run_id}/{verb}",
                                  json_body={"comment": comment or None})
        return Approval.model_validate(data)

    async def rollback(self, service: str, environment: str, sha: str) -> Deployment:
        data = await self.request("POST", "/api/v1/rollbacks", json_body={
            "service": service, "environment": environment, "sha": sha})
        return Deployment.model_validate(data)

    async def canary(self, service: str, environment: str) -> CanaryStatus:
        data = await self.request("GET", f"/api/v1/services/{service}/canary/{environment}")
        return CanaryStatus.model_validate(data)

    async def steer_canary(self, service: str, environment: str, action: str) -> Deployment:
        """`promote` or `abort` the canary deploy in progress."""
        data = await self.request(
            "POST", f"/api/v1/services/{service}/canary/{environment}/{action}")
        return Deployment.model_validate(data)

    async def log_page(self, run_id: int, *, stage: str | None = None, after: str | None = None,
                       before: str | None = None, tail: bool = False, limit: int = 1000
                       ) -> LogPage:
        data = await self.request("GET", f"/api/v1/runs/{run_id}/logs", params={
            "stage": stage, "after": after, "before": before,
            "tail": "true" if tail else None, "limit": limit})
        return LogPage.model_validate(data)

    async def log_page_raw(self, run_id: int, *, stage: str | None = None,
                           after: str | None = None, before: str | None = None,
                           tail: bool = False, limit: int = 1000
                           ) -> tuple[list[dict[str, Any]], int | None]:
        """`log_page` as the JSON has it: (lines, total). A log view turns each line into
        its own small record at once (as it does the live ones); a model per line first
        cost ~2x the parse on the event loop for each 1,000-line page of a stage switch."""
        data = await self.request("GET", f"/api/v1/runs/{run_id}/logs", params={
            "stage": stage, "after": after, "before": before,
            "tail": "true" if tail else None, "limit": limit})
        if not isinstance(data, dict) or not isinstance(data.get("lines"), list):
            raise ApiError(0, "bad_page", data, "the agent sent a log page without lines")
        return data["lines"], data.get("total")

    async def search_log(self, run_id: int, stage: str, query: str, *,
                         after: str | None = None, before: str | None = None,
                         limit: int = 100, context: int = 0
                         ) -> tuple[LogSearchPage, RawContext | None]:
        """A page of matches; with `context`, the lines around the one a reader goes to."""
        data = await self.request("GET", f"/api/v1/runs/{run_id}/logs/search", params={
            "stage": stage, "q": query, "after": after, "before": before, "limit": limit,
            "context": context or None})
        around = _raw_context(data)
        return LogSearchPage.model_validate(data), around

    async def first_error(self, run_id: int, stage: str, context: int = 0
                          ) -> tuple[LogMatch | None, RawContext | None]:
        """The stage's first error line over its whole stored log (None: it has none)."""
        data = await self.request("GET", f"/api/v1/runs/{run_id}/logs/first-error",
                                  params={"stage": stage, "context": context or None})
        around = _raw_context(data)
        return FirstErrorAnswer.model_validate(data).line, around

    # -- WebSocket streams ------------------------------------------------------------------
    def _ws_url(self, path: str, params: dict[str, Any]) -> str:
        base = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        clean = {k: v for k, v in params.items() if v is not None}
        return base + path + ("?" + urlencode(clean) if clean else "")

    async def _frames(self, path: str, params: Callable[[], dict[str, Any]],
                      on_state: StateCallback | None) -> AsyncIterator[Any]:
        """JSON frames from a WebSocket, reconnecting with backoff; `params()` is re-read on
        every connect so the caller's cursor is the resume point."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        delay = 0.2
        while True:
            try:
                async with websockets.connect(self._ws_url(path, params()),
                                              additional_headers=headers,
                                              open_timeout=5, max_size=2**24,
                                              close_timeout=CLOSE_TIMEOUT_S) as ws:
                    delay = 0.2
                    if on_state:
                        on_state("connected", self.base_url)
                    async for raw in ws:
                        frame = json.loads(raw)
                        if isinstance(frame, dict) and frame.get("type") == "lagged":
                            break  # the agent dropped us; reconnect and resume by cursor
                        yield frame
                if on_state:
                    on_state("reconnecting", "stream ended")
            except asyncio.CancelledError:
                raise
            except websockets.InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    code, detail, message = _error_message(status, {}, path)
                    raise ApiError(status, code, detail, message) from exc
                if on_state:
                    on_state("reconnecting", f"HTTP {status}")
            except websockets.ConnectionClosed as exc:
                close_code = exc.rcvd.code if exc.rcvd is not None else 0
                if close_code in _FATAL_CLOSE:
                    refused = _FATAL_CLOSE[close_code]
                    reason = exc.rcvd.reason if exc.rcvd is not None else ""
                    _, detail, message = _error_message(refused, {"detail": reason}, path)
                    raise ApiError(refused, "closed", detail, message) from exc
                if on_state:
                    on_state("reconnecting", f"stream closed ({close_code})")
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                if on_state:
                    on_state("reconnecting", str(exc) or type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)

    async def events(self, on_state: StateCallback | None = None) -> AsyncIterator[Event]:
        async for frame in self._frames("/api/v1/ws/events", dict, on_state):
            yield Event.model_validate(frame)

    async def log_stream(self, run_id: int, *, stage: str | None, after: str | None,
                         on_state: StateCallback | None = None
                         ) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of raw log-line dicts (no pydantic on the hot path: 10k lines/s)."""
        cursor = {"after": after}

        def params() -> dict[str, Any]:
            return {"after": cursor["after"], "stage": stage}

        async for frame in self._frames(f"/api/v1/ws/runs/{run_id}/logs", params, on_state):
            lines = frame.get("lines") or []
            if lines:
                cursor["after"] = lines[-1]["id"]
                yield lines
