"""POST /webhooks/github: verify, dedupe, queue a run, answer at once.

The answer must come well within GitHub's 10 s: the engine only queues the
run; everything slow happens in the run's Prepare stage. Which services of a shared
repository a push runs is decided after the answer has been sent.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from agent.api.errors import error_response
from agent.runtime import Agent
from agent.triggers.changes import ChangeRequest, uses_detection
from agent.triggers.github import (
    MalformedPayload,
    Plan,
    RepoIndex,
    plan_pull_request,
    plan_push,
    verified_services,
)
from store.models import ChangeDecision, Service

log = logging.getLogger(__name__)
router = APIRouter()

MAX_PAYLOAD = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
HANDLED_EVENTS = ("push", "pull_request")
MAX_HEADER = 100  # GitHub's delivery ids are GUIDs, its event names short words


class _TooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_PAYLOAD:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _ignored(reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "ignored", "reason": reason, **extra}, status_code=202)


@router.post("/webhooks/github", tags=["webhooks"], responses={
    200: {"description": "ping answered, duplicate delivery, or run(s) queued"},
    202: {"description": "acknowledged and ignored (with a reason)"},
    400: {"description": "malformed JSON, a field of the wrong type (named), or missing "
                        "GitHub headers"},
    401: {"description": "missing or bad X-Hub-Signature-256"},
    404: {"description": "no service for this repository"},
    413: {"description": "payload over 25 MB"},
    415: {"description": "not application/json (set the hook's content type to json)"}})
async def github_webhook(request: Request) -> JSONResponse:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_PAYLOAD:
        return error_response(413, "payload_too_large", "webhook payloads are capped at 25 MB")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return error_response(415, "unsupported_media_type",
                              "send application/json (the hook's content type must be 'json')")
    try:
        body = await _read_body(request)
    except _TooLarge:
        return error_response(413, "payload_too_large", "webhook payloads are capped at 25 MB")
    event = request.headers.get("x-github-event")
    delivery = request.headers.get("x-github-delivery")
    if not event or not delivery:
        return error_response(400, "missing_header", "X-GitHub-Event and X-GitHub-Delivery "
                              "are required")
    if len(event) > MAX_HEADER or len(delivery) > MAX_HEADER:  # both are stored
        return error_response(400, "bad_header", "X-GitHub-Event and X-GitHub-Delivery "
                              f"are at most {MAX_HEADER} characters")
    # Parsed once, off the event loop like the rest: a payload may be megabytes.
    return await run_in_threadpool(_handle, request.app.state.agent,
                                   request.app.state.repo_index, event, delivery, body,
                                   request.headers.get("x-hub-signature-256"))


def _parsed(body: bytes) -> dict[str, Any] | JSONResponse:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "malformed_json", "the payload is not valid JSON")
    except RecursionError:
        return error_response(400, "malformed_json", "the payload is nested too deeply")
    if not isinstance(payload, dict):
        return error_response(400, "malformed_json", "the payload must be a JSON object")
    return payload


def _handle(agent: Agent, repo_index: RepoIndex, event: str, delivery: str, body: bytes,
            signature: str | None) -> JSONResponse:
    payload = _parsed(body)
    if isinstance(payload, JSONResponse):
        return payload
    try:
        return _answer(agent, repo_index, event, delivery, body, payload, signature)
    except MalformedPayload as exc:
        return error_response(400, "malformed_payload", str(exc))


def _answer(agent: Agent, repo_index: RepoIndex, event: str, delivery: str, body: bytes,
            payload: dict[str, Any], signature: str | None) -> JSONResponse:
    candidates = repo_index.services_for(payload)
    if not candidates:
        return error_response(404, "unknown_repository", "no service uses this repository")
    with_secret = [s for s in candidates if s.webhook_secret]
    if not with_secret:
        return error_response(401, "no_webhook_secret", "the service has no webhook_secret: "
                              "set one to accept webhooks")
    verified = verified_services(with_secret, body, signature)
    if not verified:
        return error_response(401, "bad_signature", "X-Hub-Signature-256 is missing or does "
                              "not match the service's webhook secret")
    if event == "ping":
        return JSONResponse({"status": "pong", "services": [s.name for s in verified]})
    if event not in HANDLED_EVENTS:
        return _ignored(f"event {event!r} is not handled")
    # Planned before the delivery is recorded: a malformed one is refused, not remembered.
    plans = _plans(event, verified, payload)
    wanted = [(service, plan) for service, plan in plans if plan.run]
    reasons = [f"{service.name}: {plan.reason}" for service, plan in plans if not plan.run]
    if not wanted:
        if not agent.store.record_delivery(delivery, event, "ignored: " + "; ".join(reasons),
                                           verified[0].id):
            return JSONResponse({"status": "duplicate", "delivery": delivery})
        return _ignored("; ".join(reasons))
    # Services sharing the repository (or with narrowed paths) are decided after the
    # answer: which of them the change touches needs git.
    deciding = [_request(service, plan) for service, plan in wanted
                if uses_detection(service, len(candidates))]
    immediate = [(service, plan) for service, plan in wanted
                 if not uses_detection(service, len(candidates))]
    names = [r.service.name for r in deciding]
    if not immediate:
        if not agent.store.record_delivery(delivery, event, "deciding", verified[0].id):
            return JSONResponse({"status": "duplicate", "delivery": delivery})
        return JSONResponse({"status": "deciding", "deciding": names, "runs": [],
                             "ignored": reasons}, status_code=202,
                            background=_decide_later(agent, deciding, delivery,
                                                     verified[0].id))
    queued = agent.engine.submit_delivery(delivery, event, [
        (service, {"trigger": plan.trigger, "kind": plan.kind, "sha": plan.sha,
                   "branch": plan.branch, "pr_number": plan.pr_number, "author": plan.author,
                   "message": plan.message, "actor": "github"}) for service, plan in immediate])
    if queued is None:
        return JSONResponse({"status": "duplicate", "delivery": delivery})
    runs = []
    for run in queued:
        log.info("webhook %s queued %s run #%d at %s", delivery, run.service, run.number,
                 run.sha)
        runs.append({"id": run.id, "service_id": run.service_id, "service": run.service,
                     "number": run.number, "kind": run.kind.value, "sha": run.sha})
    return JSONResponse({"status": "queued", "runs": runs, "deciding": names,
                         "ignored": reasons}, background=_decide_later(
                             agent, deciding, delivery, verified[0].id) if deciding else None)


def _plans(event: str, services: list[Service], payload: dict[str, Any]
           ) -> list[tuple[Service, Plan]]:
    """Each service's plan. A plan depends on the service only through its branch and its
    trigger switch: the services of a monorepo (hundreds) share a handful of plans."""
    made: dict[tuple[str, bool], Plan] = {}
    plans = []
    for service in services:
        if event == "push":
            key = (service.branch, service.triggers.push)
            plan = made.get(key) or made.setdefault(key, plan_push(service, payload))
        else:
            key = (service.branch, service.triggers.pull_request)
            plan = made.get(key) or made.setdefault(key, plan_pull_request(service, payload))
        plans.append((service, plan))
    return plans


def _request(service: Service, plan: Plan) -> ChangeRequest:
    return ChangeRequest(service=service, trigger=plan.trigger, kind=plan.kind, sha=plan.sha,
                         branch=plan.branch, pr_number=plan.pr_number,
                         pr_base_sha=plan.base_sha, author=plan.author, message=plan.message,
                         actor="github")


def _decide_later(agent: Agent, requests: list[ChangeRequest], delivery: str,
                  service_id: int) -> BackgroundTask:
    """The decision, started once the answer is sent: until then its threads (git, 200
    services' globs, the store) do not compete with the answer."""
    def recorded(decisions: list[ChangeDecision]) -> None:
        ran = [d for d in decisions if d.ran]
        outcome = (f"decided: ran {', '.join(d.service for d in ran) or 'none'}; not run "
                   f"{', '.join(d.service for d in decisions if not d.ran) or 'none'}")
        agent.store.update_delivery(delivery, outcome[:1000], ran[0].service_id if ran
                                    else service_id, ran[0].run_id if ran else None)

    def failed(nothing_done: bool) -> None:
        # Nothing decided: GitHub's redelivery of it must be decided again, not ignored.
        if nothing_done:
            agent.store.forget_delivery(delivery)
        else:
            agent.store.update_delivery(delivery, "decision failed part way: see the "
                                        "agent's log", service_id)

    return BackgroundTask(agent.changes.decide_later, requests, f"delivery:{delivery}",
                          then=recorded, failed=failed)
