"""The `/` filter of the dashboard and the run lists: free words plus `status:` and
`branch:` terms, e.g. `status:failed branch:main pay`."""

from __future__ import annotations

from dataclasses import dataclass, field

from store.models import RunInfo, RunStatus, StageStatus

STATUS_WORDS = {s.value: s.value for s in RunStatus} | {
    "approval": RunStatus.awaiting_approval.value, "timed_out": StageStatus.timed_out.value,
    "timeout": StageStatus.timed_out.value}


@dataclass
class RunFilter:
    words: list[str] = field(default_factory=list)
    status: str | None = None
    branch: str | None = None
    problem: str | None = None  # what was not understood, said to the user

    @classmethod
    def parse(cls, query: str) -> RunFilter:
        out = cls()
        for term in query.split():
            key, sep, value = term.partition(":")
            if sep and key.lower() in ("status", "is"):
                wanted = STATUS_WORDS.get(value.lower().replace(" ", "_"))
                if wanted is None:
                    out.problem = (f"unknown status {value!r}; one of "
                                   f"{', '.join(sorted(STATUS_WORDS))}")
                out.status = wanted
            elif sep and key.lower() == "branch":
                out.branch = value
            else:
                out.words.append(term.lower())
        return out

    @property
    def empty(self) -> bool:
        return not (self.words or self.status or self.branch)

    def run_status(self) -> str | None:
        """The status the agent can filter on (timed out is a failed run)."""
        return RunStatus.failed.value if self.status == StageStatus.timed_out else self.status

    def accepts(self, run: RunInfo | None, *texts: str | None) -> bool:
        if self.status is not None:
            if run is None or not _has_status(run, self.status):
                return False
        if self.branch is not None and (run is None or run.branch != self.branch):
            return False
        haystack = " ".join(t or "" for t in texts).lower()
        return all(word in haystack for word in self.words)


def _has_status(run: RunInfo, status: str) -> bool:
    if status == StageStatus.timed_out:
        return any(s.status is StageStatus.timed_out for s in run.stages)
    return run.status.value == status
