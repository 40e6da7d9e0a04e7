"""Running git: its own process group, a timeout and a cancel that kill the whole group,
a private-repo token only in git's environment (scoped to the repository's host), and its
messages in the stage log with credentials in URLs hidden."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from agent.logs import StageLog

GIT_TIMEOUT_S = 600.0  # a whole fetch of a big repository
LS_REMOTE_TIMEOUT_S = 20.0
DIFF_TIMEOUT_S = 30.0  # a diff or merge-base in the local mirror
CANCEL_POLL_S = 0.25  # a cancel ends a hanging git within this (plus the kill)
# An HTTP remote that stalls below 1 KB/s for 30 s is given up by git itself.
_NETWORK_TIMEOUTS = ("-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=30")
_CREDENTIALS_IN_URL = re.compile(r"(://)[^/@\s]+@")


class WorkspaceError(RuntimeError):
    """A clear, human reason why a workspace could not be prepared."""


def _kill_group(popen: subprocess.Popen[bytes]) -> None:
    """SIGKILL git and every helper it started; reap it without waiting on its pipes."""
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        popen.kill()
    try:
        popen.communicate(timeout=2)
    except subprocess.TimeoutExpired:  # a helper left its own group: stop reading
        for pipe in (popen.stdout, popen.stderr):
            if pipe is not None:
                pipe.close()
        popen.wait(timeout=2)


def redact_credentials(text: str) -> str:
    """A URL's userinfo (a token in a clone URL) hidden."""
    return _CREDENTIALS_IN_URL.sub(r"\1***@", text)


def git_env(token: str | None, url: str | None) -> dict[str, str]:
    """git's environment: never a prompt; a token as an auth header for the repo's host."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    parts = urlsplit(url or "")
    if token and parts.scheme == "https" and parts.hostname:
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        # Scoped to the repo's host: the token never goes to another server.
        env.update({
            "GIT_CONFIG_COUNT": "1",
            # git matches the port exactly: a key without one only covers :443.
            "GIT_CONFIG_KEY_0": f"http.https://{host}/.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        })
    return env


def run_git(args: list[str], cwd: Path | None, log: StageLog | None,
            cancel: threading.Event | None, url: str | None = None, *,
            timeout_s: float = GIT_TIMEOUT_S, token: str | None = None) -> str:
    """Run git with the token in its environment; its messages go to the stage log.
    git runs in its own process group: a cancel or the timeout kills the whole group
    (git's transport helpers hold the pipes open otherwise, and the wait never ends)."""
    env = {**os.environ, "LANGUAGE": "C", "LC_ALL": "C", **git_env(token, url)}
    popen = subprocess.Popen(["git", *_NETWORK_TIMEOUTS, *args], cwd=cwd, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            out, err = popen.communicate(timeout=CANCEL_POLL_S)
            break
        except subprocess.TimeoutExpired:
            if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
                _kill_group(popen)
                what = ("cancelled" if cancel is not None and cancel.is_set()
                        else f"timed out after {timeout_s:g} s")
                raise WorkspaceError(f"git {args[0]} {what}") from None
    stderr = redact_credentials(err.decode("utf-8", "replace")).strip()
    if log is not None:
        for line in stderr.splitlines():
            if line.strip():
                log.system(f"git: {line.strip()}")
    if popen.returncode != 0:
        lines = stderr.splitlines()
        # git's `fatal:` line names the cause; advice ("make sure ... exists") follows it.
        cause = next((ln for ln in lines if ln.startswith("fatal:")), lines[-1] if lines
                     else f"exit code {popen.returncode}")
        raise WorkspaceError(f"git {args[0]} failed: {cause}")
    return out.decode("utf-8", "replace")
