"""The run page over plain HTTP (what a browser with JavaScript off gets): signed links,
the 403 page, tokens and the sign-in cookie, the rendered log, no secret on the page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from agent.run_links import RunLinks, rotate_link_keys
from store.models import DeploymentKind, DeploymentStatus, LogStream, Role, TestOutcome
from store.tests import Attempt, CaseRecord
from tests.api.conftest import LiveApi
from tests.runpage.pages import SECRET, failed_run, lines


def _page(api: LiveApi, url: str, **kw: object) -> httpx.Response:
    with httpx.Client(base_url=api.url, timeout=10, follow_redirects=False) as c:
        return c.get(url, **kw)  # type: ignore[arg-type]


def _href(run_id: int, href: str) -> str:
    """A link of the page (relative: `?…`) as the browser resolves it."""
    return f"/runs/{run_id}" + href.replace("&amp;", "&")


def _signed(api: LiveApi, run_id: int) -> str:
    links: RunLinks = api.agent.links
    return urlsplit(links.url(run_id)).path + "?" + urlsplit(links.url(run_id)).query


def test_a_signed_link_opens_the_finished_run_without_a_token(api: LiveApi) -> None:
    run = failed_run(api.agent.store)
    r = _page(api, _signed(api, run.id))
    assert r.status_code == 200, r.text
    html = r.text
    assert "shop-web" in html and f"#{run.number}" in html
    assert "0123456" in html and "Fix the cart" in html and "Ada Lovelace" in html
    assert 'href="https://github.com/acme/shop-web/commit/0123456789abcdef' in html
    for stage in ("Prepare", "Code Quality", "Unit Test", "Build", "Integration Test",
                  "Deploy to Staging", "Deploy to Production"):
        assert f'<span class="name">{stage}</span>' in html
    assert "skipped: an earlier stage failed" in html
    # The failed stage's tail, numbered, colours as classes, the first error marked.
    assert 'id="L1200"' in html and 'id="L701"' in html and 'id="L700"' not in html
    assert '<span class="f2">ok</span>' in html
    assert re.search(r'href="\?stage=Unit\+Test&amp;at=700&amp;exp=\d+&amp;sig=[0-9a-f]{64}#L700"'
                     r'>first error: line 700<', html)
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in html  # no inline script: the CSP would refuse it anyway


def test_a_permalink_and_the_older_pages_show_the_line_with_its_number(api: LiveApi) -> None:
    run = failed_run(api.agent.store)
    signed = _signed(api, run.id)
    first = _page(api, signed).text
    error_link = re.search(r'href="([^"]*at=700[^"]*)#L700"', first)
    assert error_link
    at = _page(api, _href(run.id, error_link.group(1))).text
    assert 'class="l err" id="L700"' in at
    assert "AssertionError: total was 41" in at
    assert 'id="L600"' in at and 'id="L599"' not in at  # 100 lines of context above
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older
    page = _page(api, _href(run.id, older.group(1))).text
    numbers = [int(n) for n in re.findall(r'id="L(\d+)"', page)]
    assert numbers == list(range(201, 701))


def test_tampered_expired_and_other_runs_links_get_the_403_page(api: LiveApi) -> None:
    store = api.agent.store
    run, other = failed_run(store), failed_run(store)
    links: RunLinks = api.agent.links
    query = links.sign(run.id)
    tampered = dict(query, sig=query["sig"][:-1] + ("0" if query["sig"][-1] != "0" else "1"))
    expired = links.sign(run.id, now=time.time() - links.ttl_s - 5)
    cases = {
        "tampered": (f"/runs/{run.id}", tampered, "signature does not match"),
        "expired": (f"/runs/{run.id}", expired, "expired"),
        "longer expiry": (f"/runs/{run.id}", dict(query, exp=str(int(query["exp"]) + 99)),
                          "signature does not match"),
        "another run": (f"/runs/{other.id}", query, "signature does not match"),
        "no link": (f"/runs/{run.id}", {}, "Sign in"),
        "live stream": (f"/runs/{run.id}/live", dict(tampered, stage="Build"),
                        "signature does not match"),
    }
    for name, (path, params, words) in cases.items():
        r = _page(api, path, params=params)
        assert r.status_code == 403, name
        assert r.headers["content-type"].startswith("text/html"), name
        assert words in r.text, name
        assert "Unit Test" not in r.text, name
    # The API itself stays behind its tokens, whatever the link.
    assert _page(api, f"/api/v1/runs/{run.id}", params=query).status_code == 401


def test_a_rotated_key_keeps_unexpired_links_and_signs_new_ones(api: LiveApi) -> None:
    run = failed_run(api.agent.store)
    links: RunLinks = api.agent.links
    before = links.sign(run.id)
    keys = rotate_link_keys(links.key_path, links.ttl_s)
    after = links.sign(run.id)
    assert after["sig"] != before["sig"] and len(keys) == 2
    assert _page(api, f"/runs/{run.id}", params=before).status_code == 200
    assert _page(api, f"/runs/{run.id}", params=after).status_code == 200
    # Once the old key retired more than a link's lifetime ago, rotation drops it.
    rotate_link_keys(links.key_path, links.ttl_s, at=time.time() + links.ttl_s + 10)
    assert _page(api, f"/runs/{run.id}", params=before).status_code == 403
    assert oct(links.key_path.stat().st_mode & 0o777) == "0o600"


def _sign_in(browser: httpx.Client, token: str, target: str, **headers: str
             ) -> httpx.Response:
    """What a browser does: open the sign-in form (its CSRF cookie and field), post it."""
    form = browser.get("/login", params={"next": target})
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert form.status_code == 200 and csrf, form.text
    return browser.post("/login", data={"token": token, "next": target, "csrf": csrf.group(1)},
                        headers=headers, follow_redirects=False)


def test_a_token_by_header_or_sign_in_cookie_opens_any_run(api: LiveApi) -> None:
    run = failed_run(api.agent.store)
    viewer = api.tokens[Role.viewer]
    r = _page(api, f"/runs/{run.id}", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 200 and "signed in as viewer-token (viewer)" in r.text
    assert "sig=" not in r.text  # a signed-in reader's links carry no signature
    with httpx.Client(base_url=api.url, timeout=10) as browser:
        refused = _sign_in(browser, "nope", f"/runs/{run.id}")
        assert refused.status_code == 401 and "unknown or revoked" in refused.text
        ok = _sign_in(browser, viewer, f"/runs/{run.id}")
        assert ok.status_code == 303 and ok.headers["location"] == f"/runs/{run.id}"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get(f"/runs/{run.id}").status_code == 200
        evil = _sign_in(browser, viewer, "//evil.example/x")
        assert evil.headers["location"] == "/login"
        browser.post("/logout")
        assert browser.get(f"/runs/{run.id}").status_code == 403


def test_a_sign_in_without_this_forms_csrf_token_or_from_another_site_is_refused(
        api: LiveApi) -> None:
    run = failed_run(api.agent.store)
    viewer = api.tokens[Role.viewer]
    target = f"/runs/{run.id}"
    with httpx.Client(base_url=api.url, timeout=10) as browser:
        form = browser.get("/login")
        csrf_cookie = form.headers["set-cookie"].lower()
        assert "seamless_login_csrf=" in csrf_cookie and "samesite=strict" in csrf_cookie
        assert "httponly" in csrf_cookie
        attempts = {  # name: (form fields, whether the browser sends the CSRF cookie)
            "another site's form (no cookie: SameSite=Strict)": (
                {"token": viewer, "next": target, "csrf": "forged"}, False),
            "no csrf field": ({"token": viewer, "next": target}, True),
            "a different value": ({"token": viewer, "next": target, "csrf": "x" * 43}, True),
        }
        for name, (fields, with_cookie) in attempts.items():
            if not with_cookie:
                browser.cookies.clear()
            r = browser.post("/login", data=fields, follow_redirects=False)
            assert r.status_code == 403, name
            assert "sent from another site" in r.text, name
            assert "seamless_token" not in r.headers.get("set-cookie", ""), name
            assert browser.get(target).status_code == 403, name  # still not signed in
            browser.get("/login")  # a fresh form for the next attempt
        # The right token pair, but the browser says the POST came from another site.
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            r = _sign_in(browser, viewer, target, **headers)
            assert r.status_code == 403 and "seamless_token" not in r.headers.get(
                "set-cookie", ""), headers
        same_site = _sign_in(browser, viewer, target, Origin=api.url,
                             **{"Sec-Fetch-Site": "same-origin"})
        assert same_site.status_code == 303
        assert browser.get(target).status_code == 200
        # Signing out from another site is refused too; from the page it works.
        assert browser.post("/logout", headers={"Origin": "http://evil.example"}
                            ).status_code == 403
        assert browser.get(target).status_code == 200
        browser.post("/logout", headers={"Origin": api.url})
        assert browser.get(target).status_code == 403


def test_no_secret_value_reaches_the_page_whatever_the_store_holds(api: LiveApi) -> None:
    store = api.agent.store
    run = failed_run(store, message=f"commit that leaks {SECRET} in its message")
    # Lines stored raw (the log writer would have masked them): the page masks again.
    store.insert_log_lines(lines(run.id, "Unit Test", [
        f"token={SECRET}", f"\x1b[31m{SECRET}\x1b[0m", f"<script>alert('{SECRET}')</script>"],
        LogStream.stderr))
    html = _page(api, _signed(api, run.id)).text
    assert SECRET not in html
    assert "&lt;script&gt;" in html and "<script>alert" not in html
    assert "commit that leaks" in html


def test_the_commit_status_links_to_the_signed_page(api: LiveApi) -> None:
    run = failed_run(api.agent.store)
    url = api.agent.links.url(run.id)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{api.agent.config.url}/runs/{run.id}?")
    assert set(query) == {"exp", "sig"}
    days = (int(query["exp"][0]) - time.time()) / 86400
    assert 29.9 < days <= 30


def test_links_rotate_key_keeps_links_signed_before_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    links = RunLinks(data / "link.key", "http://127.0.0.1:8787")
    before = links.sign(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
    result = subprocess.run([str(Path(sys.executable).parent / "seamless-agent"), "links",
                             "rotate-key", "--data-dir", str(data)], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "1 older key(s) kept" in result.stdout
    assert links.sign(7)["sig"] != before["sig"]  # the running side picked up the new key
    assert links.check(7, before["exp"], before["sig"])


def test_test_results_show_with_the_failing_tests_output_in_the_log(api: LiveApi) -> None:
    store = api.agent.store
    run = failed_run(store)
    cases = [CaseRecord("tests.test_cart", "test_total", TestOutcome.failed, 0.3,
                        "AssertionError: total was 41", "assert total == 42"),
             *(CaseRecord("tests.test_shop", f"test_{i}", TestOutcome.passed, 0.01)
               for i in range(30))]
    ids = store.record_tests(Attempt(run.id, "Unit Test", 1, run.service_id, run.sha, 2.0),
                             cases)
    output_line = store.log_page(run.id, stage="Unit Test", limit=700).lines[699]  # line 700
    store.set_test_log_lines(run.id, "Unit Test", 1,
                             {ids[("tests.test_cart", "test_total")]: output_line.id})
    html = _page(api, _signed(api, run.id)).text
    assert "<h2>Tests</h2>" in html
    assert re.search(r"Unit Test</b>:\s*<span class=\"st-failed\">1 failed</span> · 30 passed",
                     html)
    assert "tests.test_cart::test_total" in html and "AssertionError: total was 41" in html
    output = re.search(r'href="([^"]*line=[^"]*)">output in the log', html)
    assert output
    moved = _page(api, _href(run.id, output.group(1)))  # opens the log at that line
    assert moved.status_code == 303
    assert "at=700" in moved.headers["location"] and moved.headers["location"].endswith("#L700")
    assert 'id="L700"' in _page(api, moved.headers["location"]).text


def test_a_live_stream_ends_soon_after_its_token_is_revoked(api: LiveApi) -> None:
    store = api.agent.store
    run = failed_run(store)
    token, info = store.create_token("phone", Role.viewer)
    seen: list[str] = []
    with httpx.Client(base_url=api.url, timeout=10) as c, c.stream(
            "GET", f"/runs/{run.id}/live", params={"stage": "Unit Test"},
            headers={"Authorization": f"Bearer {token}"}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        started = time.monotonic()
        for line in stream.iter_lines():
            seen.append(line)
            if line.startswith("event: lines") and not any("revoked" in s for s in seen):
                store.revoke_token(info.id)
                seen.append("revoked")
                revoked_at = time.monotonic()
            if line == "event: refused" or time.monotonic() - started > 8:
                break
    assert "event: refused" in seen
    assert time.monotonic() - revoked_at < 3
    assert any('id="L1200"' in s for s in seen)  # the backlog came first, numbered


def test_the_runs_deployments_show_with_their_outcome(api: LiveApi) -> None:
    store = api.agent.store
    run = failed_run(store)
    staging = store.create_deployment(service_id=run.service_id, environment="staging",
                                      sha=run.sha, image="shop-web:0123456",
                                      kind=DeploymentKind.deploy, run_id=run.id)
    store.finish_deployment(staging.id, DeploymentStatus.failed,
                            error=f"health check answered 500: {SECRET}")
    html = _page(api, _signed(api, run.id)).text
    assert "<h2>Deployments</h2>" in html
    assert re.search(r"<td>staging</td><td class=\"st-failed\">failed</td>"
                     r"<td><code>shop-web:0123456</code></td>", html)
    assert "health check answered 500" in html and SECRET not in html


def test_a_bad_parameter_gets_a_page_naming_it_and_the_api_a_json_answer(api: LiveApi) -> None:
    run = failed_run(api.agent.store)
    query = api.agent.links.sign(run.id)
    unit = "Unit Test"
    cases = {  # (path, params, status, words on the page)
        "at=abc": (f"/runs/{run.id}", dict(query, at="abc"), 400,
                   "at=&#39;abc&#39; is not a line number"),
        "at=0": (f"/runs/{run.id}", dict(query, stage=unit, at="0"), 400, "at=&#39;0&#39;"),
        "before": (f"/runs/{run.id}", dict(query, before="notaulid"), 400,
                   "before=&#39;notaulid&#39; is not a log line&#39;s id"),
        "after": (f"/runs/{run.id}", dict(query, after="x" * 26), 400, "after="),
        "stage": (f"/runs/{run.id}", dict(query, stage="nope"), 404,
                  "stage=&#39;nope&#39; is not a stage"),
        "line without stage": (f"/runs/{run.id}", dict(query, line="0" * 26), 400,
                               "needs stage="),
        "unknown line": (f"/runs/{run.id}", dict(query, stage=unit, line="0" * 26), 404,
                         "has no such line"),
        "run id": ("/runs/abc", {}, 404, "&#39;abc&#39; is not a run number"),
        "huge run id": ("/runs/99999999999999999999", {}, 404, "out of range"),
        "live stage": (f"/runs/{run.id}/live", dict(query, stage="nope"), 404,
                       "stage=&#39;nope&#39; is not a stage"),
        "live missing stage": (f"/runs/{run.id}/live", query, 400, "stage is missing"),
        "live n": (f"/runs/{run.id}/live", dict(query, stage=unit, n="-3"), 400,
                   "n=&#39;-3&#39; is not a line number"),
        "exp": (f"/runs/{run.id}", dict(query, exp="abc"), 403,
                "exp=&#39;abc&#39; is not a unix time"),
        "no sig": (f"/runs/{run.id}", {"exp": query["exp"]}, 403, "lacks its signature (sig=)"),
    }
    viewer = {"Authorization": f"Bearer {api.tokens[Role.viewer]}"}
    for name, (path, params, status, words) in cases.items():
        r = _page(api, path, params=params, headers=viewer if "huge" in name else {})
        assert r.status_code == status, (name, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), name
        assert words in r.text, (name, r.text[:600])
        assert "Unit Test line" not in r.text and 'id="L' not in r.text, name
    # The API's log route answers JSON naming the field and what it wants.
    with api.client(Role.viewer) as c:
        bad = c.get(f"/api/v1/runs/{run.id}/logs", params={"before": "notaulid"})
        assert bad.status_code == 422 and bad.json()["detail"] == [
            {"field": "before", "message": "not a log line's id (26 characters, a ULID)"}]
        bad = c.get(f"/api/v1/runs/{run.id}/logs", params={"stage": "nope"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "stage"
