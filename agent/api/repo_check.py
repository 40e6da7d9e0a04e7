"""Catch a wrong repository or branch when a service is created: `git ls-remote` (the
agent's token, a timeout) and one sentence saying which of three things failed — no such
repository, no such branch, or the remote unreachable / refusing access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

UNREACHABLE = ("could not resolve", "timed out", "connection refused", "network is unreachable",
               "failed to connect", "couldn't connect", "ssl", "proxy", "no route to host")
REFUSED = ("authentication failed", "could not read username", "terminal prompts disabled",
           "permission denied", "returned error: 403", "returned error: 401")
MISSING = ("not found", "returned error: 404", "does not appear to be a git repository",
           "no such file or directory", "does not exist")


class BranchResolver(Protocol):
    def resolve_branch(self, repo_url: str, branch: str) -> str | None: ...


@dataclass(frozen=True)
class RepoProblem:
    field: str  # repo_url | branch
    kind: str  # no_repository | no_branch | unreachable
    message: str

    def as_detail(self) -> list[dict[str, str]]:
        return [{"field": self.field, "message": self.message}]


def classify(repo_url: str, error: str) -> RepoProblem:
    """What a failed `git ls-remote` means, from git's own words."""
    said = error.lower()
    if any(word in said for word in UNREACHABLE):
        return RepoProblem("repo_url", "unreachable",
                           f"cannot reach {repo_url} from the agent ({error}); "
                           "use --no-check if this host cannot reach it yet")
    if any(word in said for word in REFUSED):
        return RepoProblem("repo_url", "unreachable",
                           f"{repo_url} refused access ({error}): the repository does not "
                           "exist, or it is private and the agent's github_token cannot read it")
    if any(word in said for word in MISSING):
        return RepoProblem("repo_url", "no_repository",
                           f"there is no git repository at {repo_url} ({error})")
    return RepoProblem("repo_url", "unreachable", f"cannot read {repo_url} ({error})")


def check_repository(git: BranchResolver, repo_url: str, branch: str) -> RepoProblem | None:
    """None when the repository answers and has the branch."""
    try:
        head = git.resolve_branch(repo_url, branch)
    except Exception as exc:  # noqa: BLE001 - any failure of git is the answer we classify
        return classify(repo_url, str(exc).removeprefix("git ls-remote failed: "))
    if head is None:
        return RepoProblem("branch", "no_branch",
                           f"{repo_url} has no branch {branch!r}")
    return None
