"""The few GitHub REST calls Seamless makes: token check, repository hooks, deliveries, statuses.

Works against github.com and GitHub Enterprise (`base_url="https://ghe.example/api/v3"`).
Errors carry GitHub's own message; a 403/404 caused by a missing OAuth scope says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_API_URL = "https://api.github.com"
# Either scope lets a classic token create and delete repository hooks.
HOOK_SCOPES = ("admin:repo_hook", "repo")
WEBHOOK_EVENTS = ["push", "pull_request"]


class GitHubError(RuntimeError):
    """A GitHub API call failed; `message` is GitHub's own text."""

    def __init__(self, status: int, message: str, *, hint: str = "",
                 errors: list[dict[str, Any]] | None = None) -> None:
        self.status = status
        self.message = message
        self.hint = hint
        self.errors = errors or []
        text = f"GitHub answered {status}: {message}"
        super().__init__(f"{text} — {hint}" if hint else text)


class GitHubAuthError(GitHubError):
    """401: the token is wrong, expired or revoked."""


class GitHubPermissionError(GitHubError):
    """403 (or a 404 that GitHub uses to hide a repository from a token that lacks a scope)."""

    def __init__(self, status: int, message: str, *, missing_scopes: list[str],
                 hint: str = "") -> None:
        self.missing_scopes = missing_scopes
        super().__init__(status, message, hint=hint)


class GitHubNotFound(GitHubError):
    """404: no such repository, hook or delivery (or the token may not see it)."""


class GitHubValidationError(GitHubError):
    """422: GitHub refused the request body."""


@dataclass
class TokenCheck:
    login: str
    # None: GitHub reported no scopes header (fine-grained token or GitHub App token).
    scopes: list[str] | None
    kind: str  # "classic" | "fine-grained"
    can_manage_hooks: bool | None  # None: cannot be known from GitHub's answer
    advice: str = ""


@dataclass
class Delivery:
    id: int
    guid: str
    event: str
    action: str | None
    status: str
    status_code: int
    delivered_at: str
    redelivery: bool = False
    response: dict[str, Any] = field(default_factory=dict)  # get_delivery only

    @property
    def failed(self) -> bool:
        return not 200 <= self.status_code < 300


_SCP_LIKE = re.compile(r"^[\w.-]+@(?P<host>[\w.-]+):(?P<path>.+)$")


def web_host(api_url: str) -> str:
    """github.com for the public API, else the Enterprise host (https://ghe.example/api/v3)."""
    host = urlsplit(api_url).hostname or ""
    return "github.com" if host == "api.github.com" else host


def parse_github_repo(url: str, host: str = "github.com") -> tuple[str, str] | None:
    """(owner, repo) of an https, ssh:// or git@host: URL on `host`; None for anything else."""
    match = _SCP_LIKE.match(url)
    if match:
        url_host, path = match["host"], match["path"]
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http", "ssh", "git"):
            return None
        url_host, path = parts.hostname or "", parts.path
    if url_host.lower() != host.lower():
        return None
    segments = [s for s in path.strip("/").split("/") if s]
    if len(segments) != 2:
        return None
    owner, repo = segments
    repo = repo.removesuffix(".git")
    if not owner or not repo:
        return None
    return owner, repo


def _scopes(response: httpx.Response, header: str) -> list[str] | None:
    if header not in response.headers:
        return None
    return [s.strip() for s in response.headers[header].split(",") if s.strip()]


