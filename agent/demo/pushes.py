"""Signed GitHub `push` deliveries for the demo's commits, in GitHub's documented shape.

The demo triggers every run the way GitHub would: a `push` event whose body is
signed with the service's webhook secret (`X-Hub-Signature-256`, HMAC-SHA256 of
the exact bytes sent), POSTed to the agent's `/webhooks/github`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
import zlib
from typing import Any

from agent.demo.shop import ShopRepo

ZERO_SHA = "0" * 40


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _person(info: dict[str, str]) -> dict[str, str]:
    return {"name": info["author"], "email": info["email"], "username": "dana-demo"}


def _commit(repo: ShopRepo, sha: str) -> dict[str, Any]:
    info = repo.commit_info(sha)
    return {
        "id": sha, "tree_id": sha, "distinct": True, "message": info["message"],
        "timestamp": info["timestamp"], "url": f"file://{repo.path}/commit/{sha}",
        "author": _person(info), "committer": _person(info), **repo.changed_files(sha),
    }


def push_payload(repo: ShopRepo, before: str | None, after: str) -> dict[str, Any]:
    """A `push` to `main` from `before` (None: the branch is new) to `after`."""
    head = _commit(repo, after)
    # The repository URLs point at the local repository: the agent matches services by them.
    url = repo.url
    owner = {"name": "shop", "login": "shop", "type": "Organization"}
    return {
        "ref": "refs/heads/main",
        "before": before or ZERO_SHA,
        "after": after,
        "repository": {
            "id": zlib.crc32(repo.name.encode()), "name": repo.name,
            "full_name": f"shop/{repo.name}",
            "private": True, "owner": owner, "html_url": url, "url": url, "clone_url": url,
            "git_url": f"file://{url}", "ssh_url": url, "default_branch": "main",
            "master_branch": "main", "fork": False,
        },
        "pusher": {"name": head["author"]["name"], "email": head["author"]["email"]},
        "sender": {"login": "dana-demo", "type": "User"},
        "created": before is None, "deleted": False, "forced": False, "base_ref": None,
        "compare": f"file://{url}/compare/{(before or ZERO_SHA)[:12]}...{after[:12]}",
        "commits": [head],
        "head_commit": head,
    }


def signed_request(secret: str, payload: dict[str, Any],
                   event: str = "push") -> tuple[bytes, dict[str, str]]:
    """The exact body and the headers GitHub sends with it."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/seamless-demo",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "X-Hub-Signature-256": sign(secret, body),
    }
    return body, headers
