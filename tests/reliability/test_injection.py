"""Hostile strings everywhere a user or a pusher controls text: rejected where they name
things, stored verbatim where they are data, never executed on the host, shown safely."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from seamless_tui.ansi import plain, sanitize
from seamless_tui.fmt import first_line
from store.models.repos import repo_key
from tests.reliability.conftest import svc_name
from tests.reliability.served import ServedAgent, post_push, push_payload, summary

MARKER = Path("/tmp") / f"seamless-pwned-{uuid.uuid4().hex}"
HOSTILE = [f"$(touch {MARKER})", f"`touch {MARKER}`", f"x; touch {MARKER}", "a\nb", "a\rb",
           "\x1b[31mred\x1b[0m", "\x1b]0;title\x07", "../x", "../../etc/passwd", "x/../..",
           "a b", "a|b", "a&&b", "-rf", "x" * 5000, "", "null\0byte", "é"]
BAD_NAMES = HOSTILE + ["UPPER", "-leading-dash", "a" * 64, "."]
BAD_BRANCHES = [b for b in HOSTILE if b not in ("é",)] + ["a..b", "/abs", "trailing/", "x.",
                                                          "--upload-pack=touch /tmp/x"]
MESSAGE = (f"fix: $(touch {MARKER}) and `touch {MARKER}`; touch {MARKER} && rm -rf /\n"
           "\x1b[2J\x1b[31mRED\x1b[0m \x1b]0;owned\x07 tab\there \u202eevil\n" + "long " * 300)


@pytest.mark.slow
def test_hostile_strings_are_rejected_stored_verbatim_and_never_run(serve, sample_repo) -> None:
    repo = sample_repo("inject")
    agent: ServedAgent = serve()
    agent.add_pipeline("shop")
    with agent.client() as api:
        for bad in BAD_NAMES:
            body = {"name": bad, "pipeline": "shop", "repo_url": repo.url}
            assert api.post("/api/v1/services", json=body).status_code == 422, repr(bad)
            assert api.post("/api/v1/pipelines", json={"name": bad}).status_code == 422
        for bad in BAD_BRANCHES:
            body = {"name": svc_name("b"), "pipeline": "shop", "repo_url": repo.url,
                    "branch": bad}
            assert api.post("/api/v1/services", json=body).status_code == 422, repr(bad)
        for bad in (f"{repo.url}; touch {MARKER}", f"--upload-pack=touch {MARKER}",
                    f"file:///x\ntouch {MARKER}"):
            body = {"name": svc_name("r"), "pipeline": "shop", "repo_url": bad}
            assert api.post("/api/v1/services", json=body).status_code == 422, repr(bad)

    # a stage that tries to write outside its workspace changes only its own container
    escape = (f"touch {MARKER}; echo owned > /etc/motd; mkdir -p /tmp/x && touch /tmp/x/y; "
              f"cd /workspace && echo inside > written-by-stage && cat /etc/motd")
    name = svc_name("inject")
    agent.add_service(name, "shop", repo.url, webhook_secret="s3cret-hook",
                      unit_test_command=escape)
    with agent.client() as api:
        for bad in BAD_BRANCHES:
            resp = api.post(f"/api/v1/services/{name}/trigger",
                            json={"branch": bad, "sha": repo.head_sha})
            assert 400 <= resp.status_code < 500, (repr(bad), resp.status_code, resp.text)
    assert agent.runs() == []

    pushed = post_push(agent, "s3cret-hook", push_payload(repo.url, repo.head_sha,
                                                          message=MESSAGE))
    assert pushed.status_code == 200, pushed.text
    run = agent.wait_run(pushed.json()["runs"][0]["id"], timeout=90)
    assert run["status"] == "success", summary(run)
    assert run["message"] == MESSAGE[:2000]  # the webhook keeps the first 2,000 characters
    assert not MARKER.exists()
    assert "owned" in agent.log_lines(run["id"], "Unit Test")  # /etc/motd of the container
    assert Path("/etc/motd").read_text() != "owned\n" if Path("/etc/motd").exists() else True

    # the workspace the stage wrote to lives under the data dir, named by repository and sha
    data = agent.data_dir.resolve()
    written = list(data.glob(f"workspaces/{repo_key(repo.url)}/*/written-by-stage"))
    assert len(written) == 1 and data in written[0].resolve().parents
    assert written[0].parent.name == run["sha"]

    # what the TUI draws of it: no escape sequence that moves the cursor or retitles
    shown_cells = [first_line(run["message"], 60), plain(sanitize(run["message"])),
                   first_line("\x1b]0;owned\x07\x1b[2J\x1b[Hfix \x1b[31mred\x1b[0m", 60)]
    for shown in shown_cells:
        assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown, repr(shown)
    assert sanitize("\x1b[31mred\x1b[0m") == "\x1b[31mred\x1b[0m"  # colours are kept
    for hostile in ("\x1b[2J\x1b[H", "\x1b]0;owned\x07", "\x1b[?1049h", "a\x08\x08b"):
        assert "\x1b" not in plain(sanitize(hostile)) and "\x08" not in sanitize(hostile)
    assert httpx.get(f"{agent.url}/healthz").status_code == 200
    assert not MARKER.exists()
