"""What one stage's work came to: the value executors, deploys and the engine share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StageResult:
    exit_code: int | None
    error: str | None = None  # a clear, human reason when the stage did not succeed
    timed_out: bool = False
    cancelled: bool = False
    skipped: bool = False  # nothing to do (no command configured, environment pinned…)
    # the stage's container died with a Docker engine restart (retry_on_engine_restart)
    engine_restarted: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.error or self.timed_out or self.cancelled)

    @classmethod
    def skip(cls, reason: str) -> StageResult:
        return cls(exit_code=None, error=reason, skipped=True)
