"""The systemd path of a system install: `init --system` writes /etc-style config and a
data directory owned by the service user, `install-service` writes a unit that runs this
install's `seamless-agent` by absolute path with that config, and systemd itself
(`systemd-analyze verify`) accepts the unit. A real systemd start needs a booted systemd,
which this machine does not have (see docs/architecture.md, "systemd")."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent import systemd
from agent.onboarding.secrets import secrets_path, write_secret
from agent.onboarding.system_install import hand_over

BIN = Path(sys.executable).parent / "seamless-agent"
SERVICE_USER = "daemon"  # on every Debian; the README makes a `seamless` user with useradd


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is missing: `make test` installs Debian's systemd "
                    "package (scripts/ensure-test-tools.sh)")
    return found


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)


def agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_")}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def unit_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line
                and not line.startswith("#"))


def test_init_system_then_install_service_gives_a_unit_systemd_accepts(tmp_path: Path
                                                                       ) -> None:
    etc, data_dir = tmp_path / "etc" / "seamless", tmp_path / "lib" / "seamless"
    config = etc / "agent.toml"
    init = agent("init", "--system", "--non-interactive", "--config", str(config),
                 "--data-dir", str(data_dir), "--executor", "auto", "--user", SERVICE_USER,
                 cwd=tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    assert f"install-service --user {SERVICE_USER} --config {config}" in init.stdout
    assert stat.S_IMODE(config.stat().st_mode) == 0o644  # readable by the service user
    account = pwd.getpwnam(SERVICE_USER)
    assert data_dir.stat().st_uid == account.pw_uid
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700

    unit_path = tmp_path / "seamless-agent.service"
    written = agent("install-service", "--path", str(unit_path), "--config", str(config),
                    "--user", SERVICE_USER, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert "warning" not in written.stderr, written.stderr
    unit = unit_lines(unit_path.read_text())
    assert unit["ExecStart"] == f"{BIN} serve --config {config}"
    assert Path(unit["ExecStart"].split()[0]).is_absolute()
    assert unit["ReadWritePaths"] == str(data_dir)
    assert unit["ProtectHome"] == "true"  # nothing of the install lives in a home directory
    assert (unit["User"], unit["Type"], unit["ProtectSystem"]) == (SERVICE_USER, "notify",
                                                                   "strict")
    assert int(unit["LimitNOFILE"]) >= 65536
    assert "Documentation" not in unit  # nothing real to point at from an install
    assert "StateDirectory" not in unit  # only for /var/lib/seamless itself

    checked = verify(unit_path)
    assert checked.returncode == 0, checked.stderr
    assert unit_path.name not in checked.stderr, checked.stderr


def test_install_service_without_a_config_says_to_run_init(tmp_path: Path) -> None:
    result = agent("install-service", "--path", str(tmp_path / "u.service"), "--config",
                   str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "init --system" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "u.service").exists()


def test_a_config_in_a_home_directory_keeps_home_readable(tmp_path: Path) -> None:
    unit = systemd.unit_file(BIN, Path("/root/.config/seamless/agent.toml"),
                             Path("/var/lib/seamless"))
    fields = unit_lines(unit)
    assert fields["ProtectHome"] == "read-only"
    assert fields["StateDirectory"] == "seamless"
    path = tmp_path / "seamless-agent.service"
    path.write_text(unit)
    assert verify(path).returncode == 0


def test_a_broken_unit_is_caught_by_the_same_check(tmp_path: Path) -> None:
    """The check above can fail: systemd-analyze refuses a missing program."""
    path = tmp_path / "seamless-agent.service"
    path.write_text(systemd.unit_file(tmp_path / "nowhere" / "seamless-agent",
                                      Path("/etc/seamless/agent.toml"), Path("/var/lib/x")))
    checked = verify(path)
    assert checked.returncode != 0 and "not executable" in checked.stderr


def test_the_secrets_file_stays_0600_and_becomes_the_service_users(tmp_path: Path) -> None:
    data_dir, config = tmp_path / "data", tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{data_dir}"\n')
    config.chmod(0o600)
    write_secret(data_dir, "github_token", "ghp_example")
    assert hand_over(SERVICE_USER, config, data_dir) == []
    secrets = secrets_path(data_dir)
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert secrets.stat().st_uid == pwd.getpwnam(SERVICE_USER).pw_uid
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    assert "ghp_example" not in config.read_text()


def test_the_unit_joins_the_docker_sockets_group_and_none_when_there_is_none(
        tmp_path: Path) -> None:
    """Under a real systemd (systemd-nspawn -b), a unit naming a group that does not
    exist never starts (status 216/GROUP, restarted for ever): the unit names the group
    the engine's socket has, and none where there is no such group."""
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    assert systemd.docker_socket_group() == grp.getgrgid(socket_gid).gr_name
    without = systemd.unit_file(BIN, Path("/etc/seamless/agent.toml"),
                                Path("/var/lib/seamless"), socket_group=None)
    assert "SupplementaryGroups" not in without
    path = tmp_path / "seamless-agent.service"
    path.write_text(without)
    assert verify(path).returncode == 0


def test_serve_without_git_says_to_install_it(tmp_path: Path) -> None:
    """Seen under a real systemd on a fresh Debian: no git, and the agent died in a
    GitPython traceback at import (restarted for ever by the unit)."""
    started = subprocess.run(
        [str(BIN), "serve", "--data-dir", str(tmp_path / "data"), "--port", "0"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "PATH": str(tmp_path / "no-git-here")})
    assert started.returncode == 2, started.stderr
    assert "git is not installed" in started.stderr and "apt-get install git" in started.stderr
    assert "Traceback" not in started.stderr
