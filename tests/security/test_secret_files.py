"""Stage secrets as files (#21.5): with `secrets_as: files` a stage reads
/run/secrets/<NAME> (0400, its user's, on a tmpfs of the host), its environment holds
no secret, `docker inspect` of the stage container shows none, and the masker still
masks what the stage prints. Against the real engine."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import docker
import pytest

from agent.executors.base import container_name
from agent.executors.secret_files import _is_tmpfs
from store.models import RunKind, RunStatus
from tests.engine.conftest import add_service, log_text, push
from tests.harness import agent_running, wait_run, wait_until

SECRET = "Files-Only-5520-Tango"
READS_THE_FILE = (
    'stat -c "mode=%a uid=%u" /run/secrets/API_KEY; '
    f'test "$(wc -c < /run/secrets/API_KEY)" -eq {len(SECRET)} && echo "file holds it"; '
    'test -z "$API_KEY" && echo "no API_KEY in env"; echo "dir=$SEAMLESS_SECRETS_DIR"; '
    'cat /run/secrets/API_KEY; echo; echo "ok" > /run/secrets/x || echo "read-only"; sleep 4')


def _inspect_when_running(name: str) -> dict[str, Any]:
    client = docker.from_env()
    try:
        def running() -> dict[str, Any] | None:
            try:
                info: dict[str, Any] = client.api.inspect_container(name)
            except docker.errors.NotFound:
                return None
            return info if info["State"].get("Running") else None
        return wait_until(running, timeout=90, what=f"container {name} running")
    finally:
        client.close()


@pytest.mark.docker
async def test_secrets_as_files_reach_the_stage_as_0400_files_and_docker_inspect_shows_none(
        tmp_path: Path, sample_repo, base_image: str) -> None:
    repo = sample_repo("files")
    async with agent_running(tmp_path / "data") as agent:
        service = add_service(
            agent, repo, secrets={"API_KEY": SECRET}, secrets_as="files",
            code_quality_command=None, unit_test_command=READS_THE_FILE, dockerfile=None,
            compose_file=None, integration_test_command=None)
        run = push(agent, service, repo.head_sha, kind=RunKind.partial)
        info = await asyncio.to_thread(
            _inspect_when_running, container_name(run.id, "Unit Test", agent.instance))
        assert SECRET not in json.dumps(info)  # env, labels, command: nowhere
        [mount] = [m for m in info["Mounts"] if m["Destination"] == "/run/secrets"]
        assert mount["RW"] is False
        source = Path(mount["Source"])
        assert _is_tmpfs(source)  # RAM of the host, never its disk
        assert stat.S_IMODE(os.stat(source / "API_KEY").st_mode) == 0o400
        assert stat.S_IMODE(os.stat(source.parent.parent).st_mode) == 0o700

        done = await wait_run(agent, run.id)
        text = log_text(agent, run.id, "Unit Test")
        assert done.status is RunStatus.success, text
        lines = text.splitlines()  # what the stage printed, not the command's echo
        assert "mode=400 uid=0" in lines  # the stage's user (root in this image)
        assert "file holds it" in lines and "no API_KEY in env" in lines
        assert "dir=/run/secrets" in lines and "read-only" in lines
        assert "secrets as files in /run/secrets: API_KEY" in lines
        assert SECRET not in text and "********" in lines  # printed, masked
        assert not source.exists()  # removed when the stage ended


@pytest.mark.docker
async def test_secrets_as_env_by_default_and_both_gives_each_way(
        tmp_path: Path, sample_repo, base_image: str) -> None:
    repo = sample_repo("both")
    async with agent_running(tmp_path / "data") as agent:
        command = ('test -n "$API_KEY" && echo "env has it"; '
                   'test -f /run/secrets/API_KEY && echo "file has it"; true')
        plain = add_service(agent, repo, name="plain", secrets={"API_KEY": SECRET},
                            code_quality_command=None, unit_test_command=command,
                            dockerfile=None, compose_file=None, integration_test_command=None)
        both = add_service(agent, repo, name="both", secrets={"API_KEY": SECRET},
                           secrets_as="both", code_quality_command=None,
                           unit_test_command=command, dockerfile=None, compose_file=None,
                           integration_test_command=None)
        assert plain.secrets_as == "env"
        runs = [push(agent, svc, repo.head_sha, kind=RunKind.partial) for svc in (plain, both)]
        printed = []
        for run in runs:
            done = await wait_run(agent, run.id)
            text = log_text(agent, run.id, "Unit Test")
            assert done.status is RunStatus.success, text
            printed.append(text.splitlines())
        assert "env has it" in printed[0] and "file has it" not in printed[0]
        assert "env has it" in printed[1] and "file has it" in printed[1]
