"""The run page in a real browser (Debian's chromium via Playwright) against a real agent:
the link GitHub got in a commit status opens the page, the stages show, new log lines
arrive while the stage prints, a line permalink opens its line, a tampered or expired
link gets the 403 page, and a secret the stage prints is never in the DOM."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from agent.api.app import create_app
from store.models import NoTargetConfig, PipelineConfig, Role, RunStatus, ServiceConfig
from tests.api.conftest import add_tokens, local_agent
from tests.harness import wait_until
from tests.harness.server import ServerThread
from tests.helpers import free_port
from tests.onboarding.fake_github import FakeGitHub
from tests.runpage.browser import chromium
from tests.runpage.pages import failed_run

SECRET = "pa55-w0rd-of-the-stage-7f3a"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tokens={"ghp_runpage": ["repo"]}).start()
    yield fake
    fake.stop()


def _stage_script(stop_file: Path) -> str:
    """Prints a numbered line every 0.1 s (colours, the secret in three forms) until the
    test creates `stop_file`, then fails the stage."""
    return (
        "i=0; printf '\\033[1;34mrunning the unit tests\\033[0m\\n'; "
        "echo \"key=$API_KEY\"; printf '%s' \"$API_KEY\" | base64; "
        f"while [ ! -f {stop_file} ] && [ $i -lt 600 ]; do i=$((i+1)); "
        "printf 'test_%s \\033[32mok\\033[0m\\n' $i; sleep 0.1; done; "
        "echo 'test_final FAILED: AssertionError: boom' >&2; exit 1")


def test_the_commit_status_link_opens_a_live_page_in_chromium(
        tmp_path: Path, sample_repo: Any, git_daemon: Any, github: FakeGitHub) -> None:
    owner = f"acme{uuid.uuid4().hex[:6]}"
    github.repos.add((owner, "web"))
    repo = sample_repo("web")
    repo_url = git_daemon.publish(repo, name=f"{owner}/web.git")
    port = free_port()
    agent = local_agent(tmp_path / "data", github_token="ghp_runpage",
                        github_api_url=github.url, public_url=f"http://127.0.0.1:{port}")
    tokens = add_tokens(agent.store)
    stop_file = tmp_path / "stop"
    agent.store.create_pipeline(PipelineConfig(name="shop", executor="local",
                                               staging=NoTargetConfig(),
                                               production=NoTargetConfig()))
    agent.store.create_service(ServiceConfig(
        name="web", pipeline="shop", repo_url=repo_url, branch=repo.current_branch,
        secrets={"API_KEY": SECRET}, code_quality_command="true",
        unit_test_command=_stage_script(stop_file), dockerfile=None))
    server = ServerThread(create_app(agent), port=port).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"Authorization": f"Bearer {tokens[Role.deployer]}"}) as api:
            answer = api.post("/api/v1/services/web/trigger", json={"kind": "full"})
            assert answer.status_code == 201, answer.text
            run_id = answer.json()["id"]
        # The link GitHub shows as "Details" next to the check.
        link = wait_until(lambda: next((s["target_url"] for s in github.statuses
                                        if s.get("state") == "pending"), None),
                          timeout=30, what="a pending commit status")
        assert link.startswith(f"{server.url}/runs/{run_id}?exp=")
        wait_until(lambda: agent.store.count_log_lines(run_id, "Unit Test") >= 5,
                   timeout=60, what="the unit tests printing")
        with chromium(viewport={"width": 1200, "height": 900}) as browser:
            page = browser.new_page()
            page.goto(link)
            stages = page.locator("#stages .stage .name").all_inner_texts()
            assert stages == ["Prepare", "Code Quality", "Unit Test", "Build",
                              "Integration Test", "Deploy to Staging", "Deploy to Production"]
            assert "in progress" in page.locator(".stage.current .status").inner_text()
            # New lines arrive while the stage prints: the row count grows, no reload.
            count = page.locator("#lines .l").count()
            # (polled from here: the page's CSP refuses Playwright's eval of a predicate)
            wait_until(lambda: page.locator("#lines .l").count() > count + 10, timeout=20,
                       what="live lines in the page")
            newest = page.locator("#lines .l").last.inner_text()
            assert "ok" in newest
            assert page.locator("#lines span.f2").count() > 10  # colours as spans
            if os.environ.get("SEAMLESS_RUN_PAGE_SCREENSHOT"):  # make screenshots
                page.screenshot(path=str(SCREENSHOTS / "run-page.png"))
            stop_file.touch()
            expect(page.locator("#run-status")).to_contain_text("failed", timeout=60_000)
            assert "failed" in page.locator(".stage.current .status").inner_text()
            # The stages after it: skipped, each saying why (the live stage list).
            skipped = page.locator(".stage.st-skipped")
            expect(skipped).to_have_count(4, timeout=10_000)
            reasons = skipped.locator(".why").all_inner_texts()
            assert len(reasons) == 4 and all(r.startswith("skipped: ") for r in reasons), \
                reasons
            dom = page.content()
            assert SECRET not in dom
            assert base64.b64encode(SECRET.encode()).decode()[:-4] not in dom
            assert "key=" in dom  # the line is there, its value masked

            # A line permalink: open line 3 in a new page, it is the target.
            permalink = page.locator("#L3 a.n").get_attribute("href")
            assert permalink and permalink.endswith("#L3")
            second = browser.new_page()
            second.goto(f"{server.url}/runs/{run_id}{permalink}")
            assert second.locator("#L3:target").count() == 1
            assert second.locator("#L3").is_visible()

            # A finished run's page shows its first error, live stream closed.
            page.reload()
            assert page.locator(".first-error a").count() == 1
            assert page.locator("#lines").get_attribute("data-live") is None
            assert SECRET not in page.content()

            # Tampered and expired links: the 403 page.
            tampered = link[:-1] + ("0" if link[-1] != "0" else "1")
            answer = second.goto(tampered)
            assert answer is not None and answer.status == 403
            assert "does not match" in second.locator("main").inner_text()
            expired = agent.links.sign(run_id, now=time.time() - agent.links.ttl_s - 1)
            answer = second.goto(f"{server.url}/runs/{run_id}?exp={expired['exp']}"
                                 f"&sig={expired['sig']}")
            assert answer is not None and answer.status == 403
            assert "expired" in second.locator("main").inner_text()
        final = agent.store.get_run(run_id)
        assert final.status is RunStatus.failed
    finally:
        stop_file.touch()
        server.stop()
        agent.close()


def test_the_page_fits_a_phone_follows_dark_mode_and_works_without_javascript(
        api: Any) -> None:

    run = failed_run(api.agent.store)
    query = api.agent.links.sign(run.id)
    link = f"{api.url}/runs/{run.id}?exp={query['exp']}&sig={query['sig']}"
    backgrounds = {}
    for scheme in ("light", "dark"):
        with chromium(viewport={"width": 390, "height": 844}, color_scheme=scheme,
                      java_script_enabled=scheme == "light", is_mobile=True) as browser:
            page = browser.new_page()
            assert page.goto(link).status == 200
            # Nothing wider than the phone: the page does not scroll sideways.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert page.locator("#stages .stage").count() == 7
            assert page.locator("#L1200").is_visible() or page.locator("#L1200").count() == 1
            backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
            # Without JavaScript (dark round) the links still page the log.
            page.locator("#older").click()
            expect(page.locator("#L700")).to_have_count(1)  # after the navigation
            assert page.locator("#L1200").count() == 0
    assert backgrounds["light"] == "rgb(255, 255, 255)"
    assert backgrounds["dark"] == "rgb(13, 17, 23)"


def test_a_reader_who_picked_no_stage_follows_the_run_to_its_next_stage(api: Any) -> None:
    from store.db import now
    from store.models import Event, RunKind, StageStatus, Trigger
    from tests.api.conftest import add_service

    store = api.agent.store
    run = store.create_run(add_service(store, "follow").id, trigger=Trigger.push,
                           kind=RunKind.full, sha="c" * 40)
    store.set_run_status(run.id, RunStatus.running)
    store.set_stage_status(run.id, "Prepare", StageStatus.in_progress)
    query = api.agent.links.sign(run.id)
    link = f"{api.url}/runs/{run.id}?exp={query['exp']}&sig={query['sig']}"
    with chromium() as browser:
        page = browser.new_page()
        page.goto(link)
        expect(page.locator(".log h2")).to_contain_text("Prepare")
        picked = browser.new_page()  # this reader chose Prepare: it stays there
        picked.goto(link + "&stage=Prepare")
        expect(picked.locator("#live-note")).to_have_text("live")  # its stream is open
        expect(page.locator("#live-note")).to_have_text("live")
        store.set_stage_status(run.id, "Prepare", StageStatus.success)
        stage = store.set_stage_status(run.id, "Code Quality", StageStatus.in_progress)
        api.agent.bus.publish_event(Event(type="stage", ts=now(), stage=stage))
        expect(page.locator(".log h2")).to_contain_text("Code Quality", timeout=15_000)
        expect(picked.locator(".stage.st-in_progress .name")).to_have_text("Code Quality",
                                                                           timeout=15_000)
        assert "Prepare" in picked.locator(".log h2").inner_text()


def test_another_site_cannot_sign_the_browser_in_with_its_token(api: Any) -> None:
    """Login CSRF: a page on another site posts the sign-in form with the attacker's token;
    chromium sends it (a top-level cross-site POST) and the agent refuses it. The real
    form on the agent's own page signs in."""
    import http.server
    import threading

    run = failed_run(api.agent.store)
    attacker = api.tokens[Role.viewer]
    evil_html = (
        f'<form id="f" method="post" action="{api.url}/login">'
        f'<input name="token" value="{attacker}"><input name="next" value="/runs/{run.id}">'
        '<input name="csrf" value="guessed"></form>'
        '<script>document.getElementById("f").submit()</script>').encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil_html)

        def log_message(self, *args: Any) -> None:
            pass

    evil = http.server.HTTPServer(("127.0.0.1", free_port()), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with chromium() as browser:
            page = browser.new_page()
            # `localhost` is another site than `127.0.0.1` for the browser's SameSite rules.
            with page.expect_navigation(url=f"{api.url}/login", timeout=15_000) as answer:
                page.goto(f"http://localhost:{evil.server_address[1]}/")
            assert answer.value is not None and answer.value.status == 403
            expect(page.locator(".problem")).to_contain_text("sent from another site")
            assert "seamless_token" not in {c["name"] for c in browser.cookies()}
            assert page.goto(f"{api.url}/runs/{run.id}").status == 403  # not signed in
            # The agent's own form (its CSRF token in the page and cookie) signs in.
            page.goto(f"{api.url}/login?next=/runs/{run.id}")
            page.fill("input[name=token]", api.tokens[Role.viewer])
            page.click("button[type=submit]")
            expect(page.locator(".who")).to_contain_text("signed in as viewer-token")
            assert page.url == f"{api.url}/runs/{run.id}"
    finally:
        evil.shutdown()
        evil.server_close()


def _running_unit_test(api: Any, service: str, lines: int) -> int:
    """A running run of a service of its own, its Unit Test in progress with `lines`."""
    from store.models import RunKind, StageStatus, Trigger
    from tests.api.conftest import add_service
    from tests.tui.seed import add_log

    store = api.agent.store
    run = store.create_run(add_service(store, service).id, trigger=Trigger.push,
                           kind=RunKind.full, sha="d" * 40)
    store.set_run_status(run.id, RunStatus.running)
    store.set_stage_status(run.id, "Unit Test", StageStatus.in_progress)
    add_log(store, run.id, "Unit Test", lines)
    return run.id


def _open_live_page(browser: Any, api: Any, run_id: int) -> Any:
    query = api.agent.links.sign(run_id)
    page = browser.new_page()
    page.goto(f"{api.url}/runs/{run_id}?exp={query['exp']}&sig={query['sig']}")
    expect(page.locator("#live-note")).to_have_text("live")
    return page


def test_a_burst_bigger_than_the_bound_keeps_the_tab_at_its_bound(api: Any) -> None:
    """1,500 lines in one flush (what a slow tab gets when it falls behind): they land as
    one chunk, and the tab still keeps only the newest 1,000 rows."""
    run_id = _running_unit_test(api, "burst", 600)
    with chromium() as browser:
        page = _open_live_page(browser, api, run_id)
        log = api.agent.logs.stage_log(run_id, "Unit Test", [])
        for i in range(1500):
            log.write(f"burst {601 + i}")
        log.flush()
        expect(page.locator("#L2100")).to_have_count(1, timeout=30_000)
        numbers = [int(n) for n in page.locator("#lines .l").evaluate_all(
            "rows => rows.map(r => r.id.slice(1))")]
        assert numbers == list(range(1101, 2101))
        older = page.locator("#older").get_attribute("href") or ""
        assert "#L1100" in older


def test_a_long_live_log_keeps_a_bounded_window_of_rows_in_the_tab(api: Any) -> None:
    """3,000 lines arrive live: the tab keeps at most 1,000 rows, numbered without gap or
    repeat up to the newest; "older lines" points just above the first row kept; and
    what left the page is freed (the DOM's node count after a garbage collection)."""
    run_id = _running_unit_test(api, "long", 600)
    with chromium() as browser:
        page = _open_live_page(browser, api, run_id)
        assert page.locator("#lines .l").count() == 500
        log = api.agent.logs.stage_log(run_id, "Unit Test", [])
        for i in range(3000):
            log.write(f"live \x1b[36mline\x1b[0m {601 + i}")
            if i % 100 == 99:
                log.flush()
                time.sleep(0.02)
        log.flush()
        expect(page.locator("#L3600")).to_have_count(1, timeout=30_000)
        numbers = [int(n) for n in page.locator("#lines .l").evaluate_all(
            "rows => rows.map(r => r.id.slice(1))")]
        assert len(numbers) <= 1000 and numbers[-1] == 3600
        assert numbers == list(range(numbers[0], 3601))
        assert page.locator("#L3600").text_content() == "3600live line 3600"
        # The reader stayed at the end: the log followed, the newest row in view.
        box, view = (page.locator(sel).bounding_box() for sel in ("#L3600", "#lines"))
        assert box and view and view["y"] <= box["y"] <= view["y"] + view["height"], (box, view)
        older = page.locator("#older").get_attribute("href") or ""
        assert f"#L{numbers[0] - 1}" in older and f"at={numbers[0] - 400}" in older
        assert page.locator("#line-count").inner_text() == "3,600 lines"
        cdp = page.context.new_cdp_session(page)
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("Performance.enable")
        nodes = next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]
                     if m["name"] == "Nodes")
        # 7 nodes a row here (row, number link and its text, a colour span and 3 texts),
        # the page's own ~200: the 2,600 rows that left (18,000 nodes) are not held.
        assert nodes < 1000 * 7 + 1000, nodes
