"""The real agent behind the API: a signed push webhook queues a run whose stages
progress on /ws/events."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from agent.api.app import create_app
from agent.triggers.github import signature
from store.models import NoTargetConfig, PipelineConfig, Role, ServiceConfig
from tests.api.conftest import local_agent
from tests.harness.server import ServerThread

SECRET = "e2e-secret"


def push_payload(repo_url: str, branch: str, sha: str) -> bytes:
    return json.dumps({
        "ref": f"refs/heads/{branch}", "before": "0" * 40, "after": sha, "created": False,
        "deleted": False, "forced": False,
        "head_commit": {"id": sha, "message": "Add a feature", "author": {"name": "Mona"}},
        "repository": {"clone_url": repo_url, "html_url": repo_url},
        "pusher": {"name": "mona"}}).encode()


async def test_signed_push_runs_stages_visible_on_events(tmp_path: Path,
                                                          sample_repo: Any) -> None:
    repo = sample_repo("e2e")
    agent = local_agent(tmp_path / "data")
    agent.store.create_pipeline(PipelineConfig(name="shop", executor="local",
                                               staging=NoTargetConfig(),
                                               production=NoTargetConfig()))
    agent.store.create_service(ServiceConfig(
        name="e2e", pipeline="shop", repo_url=repo.url, branch=repo.current_branch,
        webhook_secret=SECRET, code_quality_command="sh lint.sh",
        unit_test_command="sh test.sh", dockerfile=None))
    token, _ = agent.store.create_token("watcher", Role.viewer)
    server = ServerThread(create_app(agent)).start()
    try:
        seen: list[tuple[str, str]] = []
        url = f"{server.ws_url}/api/v1/ws/events?token={token}"
        async with connect(url) as ws:
            body = push_payload(repo.url, repo.current_branch, repo.head_sha)
            async with httpx.AsyncClient() as client:
                answer = await client.post(f"{server.url}/webhooks/github", content=body,
                                           headers={"Content-Type": "application/json",
                                                    "X-GitHub-Event": "push",
                                                    "X-GitHub-Delivery": str(uuid.uuid4()),
                                                    "X-Hub-Signature-256":
                                                        signature(SECRET, body)})
            assert answer.status_code == 200, answer.text
            run_id = answer.json()["runs"][0]["id"]
            while ("Unit Test", "success") not in seen:
                event = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if event["type"] == "stage" and event["stage"]["run_id"] == run_id:
                    seen.append((event["stage"]["name"], event["stage"]["status"]))
        assert seen.index(("Prepare", "in_progress")) < seen.index(("Prepare", "success"))
        assert seen.index(("Prepare", "success")) < seen.index(("Code Quality", "in_progress"))
        run = agent.store.get_run(run_id)
        assert (run.trigger.value, run.author, run.message) == ("push", "Mona", "Add a feature")
        lines = agent.store.log_page(run_id, stage="Unit Test").lines
        assert any("4 passed" in ln.text for ln in lines)
    finally:
        server.stop()
        agent.close()
