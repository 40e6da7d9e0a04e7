"""A secret printed in pieces or disguised never reaches a user: not in the stage log,
not in errors, run lists, deployments, /ws/events or notifications (#21 item 4)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.reliability.conftest import serve, svc_name  # noqa: F401  (the fixture)
from tests.reliability.served import ServedAgent, stage, summary
from tests.security.leakscan import leaks

SECRET = "Zq7-Lima-Bravo-4417-Xray"
PEM = """-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj
MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu
NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ
-----END PRIVATE KEY-----"""

# The stage derives each disguise itself from its secret env; the command holds none.
LEAK_SCRIPT = r"""
S="$API_KEY"
echo "across lines: ${S:0:9}"
echo "${S:9} <- rest"
printf 'across streams: %s\n' "${S:0:11}"
sleep 0.1
printf '%s <- rest on stderr\n' "${S:11}" >&2
printf 'coloured: '
i=0; while [ $i -lt ${#S} ]; do printf '\033[3%dm%s' $((i % 7)) "${S:$i:1}"; i=$((i+1)); done
printf '\033[0m\n'
printf 'hex: '; printf %s "$S" | od -An -v -tx1 | tr -d ' \n'; echo
echo 'base64, wrapped at 76 columns:'
printf '%050d%s%s' 0 "$S" "$S" | base64
echo 'a key, line by line:'
printf '%s\n' "$PEM_KEY" | while read -r line; do echo "$line"; done
echo done
"""


def _all_lines(agent: ServedAgent, run_id: int, stages: list[str]) -> list[str]:
    return [line for name in stages for line in agent.log_lines(run_id, name)]


@pytest.mark.docker
def test_a_secret_printed_in_pieces_shows_only_as_masks_in_the_stage_log(
        serve, sample_repo) -> None:  # noqa: F811
    repo = sample_repo("pieces")
    repo.commit("a script that prints its secrets", {"leak.sh": LEAK_SCRIPT})
    agent: ServedAgent = serve()
    agent.add_pipeline("shop")
    name = svc_name("pieces")
    agent.add_service(name, "shop", repo.url, unit_test_command="sh leak.sh",
                      secrets={"API_KEY": SECRET, "PEM_KEY": PEM})
    run = agent.wait_run(agent.trigger(name, repo.head_sha, kind="partial")["id"], timeout=120)
    assert run["status"] == "success", summary(run)

    lines = agent.log_lines(run["id"], "Unit Test")
    text = "\n".join(lines)
    assert "done" in lines, text
    assert leaks(text, [SECRET, PEM]) == [], text
    for printed in ("across lines:", "<- rest", "across streams:", "coloured:", "hex:"):
        assert any(printed in line and "********" in line for line in lines), (
            printed, [line for line in lines if "coloured" not in line][:8])
    # The stderr line may land anywhere after its stdout neighbours: two pipes, as in a
    # terminal, have no order between them (seen under load).
    stdout = [line for line in lines if "<- rest on stderr" not in line]
    key = stdout.index("a key, line by line:")
    assert stdout[key + 1:key + 6] == ["********"] * 5, text


class _Capture(BaseHTTPRequestHandler):
    bodies: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        self.bodies.append(self.rfile.read(length).decode(errors="replace"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slack() -> Iterator[tuple[str, list[str]]]:
    """A Slack-compatible webhook on loopback that keeps what it was sent."""
    bodies: list[str] = []
    handler = type("Capture", (_Capture,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", bodies
    server.shutdown()


@pytest.mark.docker
def test_a_failed_health_check_answering_the_secret_shows_only_masks_everywhere(
        serve, sample_repo, slack) -> None:  # noqa: F811
    hook, sent = slack
    repo = sample_repo("healthleak")
    # The app answers its health check with its configuration: the secret included.
    sha = repo.commit("health page shows the config", {"app/health": f"db={SECRET}\n"})
    agent: ServedAgent = serve()
    agent.add_pipeline("shop", staging={"kind": "docker"}, notify_slack_webhook_url=hook)
    name = svc_name("healthleak")
    agent.add_service(name, "shop", repo.url, dockerfile="Dockerfile",
                      secrets={"DB_PASSWORD": SECRET},
                      health_check={"path": "/health", "expected_status": 204,
                                    "timeout_s": 3, "interval_s": 0.2})
    events: list[str] = []
    with connect(f"ws://127.0.0.1:{agent.port}/api/v1/ws/events",
                 additional_headers={"Authorization": f"Bearer {agent.token}"}) as ws:
        run = agent.trigger(name, sha)
        done = agent.wait_run(run["id"], timeout=180)
        try:
            while True:
                events.append(str(ws.recv(timeout=1)))
        except TimeoutError:
            pass
    assert done["status"] == "failed", summary(done)
    deploy = stage(done, "Deploy to Staging")
    assert deploy["status"] == "failed" and "********" in (deploy["error"] or ""), summary(done)

    seen = {
        "GET /runs/{id}": json.dumps(done),
        "GET /runs": json.dumps(agent.runs()),
        "GET /services/{name}/deployments":
            json.dumps(agent.call("GET", f"/api/v1/services/{name}/deployments", 200)),
        "/ws/events": "\n".join(events),
        "the stage log": "\n".join(agent.log_lines(run["id"], "Deploy to Staging")),
        "Slack": "\n".join(sent),
    }
    for where, text in seen.items():
        assert leaks(text, [SECRET]) == [], f"{where}: {text[:2000]}"
    assert any("run failed" in body or "failed" in body for body in sent), sent
