"""Hostile GitHub webhook deliveries, and a small concurrent firer for them.

Shared by tests/reliability/test_hostile_webhooks.py and bench/webhook_flood.py.
Every request here must be refused (4xx) or, for a replay of a delivery already
handled, acknowledged without a second run.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.reliability.served import push_payload, sign

OVERSIZE = 25 * 1024 * 1024 + 4096  # just over GitHub's (and the agent's) 25 MB cap


@dataclass(frozen=True)
class Hostile:
    kind: str
    body: bytes
    headers: dict[str, str]
    chunked: bool = False  # send without Content-Length (the size cap must hold anyway)


def _headers(body: bytes, *, secret: str | None, delivery: str | None = None,
             event: str = "push", ctype: str = "application/json") -> dict[str, str]:
    headers = {"Content-Type": ctype, "X-GitHub-Event": event,
               "X-GitHub-Delivery": delivery or str(uuid.uuid4())}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return headers


def hostile_requests(count: int, *, secret: str, repo_url: str, sha: str,
                     replay_delivery: str, oversized: int = 4) -> Iterator[Hostile]:
    """`count` requests cycling through the kinds below; `oversized` of them are 25 MB+."""
    kinds = ["missing_signature", "bad_signature", "wrong_secret", "truncated_signed_full",
             "truncated_signed_truncated", "form_content_type", "text_content_type",
             "no_content_type", "replayed_delivery", "replayed_delivery_bad_signature",
             "unknown_repo", "missing_event_header", "missing_delivery_header",
             "not_json", "json_array", "signature_of_other_body"]
    for i in range(count):
        if i < oversized:
            yield _oversized(i, secret, repo_url, sha)
            continue
        kind = kinds[i % len(kinds)]
        payload = push_payload(repo_url, sha, message=f"hostile {i}")
        body = json.dumps(payload).encode()
        yield Hostile(kind, *_make(kind, body, secret, repo_url, sha, replay_delivery))


def _make(kind: str, body: bytes, secret: str, repo_url: str, sha: str,
          replay: str) -> tuple[bytes, dict[str, str]]:
    if kind == "missing_signature":
        return body, _headers(body, secret=None)
    if kind == "bad_signature":
        h = _headers(body, secret=None)
        h["X-Hub-Signature-256"] = "sha256=" + os.urandom(32).hex()
        return body, h
    if kind == "wrong_secret":
        return body, _headers(body, secret=secret + "-not")
    if kind == "truncated_signed_full":
        return body[: len(body) // 2], _headers(body, secret=secret)
    if kind == "truncated_signed_truncated":  # even the secret's holder cannot send half JSON
        cut = body[: len(body) // 2]
        return cut, _headers(cut, secret=secret)
    if kind in ("form_content_type", "text_content_type", "no_content_type"):
        ctype = {"form_content_type": "application/x-www-form-urlencoded",
                 "text_content_type": "text/plain", "no_content_type": ""}[kind]
        return body, _headers(body, secret=secret, ctype=ctype)
    if kind == "replayed_delivery":
        return body, _headers(body, secret=secret, delivery=replay)
    if kind == "replayed_delivery_bad_signature":
        return body, _headers(body, secret=secret + "x", delivery=replay)
    if kind == "unknown_repo":
        other = json.dumps(push_payload(f"https://github.com/evil/{uuid.uuid4().hex}.git",
                                        sha)).encode()
        return other, _headers(other, secret=secret)
    if kind == "missing_event_header":
        h = _headers(body, secret=secret)
        del h["X-GitHub-Event"]
        return body, h
    if kind == "missing_delivery_header":
        h = _headers(body, secret=secret)
        del h["X-GitHub-Delivery"]
        return body, h
    if kind == "not_json":
        junk = os.urandom(300)
        return junk, _headers(junk, secret=secret)
    if kind == "json_array":
        arr = json.dumps([json.loads(body)]).encode()
        return arr, _headers(arr, secret=secret)
    if kind == "signature_of_other_body":
        other = json.dumps(push_payload(repo_url, "f" * 40)).encode()
        return body, {**_headers(body, secret=None), "X-Hub-Signature-256": sign(secret, other)}
    raise ValueError(kind)


def _oversized(i: int, secret: str, repo_url: str, sha: str) -> Hostile:
    head = json.dumps(push_payload(repo_url, sha))[:-1].encode() + b', "pad": "'
    body = head + b"x" * (OVERSIZE - len(head)) + b'"}'
    return Hostile("oversized_chunked" if i % 2 else "oversized", body,
                   _headers(body, secret=secret), chunked=bool(i % 2))


@dataclass
class FloodResult:
    statuses: Counter[int] = field(default_factory=Counter)
    by_kind: dict[str, Counter[int]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def add(self, kind: str, status: int, ms: float) -> None:
        self.statuses[status] += 1
        self.by_kind.setdefault(kind, Counter())[status] += 1
        self.latencies_ms.append(ms)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


def fire(url: str, requests: list[Hostile], workers: int = 8) -> FloodResult:
    """POST each request to `url` from `workers` threads; statuses per kind, latencies."""
    result = FloodResult()
    started = time.monotonic()

    def one(client: httpx.Client, req: Hostile) -> tuple[str, int, float]:
        t0 = time.monotonic()
        content: Any = req.body
        if req.chunked:
            content = (req.body[i:i + 65536] for i in range(0, len(req.body), 65536))
        try:
            status = client.post(url, content=content, headers=req.headers).status_code
        except httpx.HTTPError as exc:  # the agent may close an oversized upload early
            status = -1 if not req.kind.startswith("oversized") else 413
            if status == -1:
                result.errors.append(f"{req.kind}: {type(exc).__name__}: {exc}")
        return req.kind, status, (time.monotonic() - t0) * 1000

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=workers)) as client, \
            ThreadPoolExecutor(workers) as pool:
        for kind, status, ms in pool.map(lambda r: one(client, r), requests):
            result.add(kind, status, ms)
    result.wall_s = time.monotonic() - started
    return result
