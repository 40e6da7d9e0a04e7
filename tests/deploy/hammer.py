"""A client that keeps requesting a URL in a thread and counts what failed."""

from __future__ import annotations

import http.client
import threading
import urllib.error
import urllib.request
from collections import Counter


class Hammer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.bodies: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    body = resp.read().decode().strip()
                    if resp.status == 200:
                        self.ok += 1
                        self.bodies[body] += 1
                        continue
                    self.errors[f"HTTP {resp.status}"] += 1
            # A reply cut off mid-body (IncompleteRead, a bad status line) is a failed request
            # too: it once ended the thread, and a dead hammer counts no failures at all.
            except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
                self.errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
            self.failed += 1

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
