"""Web links for a run's commit or pull request, from the service's repository URL, and
the OSC 52 clipboard (the terminal, not the host, holds it: works over SSH and tmux)."""

from __future__ import annotations

import re

# https://host/owner/repo(.git), ssh://git@host[:port]/owner/repo(.git), git@host:owner/repo.git
_HTTP = re.compile(r"^https?://(?:[^@/]+@)?(?P<host>[^/]+)/(?P<path>.+?)(?:\.git)?/?$")
_SSH_URL = re.compile(r"^ssh://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?/(?P<path>.+?)(?:\.git)?/?$")
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^/:]+):(?P<path>[^/].*?)(?:\.git)?/?$")


def web_base(repo_url: str) -> str | None:
    """`https://host/owner/repo` for a clone URL, or None (a local path has no web page).
    Credentials in the URL never make it into the link."""
    for pattern in (_HTTP, _SSH_URL, _SCP):
        match = pattern.match(repo_url.strip())
        if match:
            return f"https://{match['host']}/{match['path']}"
    return None


def run_link(repo_url: str, sha: str, pr_number: int | None = None) -> str | None:
    base = web_base(repo_url)
    if base is None:
        return None
    return f"{base}/pull/{pr_number}" if pr_number else f"{base}/commit/{sha}"
