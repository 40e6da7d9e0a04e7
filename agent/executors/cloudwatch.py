"""Follow one CloudWatch Logs stream with its forward token, into a StageLog.

`get_log_events(startFromHead=True, nextToken=…)` pages forward; a page whose
`nextForwardToken` equals the token sent means "nothing more for now". The token is
the only cursor: events are written once, in stream order, and a restarted agent
continues from the token it saved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from agent.logs import StageLog
from store.models import LogStream

MAX_PAGES_PER_POLL = 20  # ~10k events each; keeps one poll short enough to stay cancellable


class LogFollower:
    def __init__(self, client: Any, group: str, stream: str, token: str | None = None) -> None:
        self.client = client
        self.group = group
        self.stream = stream
        self.token = token
        self.events_read = 0

    def poll(self, log: StageLog) -> bool:
        """Write every event available now; True if the token moved (new state to save)."""
        start = self.token
        for _ in range(MAX_PAGES_PER_POLL):
            page = self._page()
            if page is None:  # the stream does not exist yet: the task has not logged
                break
            for event in page.get("events", []):
                self._write(log, event)
            nxt = page.get("nextForwardToken")
            if not nxt or nxt == self.token:
                break
            self.token = nxt
        return self.token != start

    def _page(self) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamName": self.stream,
                                  "startFromHead": True}
        if self.token:
            kwargs["nextToken"] = self.token
        try:
            return self.client.get_log_events(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise

    def _write(self, log: StageLog, event: dict[str, Any]) -> None:
        ts = datetime.fromtimestamp(event["timestamp"] / 1000, tz=UTC)
        # awslogs sends one event per line (and splits lines over 256 KB); it cannot tell
        # stdout from stderr, so every line is stored as stdout.
        for line in event.get("message", "").rstrip("\n").split("\n"):
            log.write(line, LogStream.stdout, ts)
        self.events_read += 1
