"""A repository's compose file cannot reach the host: no bind mount outside the workspace,
no Docker socket, no privileges or host namespaces unless an admin opted the compose
service in. Against a real agent and the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.served import ServedAgent, stage, summary
from tests.security.conftest import svc_name

IT = "Integration Test"
FAILING_TEST = "sleep 2; exit 1\n"  # the failed test makes the agent print the compose logs


def compose(base_image: str, service_lines: str) -> str:
    return ("services:\n"
            "  app:\n"
            f"    image: {base_image}\n"
            '    command: ["sh", "-c", "cat /host/admin-token /probe 2>&1; sleep 30"]\n'
            f"{service_lines}")


def run_compose_repo(serve, hostile_repo, base_image: str, service_lines: str,
                     **service: object) -> tuple[ServedAgent, dict, list[str]]:
    repo = hostile_repo({"compose.yaml": compose(base_image, service_lines),
                         "integration.sh": FAILING_TEST})
    agent: ServedAgent = serve()
    agent.add_pipeline("shop")
    name = svc_name("compose")
    agent.add_service(name, "shop", repo.url, compose_file="compose.yaml",
                      integration_test_command="sh integration.sh", **service)
    run = agent.wait_run(agent.trigger(name, repo.head_sha)["id"], timeout=180)
    return agent, run, agent.log_lines(run["id"], IT)


@pytest.mark.docker
def test_a_compose_file_mounting_the_agents_data_dir_is_refused_and_the_token_never_shows(
        serve, hostile_repo, base_image: str, secret_file: Path) -> None:
    lines = (f"    volumes:\n"
             f"      - {secret_file.parent}:/host:ro\n"
             f"      - /var/run/docker.sock:/var/run/docker.sock\n")
    agent, run, log = run_compose_repo(serve, hostile_repo, base_image, lines)

    assert "TOKEN-9f2c41d7e0" not in "\n".join(log)
    it = stage(run, IT)
    assert it["status"] == "failed", summary(run)
    assert "'app'" in it["error"] and "volumes" in it["error"], it["error"]
    assert str(secret_file.parent) in it["error"], it["error"]
    assert any("docker.sock" in line for line in log), log[-20:]
    assert agent.runs()[0]["status"] == "failed"


@pytest.mark.docker
@pytest.mark.parametrize("lines, key", [
    ("    privileged: true\n", "privileged"),
    ("    network_mode: host\n", "network_mode"),
    ("    pid: host\n", "pid"),
    ("    ipc: host\n", "ipc"),
    ("    cap_add: [SYS_ADMIN]\n", "cap_add"),
    ("    devices: ['/dev/mem:/dev/mem']\n", "devices"),
    ("    security_opt: ['seccomp:unconfined']\n", "security_opt"),
    ("    userns_mode: host\n", "userns_mode"),
])
def test_a_compose_service_asking_for_host_privileges_is_refused_naming_the_key(
        serve, hostile_repo, base_image: str, lines: str, key: str) -> None:
    _agent, run, log = run_compose_repo(serve, hostile_repo, base_image, lines)

    it = stage(run, IT)
    assert it["status"] == "failed", summary(run)
    assert "'app'" in it["error"] and key in it["error"], it["error"]
    assert not any(line.startswith("compose: Creating") for line in log), log


@pytest.mark.docker
def test_an_env_file_outside_the_repository_is_refused_before_compose_reads_it(
        serve, hostile_repo, base_image: str, secret_file: Path) -> None:
    env_file = secret_file.parent / "stolen.env"
    env_file.write_text("STOLEN=TOKEN-9f2c41d7e0-envfile\n")
    lines = f"    env_file: {env_file}\n"
    _agent, run, log = run_compose_repo(serve, hostile_repo, base_image, lines)

    assert "TOKEN-9f2c41d7e0" not in "\n".join(log)
    it = stage(run, IT)
    assert it["status"] == "failed", summary(run)
    assert "env_file" in it["error"] and str(env_file) in it["error"], it["error"]


@pytest.mark.docker
def test_an_admin_opt_in_lets_one_compose_service_mount_a_host_path(
        serve, hostile_repo, base_image: str, secret_file: Path) -> None:
    lines = f"    volumes:\n      - {secret_file.parent}:/host:ro\n"
    _agent, run, log = run_compose_repo(serve, hostile_repo, base_image, lines,
                                        compose_opt_ins={"app": ["volumes"]})

    it = stage(run, IT)
    # Allowed: the project starts; the (deliberately failing) test prints the app's log.
    assert it["error"] != "" and "volumes" not in (it["error"] or ""), summary(run)
    assert any("TOKEN-9f2c41d7e0" in line for line in log), log[-30:]
    assert any("opted in" in line and "volumes" in line for line in log), log[:20]
