"""Key rotation run as root (the README's `sudo seamless-agent … rotate-key`) leaves each key
file owned by the agent's service user, so the service can still read its keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "seamless-agent"
NOBODY = 65534  # stands for the service user


@pytest.mark.parametrize("command, key_name", [(["secrets", "rotate-key"], "secrets.key"),
                                               (["links", "rotate-key"], "link.key")])
def test_a_rotation_by_root_keeps_the_key_file_readable_by_the_service_user(
        tmp_path: Path, command: list[str], key_name: str) -> None:
    # Never a skip: CI runs as root, and a run without root would leave this unchecked.
    assert os.geteuid() == 0, ("this test needs root (only root can hand a file to another"
                               " user): run make test as root, as CI does")
    data = tmp_path / "data"

    def rotate() -> None:
        done = subprocess.run([str(BIN), *command, "--data-dir", str(data)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    rotate()  # makes the data dir and the key file
    key = data / key_name
    os.chown(key, NOBODY, NOBODY)
    before = key.read_text()
    rotate()
    after = key.stat()
    assert (after.st_uid, after.st_gid) == (NOBODY, NOBODY)
    assert after.st_mode & 0o777 == 0o600 and key.read_text() != before
