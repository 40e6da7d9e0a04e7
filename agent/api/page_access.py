"""Who may open a run page: a signed link opens its own run (page, log, live stream)
and nothing else; a token — a bearer header, or the cookie the sign-in form sets —
opens every run its role can read (viewer and up)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import Request

from agent.run_links import LinkRefused
from store.models import ApiToken, Role

COOKIE = "seamless_token"


@dataclass(frozen=True)
class Access:
    run_id: int
    token: ApiToken | None = None  # signed in
    exp: str | None = None  # opened by a signed link: carried on every link of the page
    sig: str | None = None

    def query(self, **params: object) -> str:
        """`?…` for a link to this run's pages, keeping the signature when there is one."""
        values = {k: str(v) for k, v in params.items() if v is not None}
        if self.token is None and self.sig:
            values.update(exp=self.exp or "", sig=self.sig)
        return "?" + urlencode(values) if values else ""


class PageRefused(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def request_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(COOKIE) or None


def signed_in(request: Request) -> ApiToken | None:
    token = request_token(request)
    if not token:
        return None
    info = request.app.state.agent.store.authenticate(token)
    if info is None or not info.role.allows(Role.viewer):
        return None
    return info  # type: ignore[no-any-return]


def check_access(request: Request, run_id: int) -> Access:
    """Access to run `run_id`, or PageRefused (403) saying why."""
    token = signed_in(request)
    if token is not None:
        return Access(run_id, token=token)
    exp, sig = request.query_params.get("exp"), request.query_params.get("sig")
    if not sig and not exp:
        raise PageRefused(403, "Sign in to see this run",
                          "Open the run from its link (the commit status's Details on "
                          "GitHub, `seamless-agent runs N --url`, or the TUI), or sign in "
                          "with an API token.")
    try:
        request.app.state.links.check(run_id, exp, sig)
    except LinkRefused as exc:
        raise PageRefused(403, "This link does not open the run", str(exc)) from None
    return Access(run_id, exp=exp, sig=sig)
