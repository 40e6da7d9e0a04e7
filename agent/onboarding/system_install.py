"""A system install for the systemd unit: the config in /etc (readable by the service
user, no secrets in it), the data directory and its 0600 secrets file owned by the
service user. `init --system` prepares it; `install-service` checks it."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from agent.onboarding.secrets import default_key_path, secrets_path


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _readable_by(path: Path, account: pwd.struct_passwd) -> bool:
    st = path.stat()
    if st.st_uid == account.pw_uid:
        return bool(st.st_mode & stat.S_IRUSR)
    if st.st_gid == account.pw_gid:
        return bool(st.st_mode & stat.S_IRGRP)
    return bool(st.st_mode & stat.S_IROTH)


def check_service_user(user: str, config: Path, data_dir: Path) -> list[str]:
    """What would stop the service from starting as `user`, as sentences."""
    account = _user(user)
    if account is None:
        return [f"there is no user {user!r} yet: create it before starting the service "
                f"(useradd --system --home {data_dir} --shell /usr/sbin/nologin {user})"]
    problems = []
    if not _readable_by(config, account):
        problems.append(f"{config} is not readable by {user}: chmod 0644 {config}")
    if data_dir.exists() and data_dir.stat().st_uid != account.pw_uid:
        problems.append(f"{data_dir} is not owned by {user}: chown -R {user}: {data_dir}")
    return problems


def hand_over(user: str, config: Path, data_dir: Path) -> list[str]:
    """Make the install usable by the service user: the config world-readable (it holds no
    secrets), the data directory (0700), the secrets file and its key (0600) theirs."""
    os.chmod(config, 0o644)
    account = _user(user)
    if account is None:
        return [f"there is no user {user!r} yet: create it (useradd --system --home "
                f"{data_dir} --shell /usr/sbin/nologin {user}), then run this again so "
                f"{data_dir} becomes theirs"]
    if os.geteuid() != 0:
        return [f"not root: {data_dir} stays owned by you; the service runs as {user}"]
    os.chmod(data_dir, 0o700)
    for path in (data_dir, secrets_path(data_dir), default_key_path(data_dir)):
        if path.exists():
            os.chown(path, account.pw_uid, account.pw_gid)
    return []