class GitHubClient:
    def __init__(self, token: str, base_url: str = DEFAULT_API_URL, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout,
            headers={"Authorization": f"Bearer {token}",
                     "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": "2022-11-28",
                     "User-Agent": "seamless-agent"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GitHubError(0, f"cannot reach {self.base_url}: {exc}",
                              hint="check the GitHub API URL and the network") from exc
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> GitHubError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        message = str(body.get("message") or response.reason_phrase or "error")
        accepted = _scopes(response, "X-Accepted-OAuth-Scopes") or []
        have = _scopes(response, "X-OAuth-Scopes")
        # A classic token lacking the scope gets 403, or 404 for a repo it may not administer.
        if status in (403, 404) and accepted and have is not None and not set(accepted) & set(have):
            return GitHubPermissionError(
                status, message, missing_scopes=accepted,
                hint=(f"the token's scopes ({', '.join(have) or 'none'}) lack one of: "
                      f"{', '.join(accepted)}; edit the token at "
                      "https://github.com/settings/tokens and add it"))
        if status == 401:
            return GitHubAuthError(status, message, hint="the token is wrong, expired or revoked;"
                                   " create a new one and run `seamless-agent init` again")
        if status == 403:
            return GitHubPermissionError(
                status, message, missing_scopes=[],
                hint="the token may not do this here (fine-grained tokens need the repository"
                     " selected and 'Webhooks: read and write'); rate limits also answer 403")
        if status == 404:
            return GitHubNotFound(status, message, hint="check owner/repo, or the token cannot"
                                  " see this repository")
        if status == 422:
            return GitHubValidationError(status, message, errors=list(body.get("errors") or []))
        return GitHubError(status, message)

    # -- the calls --------------------------------------------------------------------------
    def check_token(self) -> TokenCheck:
        response = self._request("GET", "/user")
        login = str(response.json().get("login", ""))
        scopes = _scopes(response, "X-OAuth-Scopes")
        if scopes is None:
            return TokenCheck(
                login=login, scopes=None, kind="fine-grained", can_manage_hooks=None,
                advice=("GitHub does not report a fine-grained token's permissions; make sure it"
                        " covers your repositories with 'Webhooks: read and write',"
                        " 'Commit statuses: read and write' and 'Contents: read'"))
        ok = bool(set(scopes) & set(HOOK_SCOPES))
        advice = "" if ok else (
            f"scopes are {', '.join(scopes) or 'none'}; creating webhooks needs "
            "'admin:repo_hook' (or 'repo', which private repositories need anyway): "
            "edit the token at https://github.com/settings/tokens")
        return TokenCheck(login=login, scopes=scopes, kind="classic", can_manage_hooks=ok,
                          advice=advice)

    def list_hooks(self, owner: str, repo: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/repos/{owner}/{repo}/hooks").json())

    def get_hook(self, owner: str, repo: str, hook_id: int) -> dict[str, Any]:
        return dict(self._request("GET", f"/repos/{owner}/{repo}/hooks/{hook_id}").json())

    def create_hook(self, owner: str, repo: str, url: str, secret: str) -> int:
        """Create the hook, or update the one GitHub says already exists for `url`."""
        config = {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"}
        body = {"name": "web", "active": True, "events": WEBHOOK_EVENTS, "config": config}
        try:
            response = self._request("POST", f"/repos/{owner}/{repo}/hooks", json=body)
            return int(response.json()["id"])
        except GitHubValidationError as exc:
            if "already exists" not in str(exc.errors) + exc.message:
                raise
        existing = next((h for h in self.list_hooks(owner, repo)
                         if h.get("config", {}).get("url") == url), None)
        if existing is None:
            raise GitHubError(422, f"GitHub says a hook for {url} exists but none is listed")
        hook_id = int(existing["id"])
        self._request("PATCH", f"/repos/{owner}/{repo}/hooks/{hook_id}",
                      json={"active": True, "events": WEBHOOK_EVENTS, "config": config})
        return hook_id

    def delete_hook(self, owner: str, repo: str, hook_id: int) -> None:
        self._request("DELETE", f"/repos/{owner}/{repo}/hooks/{hook_id}")

    def list_deliveries(self, owner: str, repo: str, hook_id: int,
                        per_page: int = 30) -> list[Delivery]:
        response = self._request("GET", f"/repos/{owner}/{repo}/hooks/{hook_id}/deliveries",
                                 params={"per_page": per_page})
        return [_delivery(d) for d in response.json()]

    def get_delivery(self, owner: str, repo: str, hook_id: int, delivery_id: int) -> Delivery:
        path = f"/repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}"
        return _delivery(self._request("GET", path).json())

    def create_commit_status(self, owner: str, repo: str, sha: str, state: str,
                             target_url: str | None, description: str,
                             context: str = "seamless") -> None:
        if state not in ("error", "failure", "pending", "success"):
            raise ValueError(f"invalid commit status state {state!r}")
        body = {"state": state, "description": description[:140], "context": context}
        if target_url:
            body["target_url"] = target_url
        self._request("POST", f"/repos/{owner}/{repo}/statuses/{sha}", json=body)


def _delivery(data: dict[str, Any]) -> Delivery:
    return Delivery(id=int(data["id"]), guid=str(data.get("guid", "")),
                    event=str(data.get("event", "")), action=data.get("action"),
                    status=str(data.get("status", "")), status_code=int(data.get("status_code", 0)),
                    delivered_at=str(data.get("delivered_at", "")),
                    redelivery=bool(data.get("redelivery", False)),
                    response=dict(data.get("response") or {}))
