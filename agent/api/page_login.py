"""Sign in to the run pages with an API token (the form sets the token cookie), and sign
out. The form carries a CSRF token: a random value both in a SameSite=Strict cookie and
in the form (double submit), so a page on another site cannot sign a browser in with
the attacker's token (login CSRF) — a cross-site POST carries no such cookie, and its
Origin / Sec-Fetch-Site name the other site anyway."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agent.api.page_access import COOKIE
from agent.api.run_page import SECURITY_HEADERS, PageRoute, page

router = APIRouter(include_in_schema=False, route_class=PageRoute)

CSRF_COOKIE = "seamless_login_csrf"
CSRF_FIELD = "csrf"
FORM_TTL_S = 3600
REFUSED = ("This sign-in form expired or was sent from another site: paste the token "
           "into this form again.")


def _safe_next(target: str | None) -> str:
    """Only a path on this agent: never `//elsewhere` or a scheme."""
    if target and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return "/login"


def _form(request: Request, target: str, status: int = 200,
          problem: str | None = None) -> HTMLResponse:
    """The sign-in form with a fresh CSRF token, in the form and in its cookie."""
    nonce = secrets.token_urlsafe(32)
    answer = page(request, "login.html", status, next=target, problem=problem, csrf=nonce)
    answer.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="strict", path="/login",
                      secure=request.url.scheme == "https", max_age=FORM_TTL_S)
    return answer


def from_this_site(request: Request) -> bool:
    """False when the browser says the request came from another site or origin (a
    missing header — an old browser, a script — is judged by the CSRF token alone)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin in (None, "null"):  # "null": our pages' no-referrer policy hides it
        return True
    ours = {request.headers.get("host", "")}
    public_url = request.app.state.agent.config.public_url
    if public_url:
        ours.add(urlsplit(public_url).netloc)
    return urlsplit(origin).netloc in ours


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _form(request, _safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    sent = (form.get(CSRF_FIELD) or [""])[0]
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not (expected and hmac.compare_digest(sent.encode(), expected.encode())
            and from_this_site(request)):
        return _form(request, target, 403, REFUSED)
    info = request.app.state.agent.store.authenticate(token) if token else None
    if info is None:
        return _form(request, target, 401, "That token is unknown or revoked.")
    answer = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                      secure=request.url.scheme == "https", max_age=7 * 24 * 3600)
    answer.delete_cookie(CSRF_COOKIE, path="/login")  # one form, one sign-in
    return answer


@router.post("/logout")
def logout(request: Request) -> Response:
    if not from_this_site(request):  # another site may not sign the reader out either
        return page(request, "refused.html", 403, title="Not signed out",
                    detail="The sign-out came from another site.", login=None)
    answer = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
    answer.delete_cookie(COOKIE, path="/")
    return answer
