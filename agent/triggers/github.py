"""GitHub webhook semantics, free of HTTP: signatures, repository matching, and what
a `push` or `pull_request` delivery asks of a service."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from store.models import RunKind, Service, Trigger

ZERO_SHA = "0" * 40
PR_ACTIONS = frozenset({"opened", "synchronize", "reopened"})
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256` against the raw body, in constant time."""
    if not header or not secret:
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())


def normalize_repo_url(url: str) -> str:
    """One spelling per repository: `https://github.com/O/R.git`, `git@github.com:O/R`,
    `ssh://git@github.com/O/R` and `git://github.com/O/R.git` all become
    `github.com/o/r`; local paths and file:// URLs become the bare path."""
    url = url.strip()
    scp = re.match(r"^[\w.-]+@([\w.-]+):(?!//)(.*)$", url)
    if scp:
        url = f"{scp.group(1)}/{scp.group(2)}"
    else:
        url = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url, flags=re.I)
        url = re.sub(r"^[^/@]+@", "", url)  # user (and password) before the host
    url = url.rstrip("/")
    if url.endswith(".git"):
        url = url[:-4]
    host, _, path = url.partition("/")
    if host and ("." in host or ":" in host or host == "localhost"):
        host = re.sub(r":(22|80|443|9418)$", "", host.lower())
        return f"{host}/{path}".lower()  # GitHub owner/repo names are case-insensitive
    return url


def payload_repo_urls(payload: dict[str, Any]) -> set[str]:
    repo = payload.get("repository") or {}
    return {normalize_repo_url(repo[k]) for k in ("clone_url", "html_url", "ssh_url",
                                                   "git_url", "url")
            if isinstance(repo.get(k), str) and repo[k]}


def services_for(services: list[Service], payload: dict[str, Any]) -> list[Service]:
    urls = payload_repo_urls(payload)
    return [s for s in services if normalize_repo_url(s.repo_url) in urls]


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


def _ignore(reason: str) -> Plan:
    return Plan(run=False, reason=reason)


def plan_push(service: Service, payload: dict[str, Any]) -> Plan:
    if not service.triggers.push:
        return _ignore("push trigger is off for this service")
    ref = str(payload.get("ref") or "")
    if not ref.startswith("refs/heads/"):
        return _ignore(f"{ref or 'ref'} is not a branch")
    branch = ref.removeprefix("refs/heads/")
    if branch != service.branch:
        return _ignore(f"branch {branch!r} is not the service's branch {service.branch!r}")
    after = str(payload.get("after") or "")
    if payload.get("deleted") or after == ZERO_SHA:
        return _ignore(f"branch {branch!r} was deleted")
    if not _FULL_SHA.match(after):
        return _ignore("push without a valid 'after' sha")
    head = payload.get("head_commit") or {}
    author = (head.get("author") or {}).get("name") or (payload.get("pusher") or {}).get("name")
    message = head.get("message")
    return Plan(run=True, reason="push", trigger=Trigger.push, kind=RunKind.full, sha=after,
                branch=branch, author=author, message=message[:2000] if message else None)


def plan_pull_request(service: Service, payload: dict[str, Any]) -> Plan:
    if not service.triggers.pull_request:
        return _ignore("pull_request trigger is off for this service")
    action = payload.get("action")
    if action not in PR_ACTIONS:
        return _ignore(f"pull_request action {action!r} does not run")
    pr = payload.get("pull_request") or {}
    head, base = pr.get("head") or {}, pr.get("base") or {}
    if (base.get("ref") or service.branch) != service.branch:
        return _ignore(f"pull request targets {base.get('ref')!r}, not {service.branch!r}")
    head_repo = (head.get("repo") or {}).get("full_name")
    base_repo = (base.get("repo") or {}).get("full_name")
    if head_repo is None or head_repo != base_repo:
        # A fork's code is untrusted: it would run with the service's secrets.
        return _ignore("pull request from a fork is not run automatically")
    sha = str(head.get("sha") or "")
    if not _FULL_SHA.match(sha):
        return _ignore("pull request without a valid head sha")
    number = payload.get("number") or pr.get("number")
    return Plan(run=True, reason=f"pull_request {action}", trigger=Trigger.pull_request,
                kind=RunKind.partial, sha=sha, branch=head.get("ref"),
                pr_number=int(number) if number is not None else None,
                author=(pr.get("user") or {}).get("login"), message=pr.get("title"))
