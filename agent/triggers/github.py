"""GitHub webhook semantics, free of HTTP: signatures, repository matching, and what
a `push` or `pull_request` delivery asks of a service."""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from dataclasses import dataclass
from typing import Any

from agent.engine.engine import MAX_AUTHOR, MAX_MESSAGE
from store.models import BRANCH, RunKind, Service, Trigger
from store.models.repos import normalize_repo_url
from store.store import Store

ZERO_SHA = "0" * 40
PR_ACTIONS = frozenset({"opened", "synchronize", "reopened"})
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
# Stored strings from a delivery are capped (a 5 MB PR title is not a title).
MAX_NAME = MAX_AUTHOR
MAX_REF = 300


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256` against the raw body, in constant time."""
    if not header or not secret:
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())


class MalformedPayload(ValueError):
    """A delivery whose field has the wrong type or an unsafe value: answered 400."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field {field!r} {problem}")
        self.field = field


def _object(payload: dict[str, Any], path: str) -> dict[str, Any]:
    """The object at a dotted path; {} when absent or null; MalformedPayload otherwise."""
    value: Any = payload
    for depth, key in enumerate(path.split(".")):
        value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise MalformedPayload(".".join(path.split(".")[:depth + 1]),
                                   f"must be an object, not {type(value).__name__}")
    return value


def _text(obj: dict[str, Any], key: str, path: str, limit: int) -> str | None:
    """A string field, cut to `limit` characters; None when absent."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedPayload(path, f"must be a string, not {type(value).__name__}")
    return value[:limit]


def payload_repo_urls(payload: dict[str, Any]) -> set[str]:
    repo = _object(payload, "repository")
    urls = set()
    for key in ("clone_url", "html_url", "ssh_url", "git_url", "url"):
        value = _text(repo, key, f"repository.{key}", 2000)
        if value:
            urls.add(normalize_repo_url(value))
    return urls


def services_for(services: list[Service], payload: dict[str, Any]) -> list[Service]:
    urls = payload_repo_urls(payload)
    return [s for s in services if normalize_repo_url(s.repo_url) in urls]


class RepoIndex:
    """The services of each repository, by its normalized URL: rebuilt only when a
    configuration changes, so a webhook reads no service from the store (listing and
    validating every service per delivery cost milliseconds with hundreds, and a
    monorepo's push concerns all of its services)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._version = -1
        self._services: dict[str, list[Service]] = {}
        self._lock = threading.Lock()

    def services_for(self, payload: dict[str, Any]) -> list[Service]:
        urls = payload_repo_urls(payload)
        by_url = self.refresh()
        found = {s.id: s for url in urls for s in by_url.get(url, ())}
        return sorted(found.values(), key=lambda s: s.name)

    def refresh(self) -> dict[str, list[Service]]:
        """The index, re-read first when a configuration changed since it was built."""
        with self._lock:
            if self._version != self.store.config_version:
                version = self.store.config_version  # before reading: a change re-reads
                services: dict[str, list[Service]] = {}
                for service in self.store.list_services():
                    services.setdefault(normalize_repo_url(service.repo_url), []).append(service)
                self._services, self._version = services, version
            return self._services


def verified_services(services: list[Service], body: bytes, header: str | None
                      ) -> list[Service]:
    """The services whose webhook secret signed `body`: one HMAC per distinct secret (the
    services of a monorepo usually share the repository's one webhook and secret)."""
    valid: dict[str, bool] = {}
    for service in services:
        secret = service.webhook_secret or ""
        if secret not in valid:
            valid[secret] = verify_signature(secret, body, header)
    return [s for s in services if valid[s.webhook_secret or ""]]


@dataclass(frozen=True)
class Plan:
    """What a delivery asks of one service: a run (`run=True`) or nothing, and why."""

    run: bool
    reason: str
    trigger: Trigger = Trigger.push
    kind: RunKind = RunKind.full
    sha: str = ""
    branch: str | None = None
    pr_number: int | None = None
    author: str | None = None
    message: str | None = None
    base_sha: str | None = None  # a pull request's base branch head (its merge base)


def _ignore(reason: str) -> Plan:
    return Plan(run=False, reason=reason)


def plan_push(service: Service, payload: dict[str, Any]) -> Plan:
    if not service.triggers.push:
        return _ignore("push trigger is off for this service")
    ref = _text(payload, "ref", "ref", MAX_REF) or ""
    if not ref.startswith("refs/heads/"):
        return _ignore(f"{ref or 'ref'} is not a branch")
    branch = ref.removeprefix("refs/heads/")
    if branch != service.branch:
        return _ignore(f"branch {branch!r} is not the service's branch {service.branch!r}")
    after = _text(payload, "after", "after", 100) or ""
    if payload.get("deleted") or after == ZERO_SHA:
        return _ignore(f"branch {branch!r} was deleted")
    if not _FULL_SHA.match(after):
        return _ignore("push without a valid 'after' sha")
    head = _object(payload, "head_commit")
    author = (_text(_object(payload, "head_commit.author"), "name", "head_commit.author.name",
                    MAX_NAME)
              or _text(_object(payload, "pusher"), "name", "pusher.name", MAX_NAME))
    message = _text(head, "message", "head_commit.message", MAX_MESSAGE)
    return Plan(run=True, reason="push", trigger=Trigger.push, kind=RunKind.full, sha=after,
                branch=branch, author=author, message=message or None)


def plan_pull_request(service: Service, payload: dict[str, Any]) -> Plan:
    if not service.triggers.pull_request:
        return _ignore("pull_request trigger is off for this service")
    action = _text(payload, "action", "action", 100)
    if action not in PR_ACTIONS:
        return _ignore(f"pull_request action {action!r} does not run")
    pr = _object(payload, "pull_request")
    head, base = _object(payload, "pull_request.head"), _object(payload, "pull_request.base")
    base_ref = _text(base, "ref", "pull_request.base.ref", MAX_REF)
    if (base_ref or service.branch) != service.branch:
        return _ignore(f"pull request targets {base_ref!r}, not {service.branch!r}")
    head_repo = _text(_object(payload, "pull_request.head.repo"), "full_name",
                      "pull_request.head.repo.full_name", MAX_NAME)
    base_repo = _text(_object(payload, "pull_request.base.repo"), "full_name",
                      "pull_request.base.repo.full_name", MAX_NAME)
    if head_repo is None or head_repo != base_repo:
        # A fork's code is untrusted: it would run with the service's secrets.
        return _ignore("pull request from a fork is not run automatically")
    sha = _text(head, "sha", "pull_request.head.sha", 100) or ""
    if not _FULL_SHA.match(sha):
        return _ignore("pull request without a valid head sha")
    ref = head.get("ref")
    if not isinstance(ref, str) or not BRANCH.match(ref):
        # Stored and exported to stages as SEAMLESS_BRANCH: git's rules, nothing more.
        raise MalformedPayload("pull_request.head.ref", "is not a valid branch name")
    number = payload.get("number", pr.get("number"))
    if number is not None and (not isinstance(number, int) or isinstance(number, bool)
                               or not 0 < number < 2**31):
        raise MalformedPayload("number", "must be a positive integer")
    base_sha = _text(base, "sha", "pull_request.base.sha", 100)
    return Plan(run=True, reason=f"pull_request {action}", trigger=Trigger.pull_request,
                kind=RunKind.partial, sha=sha, branch=ref, pr_number=number,
                base_sha=base_sha if base_sha and _FULL_SHA.match(base_sha) else None,
                author=_text(_object(payload, "pull_request.user"), "login",
                             "pull_request.user.login", MAX_NAME),
                message=_text(pr, "title", "pull_request.title", MAX_MESSAGE))
